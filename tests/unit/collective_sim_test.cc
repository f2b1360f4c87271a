// Ring all-reduce, chain and binomial broadcast, Send/Recv and sequences over transports/sim: every
// rank count 1..8, every datatype and op, size classes from empty to several chunks,
// in place and out of place, and a peer that dies mid-operation.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <vector>

#include "sim_checks.h"
#include "sim_collective.h"

namespace ftccl {
namespace {

using testing::expectedReduction;
using testing::patternBuffer;
using testing::runAll;
using testing::Staging;

const ftcclDataType_t kTypes[] = {ftcclInt8,    ftcclUint8,   ftcclInt32,   ftcclUint32,
                                  ftcclInt64,   ftcclUint64,  ftcclFloat16, ftcclFloat32,
                                  ftcclFloat64, ftcclBfloat16};
const ftcclRedOp_t kOps[] = {ftcclSum, ftcclProd, ftcclMax, ftcclMin, ftcclAvg};
// Empty, one element, odd, not a multiple of the ranks, and several 4 KiB chunks.
const size_t kCounts[] = {0, 1, 7, 1001, 9 * 1024 + 3};

PipelineConfig smallChunks() {
  PipelineConfig p;
  p.chunkBytes = 4096;
  p.channels = 2;
  return p;
}

testing::OpFactory ringOps(const Staging& staging, const PipelineConfig& p) {
  return [&staging, p](Transport& transport, int rank, const CollectiveArgs& args) {
    return makeRingAllReduce(transport, staging.scratch(rank), p, args);
  };
}

TEST(RingAllReduceSim, EveryRankCountTypeOpSizeInAndOutOfPlace) {
  PipelineConfig pipeline = smallChunks();
  for (int n = 1; n <= 8; ++n) {
    for (ftcclDataType_t type : kTypes) {
      for (ftcclRedOp_t op : kOps) {
        for (size_t count : kCounts) {
          Staging staging(n, pipeline);
          ASSERT_NO_FATAL_FAILURE(testing::expectExactAllReduce(n, ringOps(staging, pipeline), type,
                                                                op, count, "ring"));
        }
      }
    }
  }
}

// One broadcast of `count` elements of `type` from `root` on n ranks, in place or not,
// each rank's op made by `make`: every rank ends with the root's data.
void expectBroadcast(
    int n, int root, size_t count, ftcclDataType_t type, bool inPlace,
    const std::function<std::unique_ptr<Collective>(Transport&, const CollectiveArgs&)>& make) {
  sim::SimFabric fabric(n);
  std::vector<std::vector<uint8_t>> in(n), out;
  for (int r = 0; r < n; ++r) in[r] = patternBuffer(type, r == root ? 100 : r, count, ftcclSum);
  auto rooted = [&](Transport& transport, int, const CollectiveArgs& args) {
    CollectiveArgs withRoot = args;  // the all-reduce's buffers, with a root
    withRoot.root = root;
    return make(transport, withRoot);
  };
  auto ops = testing::makeAllReduceOps(fabric, rooted, type, ftcclSum, count, inPlace, in, out);
  ASSERT_TRUE(runAll(fabric, ops).isOk());
  std::vector<uint8_t> want = patternBuffer(type, 100, count, ftcclSum);
  for (int r = 0; r < n; ++r) {
    const uint8_t* got = inPlace ? in[r].data() : out[r].data();
    ASSERT_EQ(0, std::memcmp(got, want.data(), count * dataTypeSize(type)))
        << "n=" << n << " root=" << root << " count=" << count << " rank " << r;
  }
}

TEST(ChainBroadcastSim, EveryRankCountRootAndSize) {
  PipelineConfig pipeline = smallChunks();
  for (int n = 1; n <= 8; ++n) {
    for (int root = 0; root < n; ++root) {
      for (size_t count : kCounts) {
        for (bool inPlace : {false, true}) {
          ASSERT_NO_FATAL_FAILURE(expectBroadcast(n, root, count, ftcclInt32, inPlace,
                                                  [&](Transport& t, const CollectiveArgs& args) {
                                                    return makeChainBroadcast(t, pipeline, args);
                                                  }));
        }
      }
    }
  }
}

// The binomial tree: every rank count up to 33 and every root, in place and not; each
// rank receives once (n - 1 messages in all), and no path from the root is longer than
// ceil(log2 n) links.
TEST(BinomialBroadcastSim, EveryRankCountRootAndSize) {
  for (int n = 1; n <= 33; ++n) {
    int rounds = 0;
    while ((1 << rounds) < n) ++rounds;
    for (int root = 0; root < n; ++root) {
      int links = 0;
      for (int r = 0; r < n; ++r) {
        int depth = 0;
        for (int at = r; at != root; at = binomialLinks(at, n, root).parent) {
          ASSERT_GE(at, 0) << "n=" << n << " root=" << root << ": rank " << r << " is cut off";
          ASSERT_LE(++depth, rounds) << "n=" << n << " root=" << root << " rank " << r;
        }
        for (int child : binomialLinks(r, n, root).children) {
          ASSERT_EQ(binomialLinks(child, n, root).parent, r);
          ++links;
        }
      }
      ASSERT_EQ(links, n - 1);
      for (size_t count : kCounts) {
        for (bool inPlace : {false, true}) {
          ASSERT_NO_FATAL_FAILURE(
              expectBroadcast(n, root, count, ftcclFloat64, inPlace, makeBinomialBroadcast));
        }
      }
    }
  }
}

// Every rank sends to every other rank and receives from it, in one group: posted
// together, nothing deadlocks whatever the order, and each message lands where it must.
TEST(PointToPointSim, AllPairsInOneGroup) {
  for (int n = 1; n <= 8; ++n) {
    sim::SimFabric fabric(n);
    const size_t count = 333;
    std::vector<std::vector<int32_t>> send(n, std::vector<int32_t>(count)),
        recv(n, std::vector<int32_t>(count * n, -1));
    std::vector<std::unique_ptr<Collective>> ops(n);
    for (int r = 0; r < n; ++r) {
      for (size_t i = 0; i < count; ++i) send[r][i] = r * 100000 + static_cast<int>(i);
      std::vector<PointToPoint> transfers;
      for (int p = 0; p < n; ++p) {
        if (p == r) continue;
        MessageKey key{0, kPointToPointChannel};
        transfers.push_back({true, p, send[r].data(), count * 4, key});
        transfers.push_back({false, p, recv[r].data() + p * count, count * 4, key});
      }
      ops[r] = makePointToPoint(fabric.transport(r), std::move(transfers));
    }
    ASSERT_TRUE(runAll(fabric, ops).isOk());
    for (int r = 0; r < n; ++r) {
      for (int p = 0; p < n; ++p) {
        if (p == r) continue;
        for (size_t i = 0; i < count; ++i) ASSERT_EQ(recv[r][p * count + i], p * 100000 + int(i));
      }
    }
  }
}

// A peer that dies mid-collective fails the op on the ranks that talk to it, and abort
// leaves nothing posted: no hang, no leak.
TEST(RingAllReduceSim, PeerDeathFailsTheOpAndAbortCancelsEverything) {
  PipelineConfig pipeline = smallChunks();
  const int n = 4;
  const size_t count = 64 * 1024;
  sim::SimFabric fabric(n);
  Staging staging(n, pipeline);
  std::vector<std::vector<uint8_t>> in(n);
  std::vector<std::unique_ptr<Collective>> ops(n);
  for (int r = 0; r < n; ++r) {
    in[r] = patternBuffer(ftcclFloat32, r, count, ftcclSum);
    CollectiveArgs args;
    args.sendbuff = args.recvbuff = in[r].data();
    args.count = count;
    ops[r] = makeRingAllReduce(fabric.transport(r), staging.scratch(r), pipeline, args);
  }
  for (int round = 0; round < 20; ++round) {
    for (auto& op : ops) {
      bool done = false;
      ASSERT_TRUE(op->progress(&done).isOk());
    }
    fabric.progress();
  }
  fabric.kill(2);
  ops[2].reset();  // the dead rank's op is gone with it
  ops.erase(ops.begin() + 2);
  Status st = runAll(fabric, ops);
  EXPECT_EQ(st.code(), ftcclRemoteError) << st.message();
  for (auto& op : ops) op->abort();
  EXPECT_EQ(fabric.pending(), 0u);
}

}  // namespace
}  // namespace ftccl
