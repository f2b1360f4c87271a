// The edges of the shared-memory collectives (src/algorithms/shm_*.cc) over a real
// NodeSegment: ranks that call one op differently all fail, arguments are refused before
// anything is published, the sequences an op takes, and the waits (pendingPeers,
// progressMark, waitForPeers, abort). The mixed runs: shm_collectives_test.cc.
#include <chrono>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "algorithms/collective.h"
#include "gtest/gtest.h"
#include "shm_collectives_fixture.h"

namespace ftccl {
namespace shm_test {
namespace {

size_t slotFloats() { return (kSlotBytes) / sizeof(float); }

// Ranks that call one op differently all fail with ftcclInvalidUsage, as over the
// transport, instead of reading each other's unrelated bytes: another count, a type of
// the same size (or one that leaves the lines for the slots), an op (where it reduces), a
// root (where there is one), or another
// collective (the signature is 0 here: the description alone must tell). Rank 1 differs;
// the others call `kind` with 3 floats, Sum and root 0.
TEST(ShmCollectives, RanksThatCallDifferentlyAllFail) {
  struct Variant {
    std::string what;
    Kind kind, odd;
    size_t count;
    ftcclDataType_t type;
    ftcclRedOp_t op;
    int root;
  };
  std::vector<Variant> variants;
  for (size_t k = 0; k < std::size(kKinds); ++k) {
    Kind kind = kKinds[k], other = kKinds[(k + 1) % std::size(kKinds)];
    std::string name = collectiveName(kind);
    variants.push_back({name + " count", kind, kind, 5, ftcclFloat32, ftcclSum, 0});
    // 400 bytes: the others' 12 travel in lines (an all-reduce's latency path), these in
    // the slots, so each side waits on what the other never writes.
    variants.push_back({name + " count in slots", kind, kind, 100, ftcclFloat32, ftcclSum, 0});
    variants.push_back({name + " type", kind, kind, 3, ftcclInt32, ftcclSum, 0});
    if (reduces(kind)) {
      variants.push_back({name + " op", kind, kind, 3, ftcclFloat32, ftcclMax, 0});
    }
    if (rooted(kind)) {
      variants.push_back({name + " root", kind, kind, 3, ftcclFloat32, ftcclSum, 2});
    }
    variants.push_back(
        {name + " and " + collectiveName(other), kind, other, 3, ftcclFloat32, ftcclSum, 0});
  }
  for (const Variant& v : variants) {
    SCOPED_TRACE(v.what);
    shm::NodeSegment segment;
    ASSERT_NO_FATAL_FAILURE(makeSegment(3, 2, &segment));
    gAbandoned.store(false);
    std::vector<Status> results(3);
    std::vector<std::thread> threads;
    for (int r = 0; r < 3; ++r) {
      threads.emplace_back([&, r] {
        shm::NodeArena arena(segment, r);
        std::vector<float> in(512, 1.0f), out(512, 0.0f);  // all-gather: 3 x 100
        CollectiveArgs args;
        args.sendbuff = in.data();
        args.recvbuff = out.data();
        args.count = r == 1 ? v.count : 3;
        args.type = r == 1 ? v.type : ftcclFloat32;
        args.op = r == 1 ? v.op : ftcclSum;
        args.root = r == 1 ? v.root : 0;
        uint32_t nextSeq = 1;
        results[r] = runOne(r == 1 ? v.odd : v.kind, arena, args, &nextSeq);
      });
    }
    for (std::thread& t : threads) t.join();
    for (int r = 0; r < 3; ++r) {
      EXPECT_EQ(results[r].code(), ftcclInvalidUsage)
          << "rank " << r << ": " << results[r].message();
      EXPECT_NE(results[r].message().find("differently"), std::string::npos)
          << results[r].message();
    }
  }
}

// What no rank may pass is refused before anything is published, so a peer sees no
// ready for the sequence: an invalid type, an invalid op where it reduces, a root that
// is no local rank where there is one, one slot per rank (it would need a barrier before
// every overwrite). What NCCL ignores is not checked: the mixed runs pass a different
// op to every rank of a broadcast or all-gather, a different root where there is none.
TEST(ShmCollectives, RefusesBadArgumentsPublishingNothing) {
  shm::NodeSegment segment, oneSlot;
  ASSERT_NO_FATAL_FAILURE(makeSegment(3, 2, &segment));
  ASSERT_NO_FATAL_FAILURE(makeSegment(3, 1, &oneSlot));
  shm::NodeArena arena(segment, 0), oneSlotArena(oneSlot, 0);
  float data[16] = {};
  for (Kind kind : kKinds) {
    SCOPED_TRACE(collectiveName(kind));
    CollectiveArgs good;
    good.sendbuff = good.recvbuff = data;
    good.count = 1;
    std::vector<std::pair<const char*, CollectiveArgs>> bad(1, {"type", good});
    bad.back().second.type = static_cast<ftcclDataType_t>(99);
    if (reduces(kind)) {
      bad.push_back({"op", good});
      bad.back().second.op = static_cast<ftcclRedOp_t>(99);
    }
    for (int root : {-1, 3}) {
      if (!rooted(kind)) break;
      bad.push_back({"root", good});
      bad.back().second.root = root;
    }
    uint32_t nextSeq = 1;
    for (const auto& [what, args] : bad) {
      SCOPED_TRACE(what);
      bool done = true;
      EXPECT_EQ(makeOp(kind, arena, args, &nextSeq)->progress(&done).code(), ftcclInvalidArgument);
      EXPECT_FALSE(done);
    }
    bool done = true;
    Status status = makeOp(kind, oneSlotArena, good, &nextSeq)->progress(&done);
    EXPECT_EQ(status.code(), ftcclInvalidArgument) << status.message();
    EXPECT_FALSE(done);
  }
  EXPECT_FALSE(arena.readyReached(0, 1));
  EXPECT_FALSE(oneSlotArena.readyReached(0, 1));
}

// An op takes one sequence per chunk, counted from what every rank passes alike (count,
// type, local size; never the root), and one for count 0.
TEST(ShmCollectives, TakeOneSequencePerChunk) {
  shm::NodeSegment segment;
  ASSERT_NO_FATAL_FAILURE(makeSegment(4, 2, &segment));
  shm::NodeArena arena(segment, 0);
  const size_t slot = slotFloats();
  const size_t block = slot / 4 / 16 * 16;  // reduce-scatter's: a quarter, on cache lines
  struct Case {
    Kind kind;
    size_t count;
    uint32_t sequences;
  };
  const Case cases[] = {{Kind::kBroadcast, 0, 1},
                        {Kind::kBroadcast, slot, 1},
                        {Kind::kBroadcast, slot + 1, 2},
                        {Kind::kBroadcast, 3 * slot, 3},
                        {Kind::kReduce, 1, 1},
                        {Kind::kReduce, 2 * slot + 1, 3},
                        {Kind::kAllGather, slot, 1},
                        {Kind::kAllGather, 2 * slot + 1, 3},
                        {Kind::kReduceScatter, 0, 1},
                        {Kind::kReduceScatter, block, 1},
                        {Kind::kReduceScatter, block + 1, 2},
                        {Kind::kReduceScatter, 3 * block, 3},
                        {Kind::kAllReduce, 2 * slot, 2}};
  uint32_t nextSeq = 1;
  for (const Case& c : cases) {
    CollectiveArgs args;
    args.count = c.count;
    args.root = 2;
    uint32_t before = nextSeq;
    makeOp(c.kind, arena, args, &nextSeq);
    EXPECT_EQ(nextSeq - before, c.sequences) << collectiveName(c.kind) << " x" << c.count;
  }
}

// Never blocks: with peers absent progress() returns, pendingPeers() names the LOCAL
// ranks waited for (their ready; for a split reduce's root then their done),
// waitForPeers() sleeps on one of them, abort() stops. One thread steps three ranks of a
// reduce to local rank 1, two chunks long (the split path), in a chosen order.
TEST(ShmCollectives, WaitsWithoutBlockingAndReportsLocalPeers) {
  shm::NodeSegment segment;
  ASSERT_NO_FATAL_FAILURE(makeSegment(3, 2, &segment));
  const size_t count = 2 * slotFloats();
  std::vector<std::unique_ptr<shm::NodeArena>> arenas;
  std::vector<std::vector<float>> in, out;
  std::vector<std::unique_ptr<Collective>> ops;
  std::vector<uint32_t> nextSeq(3, 1);
  for (int r = 0; r < 3; ++r) {
    arenas.push_back(std::make_unique<shm::NodeArena>(segment, r));
    in.emplace_back(count, static_cast<float>(r + 1));
    out.emplace_back(count, 0.0f);
  }
  for (int r = 0; r < 3; ++r) {
    CollectiveArgs args;
    args.sendbuff = in[r].data();
    args.recvbuff = out[r].data();
    args.count = count;
    args.root = 1;
    ops.push_back(makeShmReduce(*arenas[r], args, &nextSeq[r]));
  }
  bool done = true;
  auto step = [&](int r) { ASSERT_TRUE(ops[r]->progress(&done).isOk()); };
  ASSERT_NO_FATAL_FAILURE(step(1));
  EXPECT_FALSE(done);
  EXPECT_TRUE(arenas[1]->readyReached(1, 1));
  EXPECT_EQ(ops[1]->pendingPeers(), (std::vector<int>{0, 2}));
  uint64_t mark = ops[1]->progressMark();
  EXPECT_GT(mark, 0u);
  EXPECT_TRUE(ops[1]->waitForPeers(100));  // on rank 0's ready, 100 us at most
  ASSERT_NO_FATAL_FAILURE(step(2));
  EXPECT_EQ(ops[2]->pendingPeers(), (std::vector<int>{0}));
  ASSERT_NO_FATAL_FAILURE(step(0));  // reduces its slice, and publishes chunk 2
  EXPECT_TRUE(arenas[0]->doneReached(0, 1));
  EXPECT_TRUE(arenas[0]->readyReached(0, 2));
  ASSERT_NO_FATAL_FAILURE(step(1));  // its slice; rank 0's copied; rank 2's not reduced yet
  EXPECT_FALSE(done);
  EXPECT_EQ(ops[1]->pendingPeers(), (std::vector<int>{2}));
  EXPECT_GT(ops[1]->progressMark(), mark);
  EXPECT_TRUE(ops[1]->waitForPeers(100));  // on rank 2's done
  std::vector<bool> finished(3, false);
  for (int round = 0; round < 10; ++round) {
    for (int r : {2, 0, 1}) {
      if (finished[r]) continue;
      ASSERT_NO_FATAL_FAILURE(step(r));
      finished[r] = done;
    }
  }
  ASSERT_EQ(finished, std::vector<bool>(3, true));
  for (size_t i = 0; i < count; ++i) ASSERT_EQ(out[1][i], 6.0f) << "element " << i;
  EXPECT_EQ(out[0], std::vector<float>(count, 0.0f));  // non-roots never write recvbuff

  CollectiveArgs args;
  args.sendbuff = args.recvbuff = in[0].data();
  args.count = 1;
  std::unique_ptr<Collective> alone = makeShmBroadcast(*arenas[0], args, &nextSeq[0]);
  ASSERT_TRUE(alone->progress(&done).isOk());
  EXPECT_FALSE(done);
  EXPECT_EQ(alone->pendingPeers(), (std::vector<int>{1, 2}));
  alone->abort();
  ASSERT_TRUE(alone->progress(&done).isOk());
  EXPECT_FALSE(done);
  EXPECT_TRUE(alone->pendingPeers().empty());
  EXPECT_FALSE(alone->waitForPeers(100));
  EXPECT_FALSE(arenas[0]->doneReached(0, nextSeq[0] - 1));
}

// A rank whose all-reduce travels in lines (3 floats) against one that took the slots
// (100 floats) fails with ftcclInvalidUsage even if nothing ever asks it to sleep: a
// driver whose transport keeps reporting activity restarts its spin and never calls
// waitForPeers with a timeout, so progress() alone must come to look at the ready flag.
TEST(ShmCollectives, LinesAgainstSlotsFailWithoutAWait) {
  shm::NodeSegment segment;
  ASSERT_NO_FATAL_FAILURE(makeSegment(2, 2, &segment));
  std::vector<Status> results(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      shm::NodeArena arena(segment, r);
      std::vector<float> in(128, 1.0f), out(128, 0.0f);
      CollectiveArgs args;
      args.sendbuff = in.data();
      args.recvbuff = out.data();
      args.count = r == 0 ? 3 : 100;
      args.type = ftcclFloat32;
      args.op = ftcclSum;
      uint32_t nextSeq = 1;
      std::unique_ptr<Collective> op = makeOp(Kind::kAllReduce, arena, args, &nextSeq);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      for (;;) {
        bool done = false;
        results[r] = op->progress(&done);
        if (!results[r].isOk() || done) break;
        if (std::chrono::steady_clock::now() > deadline) {
          results[r] = timeoutError("no verdict in 60 s of progress() calls");
          break;
        }
        std::this_thread::yield();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(results[r].code(), ftcclInvalidUsage) << "rank " << r << ": " << results[r].message();
  }
}

}  // namespace
}  // namespace shm_test
}  // namespace ftccl
