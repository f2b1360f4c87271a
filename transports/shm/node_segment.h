// The shared-memory segment of one communicator on one node: the building block of the
// intra-node collectives (issue 26). Nothing here knows about collectives.
//
// Fault-safe by construction:
//  - The segment is a memfd (memfd_create), handed to the other local ranks as an fd.
//    It has no name in /dev/shm, so nothing is left behind even if every process is
//    SIGKILLed: the kernel frees it with the last fd and mapping.
//  - Its size is sealed (F_SEAL_SHRINK | F_SEAL_GROW) before it is handed on, and map()
//    requires the seals: nobody can truncate it under a mapping (a SIGBUS in a survivor).
//  - Memory is allocated (fallocate) when it is created, so a shortage is an error
//    there, not a SIGBUS at first touch; every page is then pre-faulted once.
//  - Each local rank's slots can be placed on its own NUMA node (create's
//    numaNodeOfRank): the policy is set on the memfd's pages before they are allocated,
//    so the leader's allocation puts every rank's slots next to the rank that writes
//    them; its peers read them once per chunk. Best effort: a refusal is reported,
//    and the pages then go where the kernel puts them (the leader's node).
//  - A rebuild maps a fresh segment with the new epoch in its header: a stale process
//    resumed after SIGSTOP can only write into the old one.
//  - Every wait on a flag (SeqFlag::sleepUntil) is bounded by a timeout its caller
//    chooses; the caller loops, checking revocation and its op timeout in between.
//
// Layout (offsets from NodeLayout; every rank maps the same bytes):
//
//   0                  SegmentHeader, one cache line (written once by the creator)
//   64 + 640*r         control block of local rank r: its "ready" FlagLine, its "done"
//                      FlagLine, then its MessageLines (4 per slot parity), each a
//                      64-byte line of its own (no false sharing)
//   segmentMetaBytes   slot 0 of rank 0, slot 1 of rank 0, ..., then those of rank 1, ...
//                      each slotBytes rounded up to 4 KiB, so every slot starts on a page
//
// Bounds (constexpr, below): with localSize ranks, S = roundUp(slotBytes, 4 KiB) and
// k slots per rank,
//   per rank: segmentBytesPerRank = 640 + k * S
//   per node: segmentBytesPerNode = roundUp(64 + 640 * localSize, 4 KiB) + localSize * k * S
// and never more than kMaxSegmentBytes. The default (256 KiB x 2 slots) takes 512 KiB
// and 640 B per rank: 4 MiB + 8 KiB for 8 ranks, 128 MiB + 164 KiB for 256.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "util/net/socket.h"
#include "util/status.h"

