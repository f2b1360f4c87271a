// Small sends that UCX may pack long after their op ended, packed by us instead.
//
// Why: UCX cannot cancel a send. A small (eager) send that finds the peer's queue full
// (a shared-memory FIFO, or a TCP connection still being set up) waits in UCX's pending
// queue and is packed later, from the buffer it was given. Once its op has failed, the
// application may free that buffer: survivors crashed in ucp_dt_pack that way (chaos
// seeds 9091 and 7334 over shared memory, 7398 over TCP). Such sends therefore go
// through a UCX generic datatype whose pack callback reads from a slot the transport
// owns; when the op is abandoned, the slot is marked and a late packing writes zeros
// (to an op nobody receives any more) instead of reading the application's memory.
// Every send below the endpoint's rendezvous threshold is staged when it cannot go out
// inline at once (the threshold is read from UCX: 8256 B over shared memory here, not
// the 8 KiB assumed at first, which left 8 KiB sends bare: seed 7334).
//
// Rendezvous sends are not staged: UCX reads their buffer only when the receiver asks.
// Over shared memory the receiver reads it by CMA once it matched (a failed op's
// receivers cancel or drain the message as truncated, which reads nothing: rndv.c).
// Over TCP a receiver that had matched asks for the rest of the data, and the sender
// packs it from the buffer: not covered yet (closing the endpoint by force ended such a
// send, but also dropped messages the peer had counted as sent: seeds 7734, 7736).
#pragma once

#include <ucp/api/ucp.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "util/status.h"

namespace ftccl {

struct StagedSend {
  const uint8_t* data = nullptr;
  size_t bytes = 0;
  bool abandoned = false;  // the op ended: never read `data` again
  StagedSend* nextFree = nullptr;
};

class StagedSends {
 public:
  // Until an endpoint's rendezvous threshold can be read (UcxTransport::stagingLimit):
  // below any threshold UCX 1.13 picks, so staging never turns a rendezvous into copies.
  static constexpr size_t kLimit = 8192;

  StagedSends() = default;
  ~StagedSends();
  StagedSends(const StagedSends&) = delete;
  StagedSends& operator=(const StagedSends&) = delete;

  Status init();
  ucp_datatype_t datatype() const { return datatype_; }

  // A slot describing `bytes` at `data`; pass it as the send's buffer with count 1.
  StagedSend* acquire(const void* data, size_t bytes);
  void release(StagedSend* slot);

 private:
  ucp_datatype_t datatype_ = 0;
  bool created_ = false;
  std::vector<std::unique_ptr<StagedSend>> slots_;
  StagedSend* free_ = nullptr;
};

}  // namespace ftccl
