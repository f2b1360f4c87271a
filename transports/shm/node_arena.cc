#include "transports/shm/node_arena.h"

#include <chrono>
#include <cstring>

namespace ftccl {
namespace shm {

NodeArena::NodeArena(const NodeSegment& segment, int localRank)
    : segment_(segment), localRank_(localRank) {}

namespace {

// The descriptor in 22 bytes: count, sequence and op number whole; type, signature (8
// bits: opSignature's), op (collective << 8 | reduction) and root (a local rank, < 256)
// narrowed. Both sides narrow alike, so equal descriptors stay equal.
struct PackedDescriptor {
  uint64_t count;
  uint32_t seq, opSeq;
  uint8_t type, signature;
  uint16_t op, root;
};
static_assert(sizeof(PackedDescriptor) <= NodeArena::kPackedDescriptorBytes, "it fits");

uint8_t* descriptorAt(const NodeSegment& segment, int localRank, int index) {
  return segment.readySpare(localRank) +
         static_cast<size_t>(index % 2) * NodeArena::kPackedDescriptorBytes;
}

}  // namespace

uint8_t* NodeArena::slot(int localRank, int index) const { return segment_.slot(localRank, index); }

void NodeArena::describe(int index, const OpDescriptor& d) {
  PackedDescriptor packed{d.count,
                          d.seq,
                          d.opSeq,
                          static_cast<uint8_t>(d.type),
                          static_cast<uint8_t>(d.signature),
                          static_cast<uint16_t>(d.op),
                          static_cast<uint16_t>(d.root)};
  std::memcpy(descriptorAt(segment_, localRank_, index), &packed, sizeof(packed));
}

NodeMemory::OpDescriptor NodeArena::descriptor(int localRank, int index) const {
  PackedDescriptor packed;
  std::memcpy(&packed, descriptorAt(segment_, localRank, index), sizeof(packed));
  OpDescriptor d;
  d.count = packed.count;
  d.seq = packed.seq;
  d.opSeq = packed.opSeq;
  d.type = packed.type;
  d.signature = packed.signature;
  d.op = packed.op;
  d.root = packed.root;
  return d;
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