namespace ftccl {
namespace shm {

constexpr size_t kCacheLine = 64;
// Slot alignment: 4 KiB, a multiple of the cache line and the page size of x86.
constexpr size_t kSlotAlign = 4096;
constexpr int kMaxLocalRanks = 256;
constexpr int kMaxSlotsPerRank = 4;
constexpr size_t kMaxSlotBytes = size_t{64} << 20;
// The whole segment: refuses layouts (and fds) beyond it, e.g. 256 ranks x 4 x 64 MiB.
constexpr size_t kMaxSegmentBytes = size_t{16} << 30;
constexpr size_t kDefaultSlotBytes = size_t{256} << 10;
constexpr int kDefaultSlotsPerRank = 2;  // double buffering: fill one while peers read one

// How long a waiter sleeps between checks of its own abort conditions (revocation, the
// op timeout): the bound on how late it notices them.
constexpr std::chrono::microseconds kSleepStep{1000};

constexpr uint64_t kSegmentMagic = 0x6d68732d6c636374;  // "tccl-shm", little-endian
constexpr uint32_t kSegmentVersion = 2;

constexpr size_t roundUp(size_t n, size_t align) { return (n + align - 1) / align * align; }

// One 32-bit sequence word used as a futex, and the count of processes that may be
// sleeping on it, on a cache line of their own; the rest of the line is the owner's, for
// what a reader wants together with the flag (NodeArena puts the op descriptors there:
// one line to move between cores instead of two).
struct alignas(kCacheLine) FlagLine {
  std::atomic<uint32_t> seq{0};
  std::atomic<uint32_t> waiters{0};
  uint8_t spare[kCacheLine - 2 * sizeof(uint32_t)] = {};
};
constexpr size_t kFlagSpareOffset = 2 * sizeof(uint32_t);
constexpr size_t kFlagSpareBytes = kCacheLine - kFlagSpareOffset;
static_assert(sizeof(FlagLine) == kCacheLine, "a flag is one cache line");
// The futex is the atomic's own word, shared between processes: it must be lock-free
// (address-free) and exactly 32 bits.
static_assert(std::atomic<uint32_t>::is_always_lock_free, "a futex word must be lock-free");
static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "a futex word is 32 bits");

// One line of a small message (the latency path): its own sequence word and 56 bytes,
// written by its owner before the sequence (release), so a reader that sees the sequence
// has the bytes from the same cache line. A flag and a separate slot line cost four line
// transfers one after the other (the writer's two misses, then the reader's); the lines
// of a message cost one each, and in parallel.
struct alignas(kCacheLine) MessageLine {
  std::atomic<uint32_t> seq{0};
  uint32_t reserved = 0;
  uint8_t bytes[kCacheLine - 2 * sizeof(uint32_t)] = {};
};
static_assert(sizeof(MessageLine) == kCacheLine, "a message line is one cache line");
constexpr int kMessageLines = 4;  // per rank and slot parity
constexpr size_t kMessageLineBytes = sizeof(MessageLine::bytes);

struct ControlBlock {
  FlagLine ready;  // the rank's data for op `seq` is in its slot
  FlagLine done;   // the rank has finished reading its peers' slots for op `seq`
  MessageLine lines[2][kMessageLines];  // small messages, by slot parity
};
static_assert(sizeof(ControlBlock) == (2 + 2 * kMessageLines) * kCacheLine, "lines per rank");

// Written by the creator before the fd is handed on, verified by every mapper.
struct SegmentHeader {
  uint64_t magic;
  uint32_t version;
  uint32_t epoch;
  uint32_t localSize;
  uint32_t slotsPerRank;
  uint64_t slotBytes;  // rounded to kSlotAlign
  uint64_t totalBytes;
};
static_assert(sizeof(SegmentHeader) <= kCacheLine, "the header is one cache line");

constexpr size_t kControlBytesPerRank = sizeof(ControlBlock);

// Header and control blocks, rounded up so the slots start on a page.
constexpr size_t segmentMetaBytes(int localSize) {
  return roundUp(kCacheLine + kControlBytesPerRank * static_cast<size_t>(localSize), kSlotAlign);
}
constexpr size_t segmentBytesPerRank(size_t slotBytes, int slotsPerRank) {
  return kControlBytesPerRank + static_cast<size_t>(slotsPerRank) * roundUp(slotBytes, kSlotAlign);
}
constexpr size_t segmentBytesPerNode(int localSize, size_t slotBytes, int slotsPerRank) {
  return segmentMetaBytes(localSize) + static_cast<size_t>(localSize) *
                                           static_cast<size_t>(slotsPerRank) *
                                           roundUp(slotBytes, kSlotAlign);
}
static_assert(segmentBytesPerRank(kDefaultSlotBytes, kDefaultSlotsPerRank) == (512 << 10) + 640);
static_assert(segmentBytesPerNode(8, kDefaultSlotBytes, kDefaultSlotsPerRank) == (4 << 20) + 8192);
static_assert(segmentBytesPerNode(kMaxLocalRanks, kDefaultSlotBytes, kDefaultSlotsPerRank) ==
              (size_t{128} << 20) + 167936);

// True when `current` is at or past `want`, modulo 2^32: sequences wrap, and a
// difference of less than 2^31 decides.
constexpr bool seqReached(uint32_t current, uint32_t want) {
  return static_cast<int32_t>(current - want) >= 0;
}

// Where everything lives in a segment, from its parameters alone: every rank computes
// the same layout, and the creator's header must agree with it.
class NodeLayout {
 public:
  // localSize 1..kMaxLocalRanks, slotBytes 1..kMaxSlotBytes (rounded up to kSlotAlign),
  // slotsPerRank 1, 2 or 4 (a power of two), at most kMaxSegmentBytes in all.
  static Status make(int localSize, size_t slotBytes, int slotsPerRank, uint32_t epoch,
                     NodeLayout* out);

  int localSize() const { return localSize_; }
  int slotsPerRank() const { return slotsPerRank_; }
  size_t slotBytes() const { return slotBytes_; }
  uint32_t epoch() const { return epoch_; }
  size_t totalBytes() const { return totalBytes_; }

  static constexpr size_t headerOffset() { return 0; }
  size_t readyOffset(int localRank) const { return controlOffset(localRank); }
  size_t doneOffset(int localRank) const { return controlOffset(localRank) + kCacheLine; }
  // Message line `line` (0..kMessageLines-1) of `localRank` for slot parity `parity`.
  size_t lineOffset(int localRank, int parity, int line) const {
    return controlOffset(localRank) + 2 * kCacheLine +  // after the ready and done lines
           static_cast<size_t>(parity * kMessageLines + line) * kCacheLine;
  }
  size_t slotOffset(int localRank, int slot) const {
    return segmentMetaBytes(localSize_) +
           (static_cast<size_t>(localRank) * slotsPerRank_ + slot) * slotBytes_;
  }

