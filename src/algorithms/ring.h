// Ring schedule math, header-only so that unit tests check it for every rank count
// without a network.
//
// The buffer of `count` elements is cut into nranks segments as evenly as possible
// (the first count % nranks segments hold one element more). Reduce-scatter step k
// (0 <= k < n-1) sends segment (rank - k) and receives segment (rank - k - 1), which
// it reduces with its own input; after n-1 steps rank r owns the full result of
// segment (r + 1). All-gather step j (0 <= j < n-1) then sends segment (r + 1 - j)
// and receives segment (r - j) in place. Every segment is therefore reduced in the
// same order on every run (starting at the rank after its owner), and the owner's
// bits are what every rank ends with.
#pragma once

#include <cstddef>

namespace ftccl {

struct Segment {
  size_t offset = 0;  // in elements
  size_t count = 0;
};

class RingSchedule {
 public:
  RingSchedule(int nranks, int rank, size_t count) : n_(nranks), rank_(rank), count_(count) {}

  int nranks() const { return n_; }
  int rank() const { return rank_; }
  int next() const { return mod(rank_ + 1); }
  int prev() const { return mod(rank_ - 1); }
  int steps() const { return 2 * (n_ - 1); }  // reduce-scatter then all-gather
  bool isReduceScatterStep(int step) const { return step < n_ - 1; }

  Segment segment(int index) const {
    size_t base = count_ / n_, extra = count_ % n_;
    size_t i = static_cast<size_t>(index);
    return {i * base + (i < extra ? i : extra), base + (i < extra ? 1 : 0)};
  }
  size_t largestSegment() const { return count_ / n_ + (count_ % n_ ? 1 : 0); }

  int sendSegment(int step) const {
    return isReduceScatterStep(step) ? mod(rank_ - step) : mod(rank_ + 1 - (step - (n_ - 1)));
  }
  int recvSegment(int step) const {
    return isReduceScatterStep(step) ? mod(rank_ - step - 1) : mod(rank_ - (step - (n_ - 1)));
  }
  // The segment this rank fully reduces (the last reduce-scatter step's receive).
  int ownedSegment() const { return mod(rank_ + 1); }

 private:
  int mod(int x) const { return ((x % n_) + n_) % n_; }
  int n_;
  int rank_;
  size_t count_;
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
