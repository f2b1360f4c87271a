// Tree all-reduce over transports/sim: every rank count 1..8 x type x op x size class x
// placement, chunking from one chunk to one element per chunk, the channels it uses,
// nothing posted before the first progress(), bitwise agreement on inexact inputs,
// abort at any point, and a peer that dies mid-operation.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "sim_checks.h"
#include "sim_collective.h"

namespace ftccl {
namespace {

using testing::expectedReduction;
using testing::KeyRecorder;
using testing::patternBuffer;
using testing::runAll;
using testing::Staging;

const ftcclDataType_t kTypes[] = {ftcclInt8,    ftcclUint8,   ftcclInt32,   ftcclUint32,
                                  ftcclInt64,   ftcclUint64,  ftcclFloat16, ftcclFloat32,
                                  ftcclFloat64, ftcclBfloat16};
const ftcclRedOp_t kOps[] = {ftcclSum, ftcclProd, ftcclMax, ftcclMin, ftcclAvg};
// Empty, one element (tree 1 empty), one per tree, odd, and several 4 KiB chunks per lane.
const size_t kCounts[] = {0, 1, 2, 7, 1001, 9 * 1024 + 3};

PipelineConfig pipelineOf(size_t chunkBytes, int channels) {
  PipelineConfig p;
  p.chunkBytes = chunkBytes;
  p.channels = channels;
  return p;
}

testing::OpFactory treeOps(const Staging& staging, const PipelineConfig& p) {
  return [&staging, p](Transport& transport, int rank, const CollectiveArgs& args) {
    return makeTreeAllReduce(transport, staging.scratch(rank), p, args);
  };
}

std::vector<std::unique_ptr<Collective>> makeOps(sim::SimFabric& fabric, const Staging& staging,
                                                 const PipelineConfig& p, ftcclDataType_t type,
                                                 ftcclRedOp_t op, size_t count, bool inPlace,
                                                 std::vector<std::vector<uint8_t>>& in,
                                                 std::vector<std::vector<uint8_t>>& out) {
  return testing::makeAllReduceOps(fabric, treeOps(staging, p), type, op, count, inPlace, in, out);
}

void expectExact(int n, const PipelineConfig& p, ftcclDataType_t type, ftcclRedOp_t op,
                 size_t count, const Staging& staging) {
  testing::expectExactAllReduce(n, treeOps(staging, p), type, op, count,
                                "chunkBytes=" + std::to_string(p.chunkBytes) +
                                    " channels=" + std::to_string(p.channels) +
                                    " slotBytes=" + std::to_string(staging.slot));
}
void expectExact(int n, const PipelineConfig& p, ftcclDataType_t type, ftcclRedOp_t op,
                 size_t count, size_t slotBytes = 0) {
  expectExact(n, p, type, op, count, Staging(n, p, slotBytes));
}

TEST(TreeAllReduceSim, EveryRankCountTypeOpSizeInAndOutOfPlace) {
  PipelineConfig p = pipelineOf(4096, 2);
  for (int n = 1; n <= 8; ++n) {
    Staging staging(n, p);
    for (ftcclDataType_t type : kTypes) {
      for (ftcclRedOp_t op : kOps) {
        for (size_t count : kCounts) {
          ASSERT_NO_FATAL_FAILURE(expectExact(n, p, type, op, count, staging));
        }
      }
    }
  }
}

// One chunk per tree (the small-message case the tree exists for), four channels.
TEST(TreeAllReduceSim, OneChunkPerTreeWithFourChannels) {
  PipelineConfig p = pipelineOf(64 * 1024, 4);
  for (int n = 1; n <= 8; ++n) {
    Staging staging(n, p);
    for (ftcclDataType_t type : kTypes) {
      for (ftcclRedOp_t op : kOps) {
        for (size_t count : {size_t(1), size_t(1001), size_t(9 * 1024 + 3)}) {
          ASSERT_NO_FATAL_FAILURE(expectExact(n, p, type, op, count, staging));
        }
      }
    }
  }
}

// Chunks that are not a multiple of the element, smaller than one element (one element
// per chunk, many per lane), three channels, and staging smaller than chunkBytes
// (the chunk shrinks to the sub-slot).
TEST(TreeAllReduceSim, OddChunkingAndSmallStaging) {
  for (int n : {2, 3, 5, 8}) {
    for (ftcclDataType_t type : {ftcclInt8, ftcclFloat16, ftcclFloat32, ftcclFloat64}) {
      ASSERT_NO_FATAL_FAILURE(expectExact(n, pipelineOf(4099, 3), type, ftcclSum, 5000));
      ASSERT_NO_FATAL_FAILURE(expectExact(n, pipelineOf(1, 3), type, ftcclAvg, 37));
      ASSERT_NO_FATAL_FAILURE(expectExact(n, pipelineOf(1, 1), type, ftcclMax, 9));
      ASSERT_NO_FATAL_FAILURE(expectExact(n, pipelineOf(4096, 2), type, ftcclProd, 3000, 256));
    }
  }
}

// Staging that cannot hold one element fails the op on every rank, posting nothing.
TEST(TreeAllReduceSim, StagingTooSmallFailsEveryRank) {
  PipelineConfig p = pipelineOf(4096, 2);
  const int n = 5;
  Staging staging(n, p, 1);
  sim::SimFabric fabric(n);
  std::vector<std::vector<uint8_t>> in(n, std::vector<uint8_t>(400)), out;
  auto ops = makeOps(fabric, staging, p, ftcclFloat64, ftcclSum, 50, false, in, out);
  for (auto& op : ops) {
    bool done = false;
    EXPECT_EQ(op->progress(&done).code(), ftcclInvalidArgument);
    EXPECT_FALSE(done);
  }
  EXPECT_EQ(fabric.pending(), 0u);
}

// Inexact float sums: a different combination order would give different bits, so
// every rank must hold the root's bits, and every run the same ones.
TEST(TreeAllReduceSim, EveryRankHoldsTheSameBitsOnInexactInputs) {
  for (PipelineConfig p : {pipelineOf(1 << 20, 4), pipelineOf(4096, 2), pipelineOf(256, 3)}) {
    for (int n = 2; n <= 8; ++n) {
      Staging staging(n, p);
      ASSERT_NO_FATAL_FAILURE(testing::expectSameBitsOnInexactInputs(
          n, treeOps(staging, p), "chunkBytes=" + std::to_string(p.chunkBytes)));
    }
  }
}

// Keys carry the op's sequence number and channels t * channels + lane only, all of
// them when there are enough chunks; nothing is posted before the first progress();
// the op advances its progress mark and names its peers while it waits.
TEST(TreeAllReduceSim, ChannelsNoEarlyPostingProgressMarkAndPeers) {
  for (int channels = 1; channels <= kMaxPipelineChannels; ++channels) {
    PipelineConfig p = pipelineOf(256, channels);
    const int n = 7;
    const size_t count = 64 * 100;
    Staging staging(n, p);
    sim::SimFabric fabric(n);
    std::vector<std::unique_ptr<KeyRecorder>> recorders;
    std::vector<std::vector<float>> data(n, std::vector<float>(count, 1.0f));
    std::vector<std::unique_ptr<Collective>> ops(n);
    for (int r = 0; r < n; ++r) {
      recorders.push_back(std::make_unique<KeyRecorder>(fabric.transport(r)));
      CollectiveArgs args;
      args.sendbuff = args.recvbuff = data[r].data();
      args.count = count;
      args.opSeq = 1234;
      ops[r] = makeTreeAllReduce(*recorders[r], staging.scratch(r), p, args);
    }
    EXPECT_EQ(fabric.pending(), 0u);
    for (auto& rec : recorders) EXPECT_TRUE(rec->keys.empty());
    bool sawPeers = false;
    for (int r = 0; r < n; ++r) {
      bool done = false;
      ASSERT_TRUE(ops[r]->progress(&done).isOk());
      EXPECT_FALSE(done);
      for (int peer : ops[r]->pendingPeers()) {
        EXPECT_TRUE(peer >= 0 && peer < n && peer != r) << peer;
        sawPeers = true;
      }
    }
    EXPECT_TRUE(sawPeers);
    std::vector<uint64_t> marks(n);
    for (int r = 0; r < n; ++r) marks[r] = ops[r]->progressMark();
    ASSERT_TRUE(runAll(fabric, ops).isOk());
    EXPECT_EQ(fabric.pending(), 0u);
    std::vector<bool> used(2 * channels, false);
    for (int r = 0; r < n; ++r) {
      EXPECT_GT(ops[r]->progressMark(), marks[r]);
      EXPECT_TRUE(ops[r]->pendingPeers().empty());
      for (const MessageKey& key : recorders[r]->keys) {
        EXPECT_EQ(key.opSeq, 1234u);
        ASSERT_LT(key.channel, static_cast<uint32_t>(2 * channels));
        used[key.channel] = true;
      }
      for (float v : data[r]) ASSERT_EQ(v, static_cast<float>(n));
    }
    for (int c = 0; c < 2 * channels; ++c) EXPECT_TRUE(used[c]) << "channel " << c;
  }
}

// Tracks each rank's posted, incomplete requests: (peer, send?, channel).
class PendingTracker final : public Transport {
 public:
  struct Posted {
    int peer;
    bool send;
    uint32_t channel;
  };
  explicit PendingTracker(Transport& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  Status isend(int peer, const void* buffer, size_t bytes, MessageKey key,
               TransportRequest** request) override {
    Status st = inner_.isend(peer, buffer, bytes, key, request);
    if (*request) posted_[*request] = {peer, true, key.channel};
    return st;
  }
  Status irecv(int peer, void* buffer, size_t bytes, MessageKey key,
               TransportRequest** request) override {
    Status st = inner_.irecv(peer, buffer, bytes, key, request);
    if (*request) posted_[*request] = {peer, false, key.channel};
    return st;
  }
  Status test(TransportRequest** request, bool* done) override {
    TransportRequest* r = *request;
    Status st = inner_.test(request, done);
    if (*done) posted_.erase(r);
    return st;
  }
  void cancel(TransportRequest** request) override {
    posted_.erase(*request);
    inner_.cancel(request);
  }
  bool progress() override { return inner_.progress(); }
  Status waitForActivity(int timeoutMs) override { return inner_.waitForActivity(timeoutMs); }
  void interrupt() override { inner_.interrupt(); }
  // A send to and a receive from one peer on one channel, both pending: a later chunk
  // going up while an earlier one comes down.
  bool upAndDownAtOnce() const {
    for (const auto& a : posted_) {
      for (const auto& b : posted_) {
        if (a.second.send && !b.second.send && a.second.peer == b.second.peer &&
            a.second.channel == b.second.channel) {
          return true;
        }
      }
    }
    return false;
  }

 private:
  Transport& inner_;
  std::map<TransportRequest*, Posted> posted_;
};

// The pipeline runs both ways at once: with many chunks on one lane, some rank waits
// for an earlier chunk from its parent while a later one is already on its way up.
TEST(TreeAllReduceSim, ChunksGoUpWhileEarlierOnesComeDown) {
  PipelineConfig p = pipelineOf(256, 1);
  const int n = 7;
  const size_t count = 6400;
  Staging staging(n, p);
  sim::SimFabric fabric(n);
  std::vector<std::unique_ptr<PendingTracker>> trackers;
  std::vector<std::vector<int32_t>> data(n, std::vector<int32_t>(count, 1));
  std::vector<std::unique_ptr<Collective>> ops(n);
  for (int r = 0; r < n; ++r) {
    trackers.push_back(std::make_unique<PendingTracker>(fabric.transport(r)));
    CollectiveArgs args;
    args.sendbuff = args.recvbuff = data[r].data();
    args.count = count;
    args.type = ftcclInt32;
    ops[r] = makeTreeAllReduce(*trackers[r], staging.scratch(r), p, args);
  }
  bool overlapped = false, all = false;
  for (int round = 0; round < 100000 && !all; ++round) {
    all = true;
    for (int r = 0; r < n; ++r) {
      bool done = false;
      ASSERT_TRUE(ops[r]->progress(&done).isOk());
      all = all && done;
      overlapped = overlapped || trackers[r]->upAndDownAtOnce();
    }
    fabric.progress();
  }
  ASSERT_TRUE(all);
  EXPECT_TRUE(overlapped);
  for (int r = 0; r < n; ++r) {
    for (int32_t v : data[r]) ASSERT_EQ(v, n);
  }
}

// An empty all-reduce posts nothing and finishes on its first progress().
TEST(TreeAllReduceSim, EmptyPostsNothing) {
  PipelineConfig p = pipelineOf(4096, 2);
  Staging staging(4, p);
  sim::SimFabric fabric(4);
  std::vector<std::vector<uint8_t>> in(4, std::vector<uint8_t>(1)), out;
  auto ops = makeOps(fabric, staging, p, ftcclFloat32, ftcclSum, 0, false, in, out);
  for (auto& op : ops) {
    bool done = false;
    ASSERT_TRUE(op->progress(&done).isOk());
    EXPECT_TRUE(done);
    EXPECT_EQ(fabric.pending(), 0u);
  }
}

TEST(TreeAllReduceSim, AbortAtAnyPointLeavesNothingPosted) {
  PipelineConfig p = pipelineOf(1024, 2);
  Staging staging(6, p);
  testing::expectAbortAtAnyPointLeavesNothingPosted(6, ftcclInt32, 4000, treeOps(staging, p));
}

// A root, an interior rank or a leaf dying, early and late.
TEST(TreeAllReduceSim, PeerDeathFailsTheOpAndAbortCancelsEverything) {
  PipelineConfig p = pipelineOf(4096, 2);
  const size_t count = 64 * 1024;
  Staging staging(6, p);
  testing::expectPeerDeathFailsTheOp(6, ftcclFloat32, count, {0, 3, 10}, treeOps(staging, p));
}

}  // namespace
}  // namespace ftccl