 private:
  static size_t controlOffset(int localRank) {
    return kCacheLine + kControlBytesPerRank * static_cast<size_t>(localRank);
  }

  int localSize_ = 0;
  int slotsPerRank_ = 0;
  size_t slotBytes_ = 0;
  uint32_t epoch_ = 0;
  size_t totalBytes_ = 0;
};

// A view of one FlagLine: one writer publishes increasing sequence numbers, any number
// of readers poll them (progress()) or sleep until one is reached. Copyable; valid as
// long as the segment is mapped.
class SeqFlag {
 public:
  explicit SeqFlag(FlagLine* line) : line_(line) {}

  uint32_t load() const { return line_->seq.load(std::memory_order_acquire); }
  // Non-blocking: whether the flag is at or past `want` (acquire: the writer's data
  // written before its publish is visible after this returns true).
  bool reached(uint32_t want) const { return seqReached(load(), want); }
  // Stores `seq` (releasing the data written before it) and wakes sleepers, with a
  // syscall only when one may be sleeping.
  void publish(uint32_t seq);
  // Stores `seq` (release) and wakes nobody: for a value no reader sleeps for.
  void store(uint32_t seq) { line_->seq.store(seq, std::memory_order_release); }
  // Sleeps until the flag reaches `want` or `timeout` passes (a signal or a spurious
  // wake-up ends it early); returns reached(want). Callers loop, checking revocation and
  // the op timeout between calls: a dead writer is never detected here.
  bool sleepUntil(uint32_t want, std::chrono::microseconds timeout = kSleepStep) const;
  // Processes registered as possible sleepers (diagnostics and tests).
  uint32_t waiters() const { return line_->waiters.load(std::memory_order_relaxed); }

 private:
  FlagLine* line_;
};

// One mapping of a segment. Move-only; unmaps and closes its fd on destruction.
class NodeSegment {
 public:
  // For the node leader: a new sealed memfd of layout.totalBytes(), allocated,
  // pre-faulted and with the header written. Hand fd() on to the other local ranks.
  // numaNodeOfRank[r] >= 0: local rank r's slots prefer that NUMA node (the kernel's
  // number); -1 or a short list: the kernel's default.
  static Status create(const NodeLayout& layout, NodeSegment* out,
                       const std::vector<int>& numaNodeOfRank = {});
  // For the other local ranks, with an fd received from the leader (not taken over: the
  // segment keeps a duplicate, the caller closes its own). Refuses an fd that is not
  // sealed, whose size is not layout.totalBytes() or exceeds kMaxSegmentBytes, or whose
  // header disagrees with the layout (magic, version, epoch, sizes).
  static Status map(int fd, const NodeLayout& layout, NodeSegment* out);

  NodeSegment() = default;
  NodeSegment(NodeSegment&& other) noexcept { swap(other); }
  NodeSegment& operator=(NodeSegment&& other) noexcept;
  NodeSegment(const NodeSegment&) = delete;
  NodeSegment& operator=(const NodeSegment&) = delete;
  ~NodeSegment();

  bool valid() const { return base_ != nullptr; }
  // After create: "" when every rank's slots were placed as asked (or nothing was
  // asked), else why not (the segment works all the same).
  const std::string& placementProblem() const { return placementProblem_; }
  int fd() const { return fd_.get(); }
  const NodeLayout& layout() const { return layout_; }
  uint8_t* base() const { return base_; }
  SeqFlag ready(int localRank) const { return flagAt(layout_.readyOffset(localRank)); }
  SeqFlag done(int localRank) const { return flagAt(layout_.doneOffset(localRank)); }
  // The spare bytes of `localRank`'s ready line (kFlagSpareBytes): written by it only.
  uint8_t* readySpare(int localRank) const {
    return base_ + layout_.readyOffset(localRank) + kFlagSpareOffset;
  }
  uint8_t* slot(int localRank, int index) const {
    return base_ + layout_.slotOffset(localRank, index);
  }
  MessageLine* line(int localRank, int parity, int line) const {
    return reinterpret_cast<MessageLine*>(base_ + layout_.lineOffset(localRank, parity, line));
  }

 private:
  SeqFlag flagAt(size_t offset) const {
    return SeqFlag(reinterpret_cast<FlagLine*>(base_ + offset));
  }
  void swap(NodeSegment& other) noexcept;
  Status mapFd(const NodeLayout& layout);
  void prefault() const;
  void place(const std::vector<int>& numaNodeOfRank);

  net::Fd fd_;
  uint8_t* base_ = nullptr;
  NodeLayout layout_;
  std::string placementProblem_;
};

}  // namespace shm
}  // namespace ftccl
