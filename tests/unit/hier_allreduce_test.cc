// Hierarchical all-reduce over transports/sim: equal nodes (2x2, 2x4, 4x2, 3x2), uneven
// ones (3+2, 1+3, 2+2+1), degenerate ones (one node, one rank per node) and a
// non-contiguous assignment, for every type and op, size classes and placements; and a
// peer death in the equal and the node-leader scheme. The same layouts with the
// intra-node phases over a real shared-memory segment per node (issue 26), where a wait
// inside a node must show as a wait on a flag.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "sim_checks.h"
#include "sim_collective.h"
#include "transports/shm/node_arena.h"
#include "transports/shm/node_segment.h"

namespace ftccl {
namespace {

using testing::expectedReduction;
using testing::patternBuffer;
using testing::runAll;
using testing::runSkewed;
using testing::Staging;

using Layout = std::vector<std::vector<int>>;

const Layout kLayouts[] = {
    {{0, 1}, {2, 3}},
    {{0, 1, 2, 3}, {4, 5, 6, 7}},
    {{0, 1}, {2, 3}, {4, 5}, {6, 7}},
    {{0, 1}, {2, 3}, {4, 5}},
    {{0, 1, 2}, {3, 4}},
    {{0}, {1, 2, 3}},
    {{0, 1}, {2, 3}, {4}},
    {{0, 1, 2, 3}},
    {{0}, {1}, {2}, {3}},
    {{0, 2}, {1, 3}},
    {{3, 1}, {0, 2}},
};

int rankCount(const Layout& layout) {
  int n = 0;
  for (const auto& node : layout) n += static_cast<int>(node.size());
  return n;
}

PipelineConfig smallChunks() {
  PipelineConfig p;
  p.chunkBytes = 4096;
  p.channels = 2;
  return p;
}

testing::OpFactory hierOps(const Staging& staging, const PipelineConfig& p, const Layout& layout) {
  return [&staging, p, &layout](Transport& transport, int rank, const CollectiveArgs& args) {
    return makeHierarchicalAllReduce(transport, staging.scratch(rank), p, layout, args);
  };
}

TEST(HierarchicalAllReduceSim, EveryLayoutTypeOpSizeInAndOutOfPlace) {
  PipelineConfig p = smallChunks();
  const ftcclDataType_t types[] = {ftcclInt8,    ftcclUint8,   ftcclInt32,   ftcclUint32,
                                   ftcclInt64,   ftcclUint64,  ftcclFloat16, ftcclFloat32,
                                   ftcclFloat64, ftcclBfloat16};
  const ftcclRedOp_t ops[] = {ftcclSum, ftcclProd, ftcclMax, ftcclMin, ftcclAvg};
  for (const Layout& layout : kLayouts) {
    int n = rankCount(layout);
    for (ftcclDataType_t type : types) {
      for (ftcclRedOp_t op : ops) {
        for (size_t count : {size_t(0), size_t(1), size_t(7), size_t(1001), size_t(6 * 1024 + 5)}) {
          Staging staging(n, p);
          ASSERT_NO_FATAL_FAILURE(testing::expectExactAllReduce(
              n, hierOps(staging, p, layout), type, op, count,
              "layout of " + std::to_string(layout.size()) + " nodes"));
        }
      }
    }
  }
}

// Forwards to the simulated transport and records which channels a rank used.
class ChannelAudit final : public Transport {
 public:
  explicit ChannelAudit(Transport& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  Status isend(int peer, const void* b, size_t bytes, MessageKey key,
               TransportRequest** r) override {
    used |= 1u << key.channel;
    return inner_.isend(peer, b, bytes, key, r);
  }
  Status irecv(int peer, void* b, size_t bytes, MessageKey key, TransportRequest** r) override {
    used |= 1u << key.channel;
    return inner_.irecv(peer, b, bytes, key, r);
  }
  Status test(TransportRequest** r, bool* done) override { return inner_.test(r, done); }
  void cancel(TransportRequest** r) override { inner_.cancel(r); }
  bool progress() override { return inner_.progress(); }
  Status waitForActivity(int ms) override { return inner_.waitForActivity(ms); }
  void interrupt() override { inner_.interrupt(); }
  uint32_t used = 0;  // bit c: channel c carried a message

 private:
  Transport& inner_;
};

// Every pipeline width up to the budget's maximum: the phases stay inside their channel
// ranges (intra reduce 0.., intra gather 4.., inter-node 8..), never reaching the
// tuning channel (14) or Send/Recv's (15), and results stay exact.
TEST(HierarchicalAllReduceSim, ChannelRangesForEveryPipelineWidth) {
  for (int channels = 1; channels <= kMaxPipelineChannels; ++channels) {
    PipelineConfig p{4096, channels};
    uint32_t width = (1u << channels) - 1;
    uint32_t allowed = width | width << 4 | width << 8;
    for (const Layout& layout :
         {Layout{{0, 1, 2}, {3, 4, 5}}, Layout{{0, 1, 2}, {3, 4}}, Layout{{0, 1, 2, 3}}}) {
      int n = rankCount(layout);
      const size_t count = 40 * 1024 + 3;
      sim::SimFabric fabric(n);
      std::vector<std::unique_ptr<ChannelAudit>> audit(n);
      std::vector<std::vector<uint8_t>> in(n);
      Staging staging(n, p);
      std::vector<std::unique_ptr<Collective>> coll(n);
      for (int r = 0; r < n; ++r) {
        audit[r] = std::make_unique<ChannelAudit>(fabric.transport(r));
        in[r] = patternBuffer(ftcclFloat32, r, count, ftcclAvg);
        CollectiveArgs args;
        args.sendbuff = args.recvbuff = in[r].data();
        args.count = count;
        args.op = ftcclAvg;
        Scratch scratch = staging.scratch(r);
        coll[r] = makeHierarchicalAllReduce(*audit[r], scratch, p, layout, args);
      }
      Status st = runAll(fabric, coll);
      ASSERT_TRUE(st.isOk()) << st.message();
      std::vector<uint8_t> want = expectedReduction(ftcclFloat32, ftcclAvg, n, count);
      uint32_t usedByAll = 0;
      for (int r = 0; r < n; ++r) {
        ASSERT_EQ(0, std::memcmp(in[r].data(), want.data(), count * 4))
            << "channels " << channels << " rank " << r;
        EXPECT_EQ(audit[r]->used & ~allowed, 0u)
            << "channels " << channels << " rank " << r << " used mask " << audit[r]->used;
        usedByAll |= audit[r]->used;
      }
      // The flat ring (one node) uses 0..; the others reach the inter-node range.
      if (layout.size() > 1) {
        EXPECT_NE(usedByAll & width << 8, 0u);
      }
      EXPECT_EQ(fabric.pending(), 0u);
    }
  }
}

// Inputs whose sums round (random floats, fp16 and bf16 included): every rank must end
// with the same bits, whatever its node and local index.
TEST(HierarchicalAllReduceSim, BitwiseIdenticalOnEveryRankWhenRoundingMatters) {
  PipelineConfig p{4096, 2};
  uint64_t seed = 12345;
  auto next = [&seed]() {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(seed >> 11) / static_cast<double>(1ull << 53);
  };
  for (const Layout& layout : {Layout{{0, 1, 2}, {3, 4, 5}}, Layout{{0, 3}, {1, 4}, {2, 5}},
                               Layout{{0, 1, 2}, {3, 4}}, Layout{{4}, {0, 1, 2, 3}}}) {
    for (ftcclDataType_t type : {ftcclFloat16, ftcclFloat32, ftcclBfloat16}) {
      for (ftcclRedOp_t op : {ftcclSum, ftcclProd, ftcclAvg}) {
        int n = rankCount(layout);
        const size_t count = 9 * 1024 + 7;
        size_t bytes = count * dataTypeSize(type);
        sim::SimFabric fabric(n);
        std::vector<std::vector<uint8_t>> in(n, std::vector<uint8_t>(bytes)),
            out(n, std::vector<uint8_t>(bytes));
        Staging staging(n, p);
        std::vector<std::unique_ptr<Collective>> coll(n);
        for (int r = 0; r < n; ++r) {
          for (size_t i = 0; i < count; ++i) {
            testing::storeValue(type, in[r].data(), i,
                                op == ftcclProd ? 0.5 + next() : next() * 100 - 50);
          }
          CollectiveArgs args;
          args.sendbuff = in[r].data();
          args.recvbuff = out[r].data();
          args.count = count;
          args.type = type;
          args.op = op;
          Scratch scratch = staging.scratch(r);
          coll[r] = makeHierarchicalAllReduce(fabric.transport(r), scratch, p, layout, args);
        }
        Status st = runAll(fabric, coll);
        ASSERT_TRUE(st.isOk()) << st.message();
        for (int r = 1; r < n; ++r) {
          ASSERT_EQ(out[r], out[0]) << dataTypeName(type) << " " << redOpName(op) << " rank " << r
                                    << " of a " << layout.size() << "-node layout";
        }
      }
    }
  }
}

// pendingPeers speaks communicator ranks, not the phases' view numbering: with nodes
// {3, 1} and {0, 2}, rank 1's intra-node ring neighbour is rank 3 (its view's rank 0).
TEST(HierarchicalAllReduceSim, PendingPeersAreCommunicatorRanks) {
  PipelineConfig p{4096, 2};
  struct Case {
    Layout layout;
    std::vector<std::vector<int>> want;  // per rank, after one progress() and no matching
  };
  const Case cases[] = {
      // Equal nodes: the intra-node reduce-scatter ring of two is {3, 1} and {0, 2}.
      {{{3, 1}, {0, 2}}, {{2}, {3}, {0}, {1}}},
      // Leaders 4 and 0: chain 1 -> 2 -> 4 inside the first node, 3 -> 0 in the second.
      {{{4, 1, 2}, {0, 3}}, {{3}, {2}, {1}, {0}, {2}}},
  };
  for (const Case& c : cases) {
    int n = rankCount(c.layout);
    const size_t count = 16 * 1024;
    sim::SimFabric fabric(n);
    std::vector<std::vector<uint8_t>> in(n);
    Staging staging(n, p);
    std::vector<std::unique_ptr<Collective>> coll(n);
    for (int r = 0; r < n; ++r) {
      in[r] = patternBuffer(ftcclFloat32, r, count, ftcclSum);
      CollectiveArgs args;
      args.sendbuff = args.recvbuff = in[r].data();
      args.count = count;
      Scratch scratch = staging.scratch(r);
      coll[r] = makeHierarchicalAllReduce(fabric.transport(r), scratch, p, c.layout, args);
    }
    EXPECT_EQ(fabric.pending(), 0u) << "a constructor posted";
    for (int r = 0; r < n; ++r) {
      bool done = false;
      ASSERT_TRUE(coll[r]->progress(&done).isOk());
      EXPECT_EQ(coll[r]->pendingPeers(), c.want[r]) << "rank " << r;
    }
    ASSERT_TRUE(runAll(fabric, coll).isOk());
    std::vector<uint8_t> want = expectedReduction(ftcclFloat32, ftcclSum, n, count);
    for (int r = 0; r < n; ++r) ASSERT_EQ(0, std::memcmp(in[r].data(), want.data(), count * 4));
    for (int r = 0; r < n; ++r) EXPECT_TRUE(coll[r]->pendingPeers().empty());
  }
}

// Lagging ranks in every scheme: phases share the staging and the output, so a phase
// that touched them before its predecessor's messages were matched would show here.
TEST(HierarchicalAllReduceSim, ExactWhenRanksProgressAtDifferentSpeeds) {
  PipelineConfig p = smallChunks();
  for (const Layout& layout : kLayouts) {
    for (uint64_t seed : {1u, 2u}) {
      for (ftcclRedOp_t op : {ftcclSum, ftcclAvg}) {
        int n = rankCount(layout);
        Staging staging(n, p);
        ASSERT_NO_FATAL_FAILURE(testing::expectExactAllReduce(
            n, hierOps(staging, p, layout), ftcclFloat32, op, 13 * 1024 + 3,
            "layout of " + std::to_string(layout.size()) + " nodes, seed " + std::to_string(seed),
            seed));
      }
    }
  }
}

// A layout that is not a partition of the ranks fails the op without posting anything.
TEST(HierarchicalAllReduceSim, InvalidLayoutFailsWithoutPosting) {
  PipelineConfig p{4096, 2};
  for (const Layout& layout : {Layout{{0, 1}, {2}}, Layout{{0, 1}, {1, 2, 3}},
                               Layout{{0, 1}, {}, {2, 3}}, Layout{{0, 1}, {2, 4}}}) {
    const int n = 4;
    sim::SimFabric fabric(n);
    std::vector<uint8_t> staging(p.chunkBytes * 2 * p.channels), buf(64);
    CollectiveArgs args;
    args.sendbuff = args.recvbuff = buf.data();
    args.count = 16;
    Scratch scratch{staging.data(), p.chunkBytes, 2 * p.channels};
    auto coll = makeHierarchicalAllReduce(fabric.transport(0), scratch, p, layout, args);
    bool done = false;
    Status st = coll->progress(&done);
    EXPECT_EQ(st.code(), ftcclInvalidArgument) << st.message();
    EXPECT_FALSE(done);
    EXPECT_EQ(fabric.pending(), 0u);
  }
}

TEST(HierarchicalAllReduceSim, PeerDeathFailsTheOpInBothSchemes) {
  PipelineConfig p = smallChunks();
  for (const Layout& layout : {Layout{{0, 1, 2}, {3, 4, 5}}, Layout{{0, 1, 2}, {3, 4}}}) {
    for (int victim : {0, 4}) {
      int n = rankCount(layout);
      const size_t count = 48 * 1024;
      sim::SimFabric fabric(n);
      std::vector<std::vector<uint8_t>> in(n);
      Staging staging(n, p);
      std::vector<std::unique_ptr<Collective>> coll(n);
      for (int r = 0; r < n; ++r) {
        in[r] = patternBuffer(ftcclFloat32, r, count, ftcclSum);
        CollectiveArgs args;
        args.sendbuff = args.recvbuff = in[r].data();
        args.count = count;
        Scratch scratch = staging.scratch(r);
        coll[r] = makeHierarchicalAllReduce(fabric.transport(r), scratch, p, layout, args);
      }
      for (int round = 0; round < 10; ++round) {
        for (auto& c : coll) {
          bool done = false;
          ASSERT_TRUE(c->progress(&done).isOk());
        }
        fabric.progress();
      }
      fabric.kill(victim);
      coll.erase(coll.begin() + victim);
      Status st = runAll(fabric, coll);
      EXPECT_EQ(st.code(), ftcclRemoteError) << st.message();
      for (auto& c : coll) c->abort();
      EXPECT_EQ(fabric.pending(), 0u);
    }
  }
}

// A segment per node of several ranks (local ranks in ascending order, as core maps
// them) and each rank's arena and sequence counter: what core lends the algorithm.
class NodeMemories {
 public:
  explicit NodeMemories(const Layout& layout)
      : arenas_(rankCount(layout)), seqs_(arenas_.size(), 1) {
    for (std::vector<int> node : layout) {
      if (node.size() < 2) continue;
      std::sort(node.begin(), node.end());
      shm::NodeLayout shape;
      EXPECT_TRUE(
          shm::NodeLayout::make(static_cast<int>(node.size()), 16 * 1024, 2, 1, &shape).isOk());
      segments_.push_back(std::make_unique<shm::NodeSegment>());
      Status made = shm::NodeSegment::create(shape, segments_.back().get());
      EXPECT_TRUE(made.isOk()) << made.message();
      for (size_t i = 0; i < node.size(); ++i) {
        arenas_[static_cast<size_t>(node[i])] =
            std::make_unique<shm::NodeArena>(*segments_.back(), static_cast<int>(i));
      }
    }
  }
  IntraNodeMemory of(int rank) {
    return {true, arenas_[static_cast<size_t>(rank)].get(), &seqs_[static_cast<size_t>(rank)]};
  }

