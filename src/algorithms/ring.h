// Ring schedule math, header-only so that unit tests check it for every rank count
// without a network.
//
// RingPhases: which block each rank sends, receives and reduces at each step of the
// two ring phases, for blocks 0..n-1 and an owner offset o (rank r ends the
// reduce-scatter with the full reduction of block r + o). Reduce-scatter step k
// (0 <= k < n-1) sends block (r + o - 1 - k) and receives block (r + o - 2 - k), which
// it reduces with its own input; the last receive is block r + o. All-gather step k
// then sends block (r + o - k) and receives block (r + o - 1 - k) in place, so the
// first send is the owned block. Every block is therefore reduced in the same order on
// every run (starting at the rank after its owner), and the owner's bits are what
// every rank ends with. NCCL's ReduceScatter and AllGather use o = 0 (rank r owns part
// r); the ring all-reduce uses o = 1.
//
// RingSchedule: the ring all-reduce's 2(n-1) steps over a buffer of `count` elements
// cut into n segments as evenly as possible (the first count % n segments hold one
// element more).
#pragma once

#include <cstddef>

namespace ftccl {

// Block arithmetic of the reduce-scatter and all-gather phases (see above).
class RingPhases {
 public:
  RingPhases(int nranks, int rank, int ownerOffset)
      : n_(nranks), rank_(rank), owner_(ownerOffset) {}

  int nranks() const { return n_; }
  int next() const { return mod(rank_ + 1); }
  int prev() const { return mod(rank_ - 1); }
  int stepsPerPhase() const { return n_ - 1; }

  int reduceScatterSend(int step) const { return mod(rank_ + owner_ - 1 - step); }
  int reduceScatterRecv(int step) const { return mod(rank_ + owner_ - 2 - step); }
  int allGatherSend(int step) const { return mod(rank_ + owner_ - step); }
  int allGatherRecv(int step) const { return mod(rank_ + owner_ - 1 - step); }
  // The block this rank fully reduces (the last reduce-scatter receive).
  int ownedBlock() const { return mod(rank_ + owner_); }
  bool isLastStep(int step) const { return step == n_ - 2; }

 private:
  int mod(int x) const { return ((x % n_) + n_) % n_; }
  int n_;
  int rank_;
  int owner_;
};

struct Segment {
  size_t offset = 0;  // in elements
  size_t count = 0;
};

class RingSchedule {
 public:
  RingSchedule(int nranks, int rank, size_t count)
      : n_(nranks), rank_(rank), count_(count), phases_(nranks, rank, 1) {}

  int nranks() const { return n_; }
  int rank() const { return rank_; }
  int next() const { return phases_.next(); }
  int prev() const { return phases_.prev(); }
  int steps() const { return 2 * (n_ - 1); }  // reduce-scatter then all-gather
  bool isReduceScatterStep(int step) const { return step < n_ - 1; }

  Segment segment(int index) const {
    size_t base = count_ / n_, extra = count_ % n_;
    size_t i = static_cast<size_t>(index);
    return {i * base + (i < extra ? i : extra), base + (i < extra ? 1 : 0)};
  }
  size_t largestSegment() const { return count_ / n_ + (count_ % n_ ? 1 : 0); }

  int sendSegment(int step) const {
    return isReduceScatterStep(step) ? phases_.reduceScatterSend(step)
                                     : phases_.allGatherSend(step - (n_ - 1));
  }
  int recvSegment(int step) const {
    return isReduceScatterStep(step) ? phases_.reduceScatterRecv(step)
                                     : phases_.allGatherRecv(step - (n_ - 1));
  }
  // The segment this rank fully reduces (the last reduce-scatter step's receive).
  int ownedSegment() const { return phases_.ownedBlock(); }

 private:
  int n_;
  int rank_;
  size_t count_;
  RingPhases phases_;
};

// Slice `slice` of a segment when each slice holds `sliceElems` elements (may be empty).
inline Segment sliceOf(const Segment& seg, size_t slice, size_t sliceElems) {
  size_t begin = slice * sliceElems;
  if (begin >= seg.count) return {seg.offset + seg.count, 0};
  size_t end = begin + sliceElems < seg.count ? begin + sliceElems : seg.count;
  return {seg.offset + begin, end - begin};
}

// A chain rooted at `root`: position 0 is the root, each rank forwards to the next.
struct ChainSchedule {
  int n, rank, root;
  int position() const { return (rank - root + n) % n; }
  int prev() const { return (rank - 1 + n) % n; }
  int next() const { return (rank + 1) % n; }
  bool isRoot() const { return rank == root; }
  bool isLast() const { return position() == n - 1; }
};

}  // namespace ftccl
