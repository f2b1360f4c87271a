// ReduceScatter, AllGather and Reduce over transports/sim: rank counts 1..8, every type
// and op, size classes, NCCL's in-place offsets, every root, and a peer death in each.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <vector>

#include "sim_collective.h"

namespace ftccl {
namespace {

using testing::expectedReduction;
using testing::patternBuffer;
using testing::runAll;
using testing::runSkewed;
using testing::Staging;

const ftcclDataType_t kTypes[] = {ftcclInt8,    ftcclUint8,   ftcclInt32,   ftcclUint32,
                                  ftcclInt64,   ftcclUint64,  ftcclFloat16, ftcclFloat32,
                                  ftcclFloat64, ftcclBfloat16};
const ftcclRedOp_t kOps[] = {ftcclSum, ftcclProd, ftcclMax, ftcclMin, ftcclAvg};
const size_t kCounts[] = {0, 1, 7, 1001, 5 * 1024 + 3};

PipelineConfig smallChunks() {
  PipelineConfig p;
  p.chunkBytes = 4096;
  p.channels = 2;
  return p;
}

TEST(ReduceScatterSim, EveryRankCountTypeOpSizeInAndOutOfPlace) {
  PipelineConfig p = smallChunks();
  for (int n = 1; n <= 8; ++n) {
    for (ftcclDataType_t type : kTypes) {
      for (ftcclRedOp_t op : kOps) {
        for (size_t count : kCounts) {
          for (bool inPlace : {false, true}) {
            size_t elem = dataTypeSize(type);
            sim::SimFabric fabric(n);
            Staging staging(n, p);
            std::vector<std::vector<uint8_t>> in(n), out(n);
            std::vector<std::unique_ptr<Collective>> ops(n);
            for (int r = 0; r < n; ++r) {
              in[r] = patternBuffer(type, r, count * n, op);
              out[r].assign(count * elem + 1, 0xEE);
              CollectiveArgs args;
              args.sendbuff = in[r].data();
              args.recvbuff = inPlace ? in[r].data() + r * count * elem : out[r].data();
              args.count = count;
              args.type = type;
              args.op = op;
              ops[r] = makeRingReduceScatter(fabric.transport(r), staging.scratch(r), p, args);
            }
            ASSERT_TRUE(runAll(fabric, ops).isOk());
            std::vector<uint8_t> full = expectedReduction(type, op, n, count * n);
            for (int r = 0; r < n; ++r) {
              const uint8_t* got = inPlace ? in[r].data() + r * count * elem : out[r].data();
              ASSERT_EQ(0, std::memcmp(got, full.data() + r * count * elem, count * elem))
                  << "n=" << n << " " << dataTypeName(type) << " " << redOpName(op)
                  << " count=" << count << " inPlace=" << inPlace << " rank " << r;
              if (!inPlace) {
                ASSERT_EQ(out[r][count * elem], 0xEE) << "wrote past the output";
              }
            }
            EXPECT_EQ(fabric.pending(), 0u);
          }
        }
      }
    }
  }
}

TEST(AllGatherSim, EveryRankCountSizeInAndOutOfPlace) {
  PipelineConfig p = smallChunks();
  for (int n = 1; n <= 8; ++n) {
    for (ftcclDataType_t type : {ftcclInt8, ftcclFloat16, ftcclInt32, ftcclFloat64}) {
      for (size_t count : kCounts) {
        for (bool inPlace : {false, true}) {
          size_t part = count * dataTypeSize(type);
          sim::SimFabric fabric(n);
          std::vector<std::vector<uint8_t>> in(n), out(n);
          std::vector<std::unique_ptr<Collective>> ops(n);
          std::vector<uint8_t> want(part * n + 1, 0);
          for (int r = 0; r < n; ++r) {
            in[r] = patternBuffer(type, r, count, ftcclSum);
            if (part) std::memcpy(want.data() + r * part, in[r].data(), part);
            out[r].assign(part * n + 1, 0xEE);
            if (inPlace && part) std::memcpy(out[r].data() + r * part, in[r].data(), part);
            CollectiveArgs args;
            args.sendbuff = inPlace ? out[r].data() + r * part : in[r].data();
            args.recvbuff = out[r].data();
            args.count = count;
            args.type = type;
            ops[r] = makeRingAllGather(fabric.transport(r), p, args);
          }
          ASSERT_TRUE(runAll(fabric, ops).isOk());
          for (int r = 0; r < n; ++r) {
            ASSERT_EQ(0, std::memcmp(out[r].data(), want.data(), part * n))
                << "n=" << n << " count=" << count << " inPlace=" << inPlace << " rank " << r;
            ASSERT_EQ(out[r][part * n], 0xEE);
          }
          EXPECT_EQ(fabric.pending(), 0u);
        }
      }
    }
  }
}

// Placements: out of place; in place; out of place with a NULL recvbuff off the root.
TEST(ChainReduceSim, EveryRankCountRootTypeOpAndSize) {
  PipelineConfig p = smallChunks();
  enum Placement { kOutOfPlace, kInPlace, kNullOffRoot };
  for (int n = 1; n <= 8; ++n) {
    for (int root = 0; root < n; ++root) {
      for (ftcclDataType_t type :
           {ftcclUint8, ftcclInt64, ftcclFloat16, ftcclFloat32, ftcclBfloat16}) {
        for (ftcclRedOp_t op : kOps) {
          for (size_t count :
               {size_t(0), size_t(1), size_t(7), size_t(1001), size_t(7 * 1024 + 1)}) {
            for (Placement placement : {kOutOfPlace, kInPlace, kNullOffRoot}) {
              bool inPlace = placement == kInPlace;
              size_t bytes = count * dataTypeSize(type);
              sim::SimFabric fabric(n);
              Staging staging(n, p);
              std::vector<std::vector<uint8_t>> in(n), out(n);
              std::vector<std::unique_ptr<Collective>> ops(n);
              for (int r = 0; r < n; ++r) {
                in[r] = patternBuffer(type, r, count, op);
                out[r].assign(bytes + 1, 0xEE);
                CollectiveArgs args;
                args.sendbuff = in[r].data();
                args.recvbuff = inPlace ? in[r].data() : out[r].data();
                if (placement == kNullOffRoot && r != root) args.recvbuff = nullptr;
                args.count = count;
                args.type = type;
                args.op = op;
                args.root = root;
                ops[r] = makeChainReduce(fabric.transport(r), staging.scratch(r), p, args);
              }
              Status st = runAll(fabric, ops);
              ASSERT_TRUE(st.isOk()) << st.message();
              std::vector<uint8_t> want = expectedReduction(type, op, n, count);
              const uint8_t* got = inPlace ? in[root].data() : out[root].data();
              ASSERT_EQ(0, std::memcmp(got, want.data(), bytes))
                  << "n=" << n << " root=" << root << " " << dataTypeName(type) << " "
                  << redOpName(op) << " count=" << count << " placement=" << placement;
              if (!inPlace) {
                ASSERT_EQ(out[root][bytes], 0xEE) << "wrote past the output";
              }
              for (int r = 0; r < n; ++r) {
                if (r == root) continue;
                ASSERT_EQ(out[r], std::vector<uint8_t>(bytes + 1, 0xEE)) << "non-root written";
                ASSERT_EQ(in[r], patternBuffer(type, r, count, op)) << "non-root input changed";
              }
              EXPECT_EQ(fabric.pending(), 0u);
            }
          }
        }
      }
    }
  }
}

// Forwards to the simulated transport and records every channel used, so that the
// budget (channels [0, 2 * channels), 14 and 15 reserved) is checked, not assumed.
class ChannelAudit final : public Transport {
 public:
  explicit ChannelAudit(Transport& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  Status isend(int peer, const void* b, size_t bytes, MessageKey key,
               TransportRequest** r) override {
    note(key);
    return inner_.isend(peer, b, bytes, key, r);
  }
  Status irecv(int peer, void* b, size_t bytes, MessageKey key, TransportRequest** r) override {
    note(key);
    return inner_.irecv(peer, b, bytes, key, r);
  }
  Status test(TransportRequest** r, bool* done) override { return inner_.test(r, done); }
  void cancel(TransportRequest** r) override { inner_.cancel(r); }
  bool progress() override { return inner_.progress(); }
  Status waitForActivity(int ms) override { return inner_.waitForActivity(ms); }
  void interrupt() override { inner_.interrupt(); }
  uint32_t maxChannel = 0;
  uint32_t opSeq = 0;
  bool sawOtherOpSeq = false;

 private:
  void note(MessageKey key) {
    maxChannel = std::max(maxChannel, key.channel);
    sawOtherOpSeq = sawOtherOpSeq || key.opSeq != opSeq;
  }
  Transport& inner_;
};

// Other pipeline shapes: one channel, the budget's maximum, slices that are not a
// power of two (1000 B: a whole number of elements of every type used); the channels
// used stay inside [0, channels) and every message carries the op's sequence number.
TEST(GatherScatterSim, PipelineShapesStayInTheChannelBudget) {
  for (PipelineConfig p :
       {PipelineConfig{4096, 1}, PipelineConfig{1000, 3}, PipelineConfig{4096, 4}}) {
    for (int n : {2, 3, 5, 8}) {
      for (size_t count : {size_t(1), size_t(333), size_t(4 * 1024 + 1)}) {
        for (int kind = 0; kind < 3; ++kind) {
          const ftcclDataType_t type = ftcclFloat32;
          const size_t elem = 4;
          const uint32_t opSeq = 77;
          sim::SimFabric fabric(n);
          Staging staging(n, p);
          std::vector<std::unique_ptr<ChannelAudit>> audit(n);
          std::vector<std::vector<uint8_t>> in(n), out(n);
          std::vector<std::unique_ptr<Collective>> ops(n);
          for (int r = 0; r < n; ++r) {
            audit[r] = std::make_unique<ChannelAudit>(fabric.transport(r));
            audit[r]->opSeq = opSeq;
            CollectiveArgs args;
            args.count = count;
            args.type = type;
            args.opSeq = opSeq;
            args.root = n - 2;
            // Out of place: reduce-scatter sends n parts, all-gather receives n parts.
            in[r] = patternBuffer(type, r, kind == 0 ? count * n : count, ftcclSum);
            out[r].assign(kind == 1 ? count * elem * n : count * elem, 0);
            args.sendbuff = in[r].data();
            args.recvbuff = out[r].data();
            if (kind == 0) {
              ops[r] = makeRingReduceScatter(*audit[r], staging.scratch(r), p, args);
            } else if (kind == 1) {
              ops[r] = makeRingAllGather(*audit[r], p, args);
            } else {
              ops[r] = makeChainReduce(*audit[r], staging.scratch(r), p, args);
            }
          }
          Status st = runAll(fabric, ops);
          ASSERT_TRUE(st.isOk()) << st.message();
          for (int r = 0; r < n; ++r) {
            std::vector<uint8_t> want;
            if (kind == 0) {
              std::vector<uint8_t> full = expectedReduction(type, ftcclSum, n, count * n);
              want.assign(full.begin() + r * count * elem, full.begin() + (r + 1) * count * elem);
            } else if (kind == 1) {
              for (int q = 0; q < n; ++q) {
                std::vector<uint8_t> part = patternBuffer(type, q, count, ftcclSum);
                want.insert(want.end(), part.begin(), part.begin() + count * elem);
              }
            } else if (r == n - 2) {
              want = expectedReduction(type, ftcclSum, n, count);
              want.resize(count * elem);
            } else {
              want.assign(count * elem, 0);
            }
            ASSERT_EQ(out[r], want)
                << "kind " << kind << " n=" << n << " count=" << count << " chunk " << p.chunkBytes
                << " channels " << p.channels << " rank " << r;
            EXPECT_LT(audit[r]->maxChannel, static_cast<uint32_t>(kind == 2 ? 1 : p.channels))
                << "kind " << kind;
            EXPECT_FALSE(audit[r]->sawOtherOpSeq);
          }
          EXPECT_EQ(fabric.pending(), 0u);
        }
      }
    }
  }
}

// pendingPeers names the ring neighbours (reduce-scatter, all-gather) and the chain
// neighbours (reduce) while their messages are posted and unmatched.
TEST(GatherScatterSim, PendingPeersNameTheNeighbours) {
  PipelineConfig p = smallChunks();
  const int n = 4;
  const size_t count = 8 * 1024;
  for (int kind = 0; kind < 3; ++kind) {
    sim::SimFabric fabric(n);
    Staging staging(n, p);
    std::vector<std::vector<uint8_t>> bufs(n, std::vector<uint8_t>(count * 4 * n, 0));
    std::vector<std::unique_ptr<Collective>> ops(n);
    for (int r = 0; r < n; ++r) {
      CollectiveArgs a;
      a.count = count;
      a.root = 2;
      a.sendbuff = a.recvbuff = bufs[r].data();
      if (kind == 0) {  // NCCL's in-place layouts
        a.recvbuff = bufs[r].data() + r * count * 4;
        ops[r] = makeRingReduceScatter(fabric.transport(r), staging.scratch(r), p, a);
      } else if (kind == 1) {
        a.sendbuff = bufs[r].data() + r * count * 4;
        ops[r] = makeRingAllGather(fabric.transport(r), p, a);
      } else {
        ops[r] = makeChainReduce(fabric.transport(r), staging.scratch(r), p, a);
      }
      EXPECT_TRUE(ops[r]->pendingPeers().empty()) << "posted before progress()";
    }
    EXPECT_EQ(fabric.pending(), 0u) << "a constructor posted";
    for (int r = 0; r < n; ++r) {
      bool done = false;
      ASSERT_TRUE(ops[r]->progress(&done).isOk());
      ASSERT_FALSE(done);
    }
    for (int r = 0; r < n; ++r) {
      std::vector<int> want;
      if (kind < 2) {
        want = {(r + n - 1) % n, (r + 1) % n};
      } else {  // chain 3 -> 0 -> 1 -> 2: only the first has a send posted yet
        if (r == 3) want = {0};
        if (r == 0 || r == 1 || r == 2) want = {(r + n - 1) % n};
      }
      std::vector<int> got = ops[r]->pendingPeers();
      std::sort(got.begin(), got.end());
      std::sort(want.begin(), want.end());
      EXPECT_EQ(got, want) << "kind " << kind << " rank " << r;
    }
    for (auto& op : ops) op->abort();
    EXPECT_EQ(fabric.pending(), 0u);
  }
}

// Lagging ranks: every algorithm stays exact when its neighbours run at different
// speeds (slots and buffers are reused only once the message reading them matched).
TEST(GatherScatterSim, ExactWhenRanksProgressAtDifferentSpeeds) {
  PipelineConfig p = smallChunks();
  for (int n : {2, 3, 5, 8}) {
    for (uint64_t seed : {1u, 2u, 3u}) {
      for (int kind = 0; kind < 3; ++kind) {
        for (bool inPlace : {false, true}) {
          const ftcclDataType_t type = ftcclInt32;
          const ftcclRedOp_t op = ftcclSum;
          const size_t count = 11 * 1024 + 5, elem = 4;
          const int root = static_cast<int>(seed) % n;
          sim::SimFabric fabric(n);
          Staging staging(n, p);
          std::vector<std::vector<uint8_t>> in(n), out(n);
          std::vector<std::unique_ptr<Collective>> ops(n);
          for (int r = 0; r < n; ++r) {
            CollectiveArgs args;
            args.count = count;
            args.type = type;
            args.op = op;
            args.root = root;
            if (kind == 0) {  // reduce-scatter; in place at NCCL's offset
              in[r] = patternBuffer(type, r, count * n, op);
              out[r].assign(count * elem, 0);
              args.sendbuff = in[r].data();
              args.recvbuff = inPlace ? in[r].data() + r * count * elem : out[r].data();
              ops[r] = makeRingReduceScatter(fabric.transport(r), staging.scratch(r), p, args);
            } else if (kind == 1) {  // all-gather; in place at NCCL's offset
              in[r] = patternBuffer(type, r, count, op);
              out[r].assign(count * elem * n, 0);
              if (inPlace)
                std::memcpy(out[r].data() + r * count * elem, in[r].data(), count * elem);
              args.sendbuff = inPlace ? out[r].data() + r * count * elem : in[r].data();
              args.recvbuff = out[r].data();
              ops[r] = makeRingAllGather(fabric.transport(r), p, args);
            } else {  // reduce
              in[r] = patternBuffer(type, r, count, op);
              out[r].assign(count * elem, 0);
              args.sendbuff = in[r].data();
              args.recvbuff = inPlace ? in[r].data() : out[r].data();
              ops[r] = makeChainReduce(fabric.transport(r), staging.scratch(r), p, args);
            }
          }
          Status st = runSkewed(fabric, ops, seed);
          ASSERT_TRUE(st.isOk()) << st.message();
          for (int r = 0; r < n; ++r) {
            const uint8_t* got = nullptr;
            std::vector<uint8_t> want;
            if (kind == 0) {
              std::vector<uint8_t> full = expectedReduction(type, op, n, count * n);
              want.assign(full.begin() + r * count * elem, full.begin() + (r + 1) * count * elem);
              got = inPlace ? in[r].data() + r * count * elem : out[r].data();
            } else if (kind == 1) {
              for (int q = 0; q < n; ++q) {
                std::vector<uint8_t> part = patternBuffer(type, q, count, op);
                want.insert(want.end(), part.begin(), part.begin() + count * elem);
              }
              got = out[r].data();
            } else {
              if (r != root) continue;
              want = expectedReduction(type, op, n, count);
              want.resize(count * elem);
              got = inPlace ? in[r].data() : out[r].data();
            }
            ASSERT_EQ(0, std::memcmp(got, want.data(), want.size()))
                << "kind " << kind << " n=" << n << " seed " << seed << " inPlace=" << inPlace
                << " rank " << r;
          }
          EXPECT_EQ(fabric.pending(), 0u);
        }
      }
    }
  }
}

// A peer dies mid-op: the ranks that talk to it fail, nobody deadlocks, abort leaves
// nothing posted.
void peerDeath(const std::function<std::unique_ptr<Collective>(Transport&, Scratch,
                                                               std::vector<uint8_t>&)>& make,
               int n, int victim, size_t bytes) {
  PipelineConfig p = smallChunks();
  sim::SimFabric fabric(n);
  Staging staging(n, p);
  std::vector<std::vector<uint8_t>> bufs(n, std::vector<uint8_t>(bytes, 1));
  std::vector<std::unique_ptr<Collective>> ops(n);
  for (int r = 0; r < n; ++r) ops[r] = make(fabric.transport(r), staging.scratch(r), bufs[r]);
  for (int round = 0; round < 10; ++round) {
    for (auto& op : ops) {
      bool done = false;
      ASSERT_TRUE(op->progress(&done).isOk());
    }
    fabric.progress();
  }
  fabric.kill(victim);
  ops.erase(ops.begin() + victim);
  Status st = runAll(fabric, ops);
  EXPECT_EQ(st.code(), ftcclRemoteError) << st.message();
  for (auto& op : ops) op->abort();
  EXPECT_EQ(fabric.pending(), 0u);
}

TEST(GatherScatterSim, PeerDeathFailsEveryCollective) {
  const int n = 5;
  const size_t count = 32 * 1024;  // floats per part
  PipelineConfig p = smallChunks();
  peerDeath(
      [&](Transport& t, Scratch s, std::vector<uint8_t>& buf) {
        CollectiveArgs a;
        a.sendbuff = a.recvbuff = buf.data();
        a.count = count;
        return makeRingReduceScatter(t, s, p, a);
      },
      n, 2, count * 4 * n);
  peerDeath(
      [&](Transport& t, Scratch, std::vector<uint8_t>& buf) {
        CollectiveArgs a;
        a.recvbuff = buf.data();
        a.sendbuff = buf.data() + t.rank() * count * 4;
        a.count = count;
        return makeRingAllGather(t, p, a);
      },
      n, 4, count * 4 * n);
  peerDeath(
      [&](Transport& t, Scratch s, std::vector<uint8_t>& buf) {
        CollectiveArgs a;
        a.sendbuff = a.recvbuff = buf.data();
        a.count = count * n;
        a.root = 1;
        return makeChainReduce(t, s, p, a);
      },
      n, 3, count * 4 * n);
}

}  // namespace
}  // namespace ftccl
