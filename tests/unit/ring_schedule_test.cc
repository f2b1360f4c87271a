// The ring (its phases too) and chain schedules for every rank count 1..64, without a
// network.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "algorithms/ring.h"

namespace ftccl {
namespace {

TEST(RingSchedule, SegmentsTileTheBufferForAnyCount) {
  for (int n = 1; n <= 64; ++n) {
    for (size_t count :
         {size_t(0), size_t(1), size_t(n - 1), size_t(n), size_t(7), size_t(1000003)}) {
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

// The phases on their own, for both owner offsets in use (0: NCCL's ReduceScatter and
// AllGather, 1: the ring all-reduce) and every rank count 1..64.
TEST(RingPhases, SendsAndReceivesPairUpBetweenNeighbours) {
  for (int owner : {0, 1}) {
    for (int n = 1; n <= 64; ++n) {
      for (int r = 0; r < n; ++r) {
        RingPhases me(n, r, owner), left(n, me.prev(), owner);
        EXPECT_EQ(RingPhases(n, me.next(), owner).prev(), r);
        for (int k = 0; k < me.stepsPerPhase(); ++k) {
          EXPECT_EQ(left.reduceScatterSend(k), me.reduceScatterRecv(k))
              << "owner=" << owner << " n=" << n << " r=" << r << " k=" << k;
          EXPECT_EQ(left.allGatherSend(k), me.allGatherRecv(k))
              << "owner=" << owner << " n=" << n << " r=" << r << " k=" << k;
        }
      }
    }
  }
}

// Each block's reduction as the list of ranks in the order they were combined: every
// rank combines every block it receives exactly once, the owner ends with all n, and
// the all-gather delivers each owner's result (not a partial) to every rank.
TEST(RingPhases, ReduceScatterReducesEachBlockOnceThenAllGatherDeliversIt) {
  for (int owner : {0, 1}) {
    for (int n = 1; n <= 64; ++n) {
      // partial[r][b]: ranks whose input rank r's running partial of block b holds.
      std::vector<std::vector<std::vector<int>>> partial(n, std::vector<std::vector<int>>(n));
      for (int r = 0; r < n; ++r)
        for (int b = 0; b < n; ++b) partial[r][b] = {r};
      std::vector<std::vector<int>> reducedBy(n, std::vector<int>(n, 0));  // [rank][block]
      RingPhases probe(n, 0, owner);
      for (int k = 0; k < probe.stepsPerPhase(); ++k) {
        auto next = partial;
        for (int r = 0; r < n; ++r) {
          RingPhases me(n, r, owner);
          int b = me.reduceScatterRecv(k);
          // What arrives is the left neighbour's running partial; it must not already hold
          // this rank's input, or the rank would count itself twice.
          const std::vector<int>& in = partial[me.prev()][b];
          ASSERT_EQ(std::count(in.begin(), in.end(), r), 0) << n << " " << r << " " << k;
          next[r][b] = in;
          next[r][b].push_back(r);
          ++reducedBy[r][b];
        }
        partial = next;
      }
      std::vector<std::vector<int>> result(n);  // block b's full reduction, from its owner
      for (int r = 0; r < n; ++r) {
        RingPhases me(n, r, owner);
        int b = me.ownedBlock();
        ASSERT_EQ(partial[r][b].size(), size_t(n)) << "owner=" << owner << " n=" << n;
        EXPECT_EQ(partial[r][b].back(), r) << "the owner combines last";
        EXPECT_TRUE(result[b].empty()) << "block " << b << " has two owners";
        result[b] = partial[r][b];
        for (int c = 0; c < n; ++c) {
          // A rank combines every block but the one it starts (its own input is sent).
          int want = n == 1 ? 0 : (c == me.reduceScatterSend(0) ? 0 : 1);
          EXPECT_EQ(reducedBy[r][c], want) << "n=" << n << " rank " << r << " block " << c;
        }
      }
      // All-gather: the first send is the owned block; afterwards everyone has every
      // block exactly as its owner reduced it.
      std::vector<std::vector<std::vector<int>>> have(n, std::vector<std::vector<int>>(n));
      for (int r = 0; r < n; ++r) {
        RingPhases me(n, r, owner);
        if (n > 1) {
          EXPECT_EQ(me.allGatherSend(0), me.ownedBlock());
        }
        have[r][me.ownedBlock()] = result[me.ownedBlock()];
      }
      for (int k = 0; k < probe.stepsPerPhase(); ++k) {
        auto next = have;
        for (int r = 0; r < n; ++r) {
          RingPhases me(n, r, owner), left(n, me.prev(), owner);
          const std::vector<int>& in = have[me.prev()][left.allGatherSend(k)];
          ASSERT_FALSE(in.empty()) << "rank " << me.prev() << " forwards a block it lacks";
          EXPECT_TRUE(have[r][me.allGatherRecv(k)].empty()) << "a block arrives twice";
          next[r][me.allGatherRecv(k)] = in;
        }
        have = next;
      }
      for (int r = 0; r < n; ++r)
        for (int b = 0; b < n; ++b) EXPECT_EQ(have[r][b], result[b]) << n << " " << r << " " << b;
    }
  }
}

// The all-reduce's schedule is the phases with owner offset 1, back to back.
TEST(RingSchedule, IsTheTwoPhasesWithOwnerOffsetOne) {
  for (int n = 2; n <= 64; ++n) {
    for (int r = 0; r < n; ++r) {
      RingSchedule ring(n, r, 100);
      RingPhases phases(n, r, 1);
      for (int k = 0; k < n - 1; ++k) {
        EXPECT_EQ(ring.sendSegment(k), phases.reduceScatterSend(k));
        EXPECT_EQ(ring.recvSegment(k), phases.reduceScatterRecv(k));
        EXPECT_EQ(ring.sendSegment(n - 1 + k), phases.allGatherSend(k));
        EXPECT_EQ(ring.recvSegment(n - 1 + k), phases.allGatherRecv(k));
      }
      EXPECT_EQ(ring.ownedSegment(), phases.ownedBlock());
    }
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
