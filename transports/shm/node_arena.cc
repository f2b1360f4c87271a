#include "transports/shm/node_arena.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>

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

PackedDescriptor pack(const NodeMemory::OpDescriptor& d) {
  return PackedDescriptor{d.count,
                          d.seq,
                          d.opSeq,
                          static_cast<uint8_t>(d.type),
                          static_cast<uint8_t>(d.signature),
                          static_cast<uint16_t>(d.op),
                          static_cast<uint16_t>(d.root)};
}

NodeMemory::OpDescriptor unpack(const uint8_t* at) {
  PackedDescriptor packed;
  std::memcpy(&packed, at, sizeof(packed));
  NodeMemory::OpDescriptor d;
  d.count = packed.count;
  d.seq = packed.seq;
  d.opSeq = packed.opSeq;
  d.type = packed.type;
  d.signature = packed.signature;
  d.op = packed.op;
  d.root = packed.root;
  return d;
}

// Lines a message of `bytes` takes: line 0 always (it carries the descriptor).
int linesFor(size_t bytes) {
  if (bytes <= NodeArena::kFirstLineBytes) return 1;
  return 1 + static_cast<int>((bytes - NodeArena::kFirstLineBytes + kMessageLineBytes - 1) /
                              kMessageLineBytes);
}

}  // namespace

uint8_t* NodeArena::slot(int localRank, int index) const { return segment_.slot(localRank, index); }

void NodeArena::describe(int index, const OpDescriptor& d) {
  PackedDescriptor packed = pack(d);
  std::memcpy(descriptorAt(segment_, localRank_, index), &packed, sizeof(packed));
}

NodeMemory::OpDescriptor NodeArena::descriptor(int localRank, int index) const {
  return unpack(descriptorAt(segment_, localRank, index));
}

void NodeArena::writeLines(int index, const OpDescriptor& d, const void* data, size_t bytes) {
  bytes = std::min(bytes, kLineMessageBytes);  // callers pass no more; the lines hold no more
  const auto* in = static_cast<const uint8_t*>(data);
  const int parity = index % 2;
  MessageLine* first = segment_.line(localRank_, parity, 0);
  PackedDescriptor packed = pack(d);
  std::memcpy(first->bytes, &packed, sizeof(packed));
  size_t head = std::min(bytes, kFirstLineBytes);
  if (head) std::memcpy(first->bytes + kPackedDescriptorBytes, in, head);
  first->seq.store(d.seq, std::memory_order_release);
  for (size_t done = head, line = 1; done < bytes; done += kMessageLineBytes, ++line) {
    MessageLine* next = segment_.line(localRank_, parity, static_cast<int>(line));
    std::memcpy(next->bytes, in + done, std::min(kMessageLineBytes, bytes - done));
    next->seq.store(d.seq, std::memory_order_release);
  }
}

bool NodeArena::linesReached(int localRank, int index, uint32_t seq, size_t bytes) const {
  const int parity = index % 2;
  bool all = true;  // every line read, so that their misses overlap
  for (int line = 0, n = linesFor(std::min(bytes, kLineMessageBytes)); line < n; ++line) {
    all &= seqReached(segment_.line(localRank, parity, line)->seq.load(std::memory_order_acquire),
                      seq);
  }
  return all;
}

NodeMemory::OpDescriptor NodeArena::lineDescriptor(int localRank, int index) const {
  return unpack(segment_.line(localRank, index % 2, 0)->bytes);
}

void NodeArena::readLines(int localRank, int index, void* out, size_t bytes) const {
  bytes = std::min(bytes, kLineMessageBytes);
  auto* to = static_cast<uint8_t*>(out);
  const int parity = index % 2;
  size_t head = std::min(bytes, kFirstLineBytes);
  if (head) {
    std::memcpy(to, segment_.line(localRank, parity, 0)->bytes + kPackedDescriptorBytes, head);
  }
  for (size_t done = head, line = 1; done < bytes; done += kMessageLineBytes, ++line) {
    std::memcpy(to + done, segment_.line(localRank, parity, static_cast<int>(line))->bytes,
                std::min(kMessageLineBytes, bytes - done));
  }
}

void NodeArena::publishReady(uint32_t seq) { segment_.ready(localRank_).publish(seq); }

bool NodeArena::readyReached(int localRank, uint32_t seq) const {
  return segment_.ready(localRank).reached(seq);
}

void NodeArena::publishDone(uint32_t seq) { segment_.done(localRank_).publish(seq); }

void NodeArena::publishDoneUnwaited(uint32_t seq) { segment_.done(localRank_).store(seq); }

bool NodeArena::doneReached(int localRank, uint32_t seq) const {
  return segment_.done(localRank).reached(seq);
}

bool NodeArena::sleepUntilReady(int localRank, uint32_t seq, int timeoutUs) const {
  return segment_.ready(localRank).sleepUntil(seq, std::chrono::microseconds(timeoutUs));
}

bool NodeArena::sleepUntilDone(int localRank, uint32_t seq, int timeoutUs) const {
  return segment_.done(localRank).sleepUntil(seq, std::chrono::microseconds(timeoutUs));
}

Status NodeArena::readPeer(int localRank, uint64_t address, void* out, size_t bytes,
                           int64_t aliveAtNs) const {
  if (!singleCopy_) return NodeMemory::readPeer(localRank, address, out, bytes);
  return reader_.read(localRank, address, out, bytes, aliveAtNs);
}

namespace {

// In slot 0 until the first op: where a rank's probe word lives, and what it holds.
struct ProbeRecord {
  uint64_t magic;
  uint64_t address;
  uint64_t value;
};
constexpr uint64_t kProbeMagic = 0x65626f72702d6370;  // "pc-probe", little-endian

}  // namespace

void NodeArena::publishProbe() {
  // Not a secret: it only shows that a read reached this word of this process.
  probeWord_ = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
               (static_cast<uint64_t>(getpid()) << 40) ^ reinterpret_cast<uintptr_t>(this);
  ProbeRecord record{kProbeMagic, reinterpret_cast<uintptr_t>(&probeWord_), probeWord_};
  std::memcpy(slot(localRank_, 0), &record, sizeof(record));
}

Status NodeArena::probeSingleCopy(const std::vector<pid_t>& pids) {
  singleCopy_ = false;
  if (static_cast<int>(pids.size()) != localSize()) {
    return invalidArgument("single copy: " + std::to_string(pids.size()) + " pids for " +
                           std::to_string(localSize()) + " local ranks");
  }
  FTCCL_CHECK(reader_.open(pids));
  for (int r = 0; r < localSize(); ++r) {
    if (r == localRank_) continue;
    ProbeRecord record;
    std::memcpy(&record, slot(r, 0), sizeof(record));
    if (record.magic != kProbeMagic) {
      return internalError("single copy: local rank " + std::to_string(r) + " published no probe");
    }
    uint64_t got = 0;
    Status read = reader_.read(r, record.address, &got, sizeof(got));
    if (read.isOk() && got != record.value) {
      read = internalError("single copy: local rank " + std::to_string(r) +
                           "'s probe word reads wrong");
    }
    if (!read.isOk()) {
      reader_ = PeerReader();
      return read;
    }
  }
  return Status::ok();
}

}  // namespace shm
}  // namespace ftccl
