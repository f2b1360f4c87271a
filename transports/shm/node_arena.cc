#include "transports/shm/node_arena.h"

#include <chrono>
#include <cstring>

namespace ftccl {
namespace shm {

NodeArena::NodeArena(const NodeSegment& segment, int localRank)
    : segment_(segment), localRank_(localRank) {}

uint8_t* NodeArena::slot(int localRank, int index) const {
  return segment_.slot(localRank, index) + kDescriptorBytes;
}

void NodeArena::describe(int index, const OpDescriptor& descriptor) {
  std::memcpy(segment_.slot(localRank_, index), &descriptor, sizeof(descriptor));
}

NodeMemory::OpDescriptor NodeArena::descriptor(int localRank, int index) const {
  OpDescriptor descriptor;
  std::memcpy(&descriptor, segment_.slot(localRank, index), sizeof(descriptor));
  return descriptor;
}

void NodeArena::publishReady(uint32_t seq) { segment_.ready(localRank_).publish(seq); }

bool NodeArena::readyReached(int localRank, uint32_t seq) const {
  return segment_.ready(localRank).reached(seq);
}

void NodeArena::publishDone(uint32_t seq) { segment_.done(localRank_).publish(seq); }

bool NodeArena::doneReached(int localRank, uint32_t seq) const {
  return segment_.done(localRank).reached(seq);
}

bool NodeArena::sleepUntilReady(int localRank, uint32_t seq, int timeoutUs) const {
  return segment_.ready(localRank).sleepUntil(seq, std::chrono::microseconds(timeoutUs));
}

bool NodeArena::sleepUntilDone(int localRank, uint32_t seq, int timeoutUs) const {
  return segment_.done(localRank).sleepUntil(seq, std::chrono::microseconds(timeoutUs));
}

}  // namespace shm
}  // namespace ftccl
