// NodeMemory (transports/node_memory.h) over a mapped NodeSegment, for one process's
// local rank: what core hands to the shared-memory algorithms for one epoch.
#pragma once

#include <cstddef>
#include <cstdint>

#include "transports/node_memory.h"
#include "transports/shm/node_segment.h"

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
  // Each segment slot starts with the op descriptor; the data follows on a cache line.
  static constexpr size_t kDescriptorBytes = 64;
  static_assert(sizeof(OpDescriptor) <= kDescriptorBytes, "the descriptor fits its line");

  size_t slotBytes() const override { return segment_.layout().slotBytes() - kDescriptorBytes; }
  int slotsPerRank() const override { return segment_.layout().slotsPerRank(); }
  uint8_t* slot(int localRank, int index) const override;

  void describe(int index, const OpDescriptor& descriptor) override;
  OpDescriptor descriptor(int localRank, int index) const override;

  void publishReady(uint32_t seq) override;
  bool readyReached(int localRank, uint32_t seq) const override;
  void publishDone(uint32_t seq) override;
  bool doneReached(int localRank, uint32_t seq) const override;
  bool sleepUntilReady(int localRank, uint32_t seq, int timeoutUs) const override;
  bool sleepUntilDone(int localRank, uint32_t seq, int timeoutUs) const override;

 private:
  const NodeSegment& segment_;
  int localRank_;
};

}  // namespace shm
}  // namespace ftccl
