// What every algorithm is: a resumable, non-blocking state machine over a Transport.
//
// core/ calls progress() from whichever thread runs the operation, interleaved with
// the transport's progress and sleeps; abort() cancels what is posted so a failed
// or revoked operation never hangs. Algorithms never see UCX (CMake enforces it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "ftccl.h"
#include "transports/transport.h"
#include "util/status.h"

namespace ftccl {

struct CollectiveArgs {
  const void* sendbuff = nullptr;
  void* recvbuff = nullptr;
  size_t count = 0;
  ftcclDataType_t type = ftcclFloat32;
  ftcclRedOp_t op = ftcclSum;
  int root = 0;
  uint32_t opSeq = 0;
};

// Staging memory owned by the communicator: allocated and pre-faulted once at init,
// `slots` buffers of `slotBytes` each, one per pipeline channel.
struct Scratch {
  uint8_t* base = nullptr;
  size_t slotBytes = 0;
  int slots = 0;
  uint8_t* slot(int i) const { return base + static_cast<size_t>(i) * slotBytes; }
};

// Pipelining knobs, identical on every rank (decided once, never measured per rank).
struct PipelineConfig {
  size_t chunkBytes = 512 * 1024;  // bytes per slice and per staging slot
  int channels = 4;                // slices in flight
};

class Collective {
 public:
  virtual ~Collective() = default;
  // Advances without blocking; *done once this rank's part is complete.
  virtual Status progress(bool* done) = 0;
  // Cancels every posted request. Buffers are undefined afterwards.
  virtual void abort() = 0;
  // The peers this rank is waiting for right now (for timeout diagnostics).
  virtual std::vector<int> pendingPeers() const = 0;
  // Grows whenever this op advances (a step or chunk done): the op timeout measures
  // progress of the op itself, not other traffic on the worker.
  virtual uint64_t progressMark() const = 0;
};

std::unique_ptr<Collective> makeRingAllReduce(Transport& transport, const Scratch& scratch,
                                              const PipelineConfig& pipeline,
                                              const CollectiveArgs& args);
std::unique_ptr<Collective> makeChainBroadcast(Transport& transport,
                                               const PipelineConfig& pipeline,
                                               const CollectiveArgs& args);

}  // namespace ftccl
