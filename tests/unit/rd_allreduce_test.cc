// Recursive doubling all-reduce: its schedule for every rank count up to 1,024, and the
// algorithm over transports/sim for every rank count 1..9 x type x op x size class x
// placement, staging smaller than the buffer, bitwise agreement on inexact inputs,
// the keys it uses, abort at any point, and a peer that dies mid-operation.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "algorithms/recursive_doubling.h"
#include "sim_checks.h"
#include "sim_collective.h"

namespace ftccl {
namespace {

using testing::expectedReduction;
using testing::patternBuffer;
using testing::runAll;
using testing::runSkewed;
using testing::Staging;

// Every round pairs two ranks that name each other; every folded rank is absorbed by
// the rank that names it; every rank's input reaches every rank (by simulating which
// ranks each partial covers).
TEST(DoublingPlan, PairsAreMutualAndEveryRankHearsEveryOther) {
  for (int n = 1; n <= 1024; ++n) {
    std::vector<DoublingPlan> plans(n);
    for (int r = 0; r < n; ++r) plans[r] = doublingPlan(n, r);
    int p = 1;
    while (p * 2 <= n) p *= 2;
    int rounds = 0;
    while ((1 << rounds) < p) ++rounds;
    std::vector<std::vector<bool>> covers(n, std::vector<bool>(n, false));
    for (int r = 0; r < n; ++r) covers[r][r] = true;
    for (int r = 0; r < n; ++r) {
      const DoublingPlan& plan = plans[r];
      if (plan.role == DoublingPlan::kFolds) {
        ASSERT_TRUE(plan.partners.empty());
        ASSERT_EQ(plans[plan.neighbour].role, DoublingPlan::kAbsorbs) << n << " " << r;
        ASSERT_EQ(plans[plan.neighbour].neighbour, r);
        for (int q = 0; q < n; ++q)
          covers[plan.neighbour][q] = covers[plan.neighbour][q] || covers[r][q];
      } else {
        ASSERT_EQ(static_cast<int>(plan.partners.size()), rounds) << "n=" << n << " rank " << r;
      }
    }
    for (int k = 0; k < rounds; ++k) {
      std::vector<std::vector<bool>> next = covers;
      for (int r = 0; r < n; ++r) {
        if (plans[r].role == DoublingPlan::kFolds) continue;
        int q = plans[r].partners[k];
        ASSERT_NE(q, r);
        ASSERT_EQ(plans[q].partners[k], r) << "n=" << n << " round " << k << " rank " << r;
        for (int x = 0; x < n; ++x) next[r][x] = covers[r][x] || covers[q][x];
      }
      covers = next;
    }
    for (int r = 0; r < n; ++r) {
      int holder = plans[r].role == DoublingPlan::kFolds ? plans[r].neighbour : r;
      for (int x = 0; x < n; ++x) ASSERT_TRUE(covers[holder][x]) << n << " " << r << " " << x;
    }
  }
}

const ftcclDataType_t kTypes[] = {ftcclInt8,    ftcclUint8,   ftcclInt32,   ftcclUint32,
                                  ftcclInt64,   ftcclUint64,  ftcclFloat16, ftcclFloat32,
                                  ftcclFloat64, ftcclBfloat16};
const ftcclRedOp_t kOps[] = {ftcclSum, ftcclProd, ftcclMax, ftcclMin, ftcclAvg};
const size_t kCounts[] = {0, 1, 2, 7, 1001, 9 * 1024 + 3};

testing::OpFactory doublingOps(const Staging& staging) {
  return [&staging](Transport& transport, int rank, const CollectiveArgs& args) {
    return makeRecursiveDoublingAllReduce(transport, staging.scratch(rank), args);
  };
}

void expectExact(int n, ftcclDataType_t type, ftcclRedOp_t op, size_t count, const Staging& staging,
                 uint64_t skewSeed = 0) {
  testing::expectExactAllReduce(n, doublingOps(staging), type, op, count,
                                "staging=" + std::to_string(staging.slot * staging.slots),
                                skewSeed);
}

PipelineConfig pipelineOf(size_t chunkBytes, int channels) {
  PipelineConfig p;
  p.chunkBytes = chunkBytes;
  p.channels = channels;
  return p;
}

TEST(RecursiveDoublingSim, EveryRankCountTypeOpSizeInAndOutOfPlace) {
  PipelineConfig p = pipelineOf(64 * 1024, 2);
  for (int n = 1; n <= 9; ++n) {
    Staging staging(n, p);
    for (ftcclDataType_t type : kTypes) {
      for (ftcclRedOp_t op : kOps) {
        for (size_t count : kCounts) {
          ASSERT_NO_FATAL_FAILURE(expectExact(n, type, op, count, staging));
        }
      }
    }
  }
}

// Staging far smaller than the buffer (many chunks, each a whole schedule; one element
// per chunk at the extreme; 256 KiB chunks sent whole), with ranks progressing at very different
// paces: a chunk that overtook another, or staging reused too early, would give a wrong result.
TEST(RecursiveDoublingSim, ChunkedThroughSmallStagingUnderSkew) {
  for (int n : {2, 3, 5, 6, 8}) {
    for (ftcclDataType_t type : {ftcclInt8, ftcclFloat16, ftcclFloat32, ftcclFloat64}) {
      PipelineConfig p = pipelineOf(4096, 1);
      ASSERT_NO_FATAL_FAILURE(expectExact(n, type, ftcclSum, 5000, Staging(n, p, 128), 11));
      ASSERT_NO_FATAL_FAILURE(expectExact(n, type, ftcclAvg, 37, Staging(n, p, 8), 12));
      ASSERT_NO_FATAL_FAILURE(expectExact(n, type, ftcclMax, 9, Staging(n, p, 4), 13));
    }
    // 1 MiB chunks: more than 64 pieces' worth, so a round is one message.
    PipelineConfig p = pipelineOf(512 * 1024, 1);
    ASSERT_NO_FATAL_FAILURE(expectExact(n, ftcclFloat64, ftcclSum, 100003, Staging(n, p), 14));
  }
}

TEST(RecursiveDoublingSim, StagingTooSmallFailsEveryRank) {
  const int n = 5;
  Staging staging(n, pipelineOf(4096, 1), 1);
  staging.slots = 1;
  sim::SimFabric fabric(n);
  std::vector<std::vector<uint8_t>> in(n, std::vector<uint8_t>(400)), out;
  auto ops = testing::makeAllReduceOps(fabric, doublingOps(staging), ftcclFloat64, ftcclSum, 50,
                                       false, in, out);
  for (auto& op : ops) {
    bool done = false;
    EXPECT_EQ(op->progress(&done).code(), ftcclInvalidArgument);
    EXPECT_FALSE(done);
  }
  EXPECT_EQ(fabric.pending(), 0u);
}

// Partners compute the same combination, so every rank holds the same bits on inexact
// float inputs, run after run and however the ranks' progress interleaves.
TEST(RecursiveDoublingSim, EveryRankHoldsTheSameBitsOnInexactInputs) {
  for (int n = 2; n <= 9; ++n) {
    Staging staging(n, pipelineOf(4096, 2));
    ASSERT_NO_FATAL_FAILURE(
        testing::expectSameBitsOnInexactInputs(n, doublingOps(staging), "doubling", 5));
  }
}

// Nothing posted before the first progress(); all traffic on (opSeq, channel 0); the
// op names the partner it waits for and advances its progress mark.
TEST(RecursiveDoublingSim, KeysNoEarlyPostingProgressMarkAndPeers) {
  const int n = 6;
  const size_t count = 1000;
  Staging staging(n, pipelineOf(4096, 1));
  sim::SimFabric fabric(n);
  std::vector<std::vector<float>> data(n, std::vector<float>(count, 1.0f));
  std::vector<std::unique_ptr<testing::KeyRecorder>> recorders;  // outlive the ops
  std::vector<std::unique_ptr<Collective>> ops(n);
  for (int r = 0; r < n; ++r) {
    recorders.push_back(std::make_unique<testing::KeyRecorder>(fabric.transport(r)));
    CollectiveArgs args;
    args.sendbuff = args.recvbuff = data[r].data();
    args.count = count;
    args.opSeq = 1234;
    ops[r] = makeRecursiveDoublingAllReduce(*recorders[r], staging.scratch(r), args);
  }
  EXPECT_EQ(fabric.pending(), 0u);
  for (auto& rec : recorders) EXPECT_TRUE(rec->keys.empty());
  for (int r = 0; r < n; ++r) {
    bool done = false;
    ASSERT_TRUE(ops[r]->progress(&done).isOk());
    EXPECT_FALSE(done);
    std::vector<int> peers = ops[r]->pendingPeers();
    ASSERT_EQ(peers.size(), 1u) << r;
    DoublingPlan plan = doublingPlan(n, r);
    int expected = plan.role == DoublingPlan::kPlain ? plan.partners[0] : plan.neighbour;
    EXPECT_EQ(peers[0], expected) << r;
  }
  std::vector<uint64_t> marks(n);
  for (int r = 0; r < n; ++r) marks[r] = ops[r]->progressMark();
  ASSERT_TRUE(runAll(fabric, ops).isOk());
  for (int r = 0; r < n; ++r) {
    EXPECT_GT(ops[r]->progressMark(), marks[r]);
    EXPECT_TRUE(ops[r]->pendingPeers().empty());
    for (float v : data[r]) ASSERT_EQ(v, static_cast<float>(n));
    EXPECT_FALSE(recorders[r]->keys.empty());
    for (const MessageKey& key : recorders[r]->keys) {
      EXPECT_EQ(key.opSeq, 1234u);
      EXPECT_EQ(key.channel, 0u);
    }
  }
}

TEST(RecursiveDoublingSim, AbortAtAnyPointLeavesNothingPosted) {
  Staging staging(7, pipelineOf(1024, 1));
  testing::expectAbortAtAnyPointLeavesNothingPosted(7, ftcclInt32, 4000, doublingOps(staging));
}

// A folded rank, the rank absorbing it or a plain one dying, early and late; several
// chunks, so some deaths fall between chunks.
TEST(RecursiveDoublingSim, PeerDeathFailsTheOpAndAbortCancelsEverything) {
  const size_t count = 64 * 1024;
  Staging staging(6, pipelineOf(16 * 1024, 1));
  testing::expectPeerDeathFailsTheOp(6, ftcclFloat32, count, {0, 2, 5}, doublingOps(staging));
}

}  // namespace
}  // namespace ftccl