 private:
  std::vector<std::unique_ptr<shm::NodeSegment>> segments_;
  std::vector<std::unique_ptr<shm::NodeArena>> arenas_;
  std::vector<uint32_t> seqs_;
};

testing::OpFactory hierShmOps(const Staging& staging, const PipelineConfig& p, const Layout& layout,
                              NodeMemories& memories) {
  return [&staging, p, &layout, &memories](Transport& transport, int rank,
                                           const CollectiveArgs& args) {
    return makeHierarchicalAllReduce(transport, staging.scratch(rank), p, layout, args,
                                     memories.of(rank));
  };
}

// Every layout, type and op, counts around the segment's chunk edges (16 KiB slots: a
// reduce-scatter block of 8 KiB at 2 ranks), in and out of place: exact results.
TEST(HierarchicalAllReduceSim, EveryLayoutOverSharedMemory) {
  PipelineConfig p = smallChunks();
  const ftcclDataType_t types[] = {ftcclInt8,    ftcclInt32,   ftcclUint64,  ftcclFloat16,
                                   ftcclFloat32, ftcclFloat64, ftcclBfloat16};
  const ftcclRedOp_t ops[] = {ftcclSum, ftcclProd, ftcclMax, ftcclMin, ftcclAvg};
  for (const Layout& layout : kLayouts) {
    int n = rankCount(layout);
    NodeMemories memories(layout);
    for (ftcclDataType_t type : types) {
      for (ftcclRedOp_t op : ops) {
        for (size_t count : {size_t(0), size_t(1), size_t(7), size_t(1001), size_t(6 * 1024 + 5)}) {
          Staging staging(n, p);
          ASSERT_NO_FATAL_FAILURE(testing::expectExactAllReduce(
              n, hierShmOps(staging, p, layout, memories), type, op, count,
              "shm, layout of " + std::to_string(layout.size()) + " nodes"));
        }
      }
    }
  }
}

// Inexact float sums: every rank ends with the same bits, at skewed paces too.
TEST(HierarchicalAllReduceSim, SameBitsOverSharedMemory) {
  PipelineConfig p = smallChunks();
  for (const Layout& layout : kLayouts) {
    int n = rankCount(layout);
    NodeMemories memories(layout);
    Staging staging(n, p);
    ASSERT_NO_FATAL_FAILURE(testing::expectSameBitsOnInexactInputs(
        n, hierShmOps(staging, p, layout, memories),
        "shm, layout of " + std::to_string(layout.size()) + " nodes", 7));
  }
}

// A rank whose node peer has not come waits on a flag: the op says so (the driver then
// sleeps on that flag, not on the transport's events, which no flag wakes) and names the
// peer by its communicator rank. Both schemes, a peer of a non-contiguous node.
TEST(HierarchicalAllReduceSim, WaitInsideANodeIsAFlagWaitOnACommunicatorRank) {
  PipelineConfig p = smallChunks();
  for (const Layout& layout : {Layout{{0, 2}, {1, 3}}, Layout{{0, 3, 1}, {2, 4}}}) {
    int n = rankCount(layout);
    NodeMemories memories(layout);
    sim::SimFabric fabric(n);
    Staging staging(n, p);
    std::vector<uint8_t> buf(4096 * 4);
    CollectiveArgs args;
    args.sendbuff = args.recvbuff = buf.data();
    args.count = 4096;
    args.type = ftcclFloat32;
    auto coll = makeHierarchicalAllReduce(fabric.transport(0), staging.scratch(0), p, layout, args,
                                          memories.of(0));
    bool done = false;
    ASSERT_TRUE(coll->progress(&done).isOk());
    EXPECT_FALSE(done);
    EXPECT_TRUE(coll->waitForPeers(0)) << "the wait for the node's peer is not a flag wait";
    const int peer = layout[0][1] == 2 ? 2 : 1;  // rank 0's node peer of lowest rank
    std::vector<int> pending = coll->pendingPeers();
    EXPECT_NE(std::find(pending.begin(), pending.end(), peer), pending.end());
    coll->abort();
  }
}

// The memory must hold the node's ranks: one that does not fails the op at once.
TEST(HierarchicalAllReduceSim, MemoryOfAnotherShapeFailsTheOp) {
  PipelineConfig p = smallChunks();
  const Layout layout{{0, 1, 2}, {3, 4, 5}};
  NodeMemories wrong(Layout{{0, 1}, {2, 3}, {4, 5}});
  sim::SimFabric fabric(6);
  Staging staging(6, p);
  std::vector<uint8_t> buf(64);
  CollectiveArgs args;
  args.sendbuff = args.recvbuff = buf.data();
  args.count = 16;
  auto coll = makeHierarchicalAllReduce(fabric.transport(0), staging.scratch(0), p, layout, args,
                                        wrong.of(0));
  bool done = false;
  EXPECT_EQ(coll->progress(&done).code(), ftcclInvalidArgument);
  EXPECT_EQ(fabric.pending(), 0u);
}

}  // namespace
}  // namespace ftccl
