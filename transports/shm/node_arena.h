// NodeMemory (transports/node_memory.h) over a mapped NodeSegment, for one process's
// local rank: what core hands to the shared-memory algorithms for one epoch.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "transports/node_memory.h"
#include "transports/shm/node_segment.h"
#include "transports/shm/peer_reader.h"

namespace ftccl {
namespace shm {

class NodeArena final : public NodeMemory {
 public:
  /// `segment` must be mapped (valid()) and outlive the arena; `localRank` must be in
  /// [0, segment.layout().localSize()). Neither is copied: several arenas (one per thread,
  /// in tests) may view one mapping.
  NodeArena(const NodeSegment& segment, int localRank);

  int localRank() const override { return localRank_; }
  int localSize() const override { return segment_.layout().localSize(); }
  // The op descriptors live in the rank's ready line, packed, one per slot parity: a
  // reader that sees the flag has the descriptor in the same cache line. Two suffice
  // for any number of slots: the descriptor of sequence t is rewritten for t + 2, and
  // every reader has finished with it once it published ready t + 1 (node_memory.h).
  static constexpr size_t kPackedDescriptorBytes = 24;
  static_assert(2 * kPackedDescriptorBytes <= shm::kFlagSpareBytes, "two fit the ready line");

  size_t slotBytes() const override { return segment_.layout().slotBytes(); }
  int slotsPerRank() const override { return segment_.layout().slotsPerRank(); }
  uint8_t* slot(int localRank, int index) const override;

  void describe(int index, const OpDescriptor& descriptor) override;
  OpDescriptor descriptor(int localRank, int index) const override;

  // Line 0 holds the packed descriptor and the first bytes; lines 1.. hold bytes only.
  static constexpr size_t kFirstLineBytes = kMessageLineBytes - kPackedDescriptorBytes;
  static_assert(kFirstLineBytes + (kMessageLines - 1) * kMessageLineBytes >= kLineMessageBytes,
                "the lines hold the largest line message");
  void writeLines(int index, const OpDescriptor& descriptor, const void* data,
                  size_t bytes) override;
  bool linesReached(int localRank, int index, uint32_t seq, size_t bytes) const override;
  OpDescriptor lineDescriptor(int localRank, int index) const override;
  void readLines(int localRank, int index, void* out, size_t bytes) const override;

  void publishReady(uint32_t seq) override;
  bool readyReached(int localRank, uint32_t seq) const override;
  void publishDone(uint32_t seq) override;
  void publishDoneUnwaited(uint32_t seq) override;
  bool doneReached(int localRank, uint32_t seq) const override;
  bool sleepUntilReady(int localRank, uint32_t seq, int timeoutUs) const override;
  bool sleepUntilDone(int localRank, uint32_t seq, int timeoutUs) const override;

  bool singleCopy() const override { return singleCopy_; }
  Status readPeer(int localRank, uint64_t address, void* out, size_t bytes,
                  int64_t aliveAtNs = -1) const override;

  // Single copy is set up in three steps around two agreements of the ranks (core, at
  // every epoch): publishProbe() puts where a private word of this process lives, and its
  // value, in this rank's slot 0; once every rank has, probeSingleCopy() holds each
  // process by a pidfd (`pids` in local rank order) and reads every peer's word from its
  // own memory; once every rank's probe passed, useSingleCopy(true). The first op
  // overwrites the probes.
  void publishProbe();
  Status probeSingleCopy(const std::vector<pid_t>& pids);
  void useSingleCopy(bool on) { singleCopy_ = on && reader_.isOpen(); }

 private:
  const NodeSegment& segment_;
  int localRank_;
  PeerReader reader_;
  bool singleCopy_ = false;
  uint64_t probeWord_ = 0;  // private: what a peer's probe reads from this process
};

}  // namespace shm
}  // namespace ftccl
