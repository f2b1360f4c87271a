// The ring and chain schedules for every rank count 1..64, without a network.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "algorithms/ring.h"

namespace ftccl {
namespace {

TEST(RingSchedule, SegmentsTileTheBufferForAnyCount) {
  for (int n = 1; n <= 64; ++n) {
    for (size_t count : {size_t(0), size_t(1), size_t(n - 1), size_t(n), size_t(7),
                         size_t(1000003)}) {
      RingSchedule ring(n, 0, count);
      size_t next = 0, largest = 0;
      for (int s = 0; s < n; ++s) {
        Segment seg = ring.segment(s);
        EXPECT_EQ(seg.offset, next) << "n=" << n << " count=" << count << " seg=" << s;
        next += seg.count;
        largest = std::max(largest, seg.count);
        // Even split: sizes differ by at most one.
        EXPECT_LE(seg.count, count / n + 1);
        EXPECT_GE(seg.count, count / n);
      }
      EXPECT_EQ(next, count);
      EXPECT_EQ(ring.largestSegment(), largest);
    }
  }
}

// Simulates the ring's data flow symbolically: each segment accumulates the set of
// ranks whose input it holds. After reduce-scatter the owner holds all n; after
// all-gather every rank holds every segment's full set.
TEST(RingSchedule, ReduceScatterThenAllGatherDeliversEverything) {
  for (int n = 1; n <= 64; ++n) {
    // have[r][s]: contributions rank r holds for segment s.
    std::vector<std::vector<std::set<int>>> have(n, std::vector<std::set<int>>(n));
    for (int r = 0; r < n; ++r)
      for (int s = 0; s < n; ++s) have[r][s] = {r};
    for (int step = 0; step < 2 * (n - 1); ++step) {
      std::vector<std::vector<std::set<int>>> next = have;
      for (int r = 0; r < n; ++r) {
        RingSchedule ring(n, r, 100);
        RingSchedule sender(n, ring.prev(), 100);
        ASSERT_EQ(sender.sendSegment(step), ring.recvSegment(step))
            << "n=" << n << " rank " << r << " step " << step;
        int seg = ring.recvSegment(step);
        const std::set<int>& incoming = have[ring.prev()][seg];
        if (ring.isReduceScatterStep(step)) {
          // The received partial is combined with this rank's own input only.
          EXPECT_EQ(incoming.count(r), 0u) << "rank " << r << " would count itself twice";
          next[r][seg] = incoming;
          next[r][seg].insert(r);
        } else {
          next[r][seg] = incoming;
        }
      }
      have = next;
      if (step == n - 2) {
        for (int r = 0; r < n; ++r) {
          RingSchedule ring(n, r, 100);
          EXPECT_EQ(have[r][ring.ownedSegment()].size(), size_t(n)) << "n=" << n << " r=" << r;
        }
      }
    }
    for (int r = 0; r < n; ++r)
      for (int s = 0; s < n; ++s) EXPECT_EQ(have[r][s].size(), size_t(n)) << n << " " << r;
  }
}

TEST(RingSchedule, SlicesCoverSegmentsWithoutOverlap) {
  Segment seg{10, 23};
  size_t covered = 0;
  for (size_t slice = 0; slice < 5; ++slice) {
    Segment part = sliceOf(seg, slice, 5);
    EXPECT_EQ(part.offset, seg.offset + std::min(covered, seg.count));
    covered += part.count;
  }
  EXPECT_EQ(covered, seg.count);
  EXPECT_EQ(sliceOf(seg, 5, 5).count, 0u);
}

TEST(ChainSchedule, EveryRankReceivesOnceFromItsPredecessor) {
  for (int n = 1; n <= 64; ++n) {
    for (int root = 0; root < n; ++root) {
      std::vector<int> receivedFrom(n, -1);
      for (int r = 0; r < n; ++r) {
        ChainSchedule chain{n, r, root};
        if (!chain.isLast()) receivedFrom[chain.next()] = r;
      }
      for (int r = 0; r < n; ++r) {
        ChainSchedule chain{n, r, root};
        if (chain.isRoot()) {
          EXPECT_EQ(receivedFrom[r], -1) << "the root receives nothing";
        } else {
          EXPECT_EQ(receivedFrom[r], chain.prev());
        }
      }
    }
  }
}

}  // namespace
}  // namespace ftccl
