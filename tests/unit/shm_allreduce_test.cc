// The shared-memory all-reduce (src/algorithms/shm_allreduce.cc) over a real
// NodeSegment in one process: a thread per local rank, each with its own NodeArena,
// driving the collective with progress() and bounded sleeps as the op driver does.
// Per rank count 1..8, 700 back-to-back ops with fresh data each (every type x op x
// count x in place / out of place; counts from 0 to several slots, so the line messages
// (1 to 4 lines), the one-round and the pipelined path, odd slices and a short last
// chunk), so lines and slots are reused with every size and path; rank 0 checks
// each result against the reference of tests/unit/reduce_reference.h and every rank's
// result must be bit-identical to rank 0's. No timing asserts: 8 threads may share 2
// cores. Ranks that call it differently, and it mixed with the other collectives:
// shm_collectives_*_test.cc.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "algorithms/collective.h"
#include "gtest/gtest.h"
#include "reduce/reduce.h"
#include "reduce_reference.h"
#include "shm_collectives_fixture.h"
#include "transports/shm/node_arena.h"
#include "transports/shm/node_segment.h"

namespace ftccl {
namespace {

using reduce_test::Buffer;
using reduce_test::kAllOps;
using reduce_test::kAllTypes;

constexpr size_t kSlotBytes = 64 * 1024;
constexpr size_t kLargest = ~size_t{0};      // the largest count that fits one slot
constexpr size_t kSeveral = ~size_t{0} - 1;  // two and a half slots, and 3 elements

struct OpSpec {
  ftcclDataType_t type;
  ftcclRedOp_t op;
  size_t count;
  bool inPlace;
};

// 10 types x 5 ops x 7 counts x 2 = 700 ops, the types changing fastest so that
// consecutive ops reuse a slot with another size.
std::vector<OpSpec> allOps(size_t slotBytes) {
  std::vector<OpSpec> ops;
  for (bool inPlace : {false, true}) {
    // 25 elements: 25 to 200 bytes, one line to all four of a line message.
    for (size_t count :
         {size_t{0}, size_t{1}, size_t{3}, size_t{25}, size_t{1003}, kLargest, kSeveral}) {
      for (ftcclRedOp_t op : kAllOps) {
        for (ftcclDataType_t type : kAllTypes) {
          size_t slot = slotBytes / dataTypeSize(type);
          size_t n = count == kLargest ? slot : count == kSeveral ? slot * 5 / 2 + 3 : count;
          ops.push_back({type, op, n, inPlace});
        }
      }
    }
  }
  return ops;
}

// Rank `rank`'s input of op `index`: reproducible, so rank 0 can build every rank's.
void fillInput(const OpSpec& spec, int n, size_t index, int rank, uint8_t* out) {
  shm_test::fillValues(spec.type, spec.count,
                       (uint64_t{static_cast<uint32_t>(n)} << 48) ^ (uint64_t{index} << 16) ^
                           static_cast<uint64_t>(rank),
                       out);
}

using shm_test::fnv1a;

// Checks `got` against the reference: every rank's input folded in rank order, then the
// division for Avg. Returns "" or the first mismatch.
std::string checkReference(const OpSpec& spec, int n, size_t index, const uint8_t* got) {
  size_t size = dataTypeSize(spec.type);
  std::vector<std::vector<uint8_t>> inputs(n, std::vector<uint8_t>(spec.count * size));
  for (int r = 0; r < n; ++r) fillInput(spec, n, index, r, inputs[r].data());
  return shm_test::checkFolded(spec.type, spec.op, inputs, spec.count, got);
}

// The op driver's loop (shm_collectives_fixture.h); gAbandoned set by a failing rank
// stops its peers.
using shm_test::gAbandoned;

Status runOne(NodeMemory& memory, const CollectiveArgs& args, uint32_t* nextSeq,
              size_t streamBytes) {
  return shm_test::runOne(CollectiveKind::kAllReduce, memory, args, nextSeq, streamBytes);
}

struct RankLog {
  std::vector<uint64_t> hashes;  // per op: of the result's bytes
  std::string failure;           // the first failure, "" if none
};

void runRank(const shm::NodeSegment& segment, int rank, const std::vector<OpSpec>& ops,
             size_t streamBytes, RankLog* log) {
  shm::NodeArena arena(segment, rank);
  int n = arena.localSize();
  uint32_t nextSeq = 1;
  for (size_t i = 0; i < ops.size(); ++i) {
    const OpSpec& spec = ops[i];
    size_t size = dataTypeSize(spec.type);
    Buffer send(spec.count, size, 0), recv(spec.count, size, 0);
    fillInput(spec, n, i, rank, spec.inPlace ? recv.data : send.data);
    CollectiveArgs args;
    args.sendbuff = spec.inPlace ? recv.data : send.data;
    args.recvbuff = recv.data;
    args.count = spec.count;
    args.type = spec.type;
    args.op = spec.op;
    Status status = runOne(arena, args, &nextSeq, streamBytes);
    std::string where = std::string(" (op ") + std::to_string(i) + ", " + dataTypeName(spec.type) +
                        " " + redOpName(spec.op) + " x" + std::to_string(spec.count) +
                        (spec.inPlace ? " in place)" : ")");
    if (!status.isOk()) {
      log->failure = "progress: " + status.message() + where;
      gAbandoned.store(true);  // peers would otherwise wait for this rank for ever
      return;
    }
    if (!recv.guardsIntact()) log->failure = "wrote outside recvbuff" + where;
    if (rank == 0 && log->failure.empty()) {
      std::string mismatch = checkReference(spec, n, i, recv.data);
      if (!mismatch.empty()) log->failure = mismatch + where;
    }
    log->hashes.push_back(fnv1a(recv.data, spec.count * size));
  }
}

// A fresh segment of n local ranks with slots of kSlotBytes.
void makeSegment(int n, int slotsPerRank, shm::NodeSegment* segment) {
  shm_test::makeSegment(n, slotsPerRank, segment, kSlotBytes);
}

void runNode(int n, int slotsPerRank, size_t streamBytes = kShmStreamBytes) {
  shm::NodeSegment segment;
  ASSERT_NO_FATAL_FAILURE(makeSegment(n, slotsPerRank, &segment));
  std::vector<OpSpec> ops = allOps(segment.layout().slotBytes());
  gAbandoned.store(false);
  std::vector<RankLog> logs(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back(runRank, std::cref(segment), r, ops, streamBytes, &logs[r]);
  }
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < n; ++r) {
    SCOPED_TRACE("local rank " + std::to_string(r) + " of " + std::to_string(n));
    EXPECT_EQ(logs[r].failure, "");
    ASSERT_EQ(logs[r].hashes.size(), ops.size());
    for (size_t i = 0; i < ops.size(); ++i) {
      ASSERT_EQ(logs[r].hashes[i], logs[0].hashes[i]) << "op " << i << " differs from rank 0";
    }
  }
}

class ShmAllReduceRanks : public ::testing::TestWithParam<int> {};

TEST_P(ShmAllReduceRanks, EveryTypeOpAndCountDoubleBuffered) { runNode(GetParam(), 2); }

INSTANTIATE_TEST_SUITE_P(LocalSizes, ShmAllReduceRanks, ::testing::Range(1, 9));

// Outputs written with stores that bypass the cache (from kShmStreamBytes in a job),
// here from the first pipelined size: every count, type, op and placement again.
TEST(ShmAllReduce, StreamingOutputs) {
  for (int n : {2, 3, 5}) runNode(n, 2, 1);
}

// Four slots per rank: a rank may run further ahead of the slowest.
TEST(ShmAllReduce, FourSlots) {
  runNode(3, 4);
  runNode(8, 4);
}

// One slot per rank would need a barrier before every overwrite: refused, publishing
// nothing. The sequences an op takes depend only on its count and type.
TEST(ShmAllReduce, RefusesOneSlotAndCountsSequencesByChunks) {
  shm::NodeSegment segment;
  ASSERT_NO_FATAL_FAILURE(makeSegment(2, 1, &segment));
  shm::NodeArena arena(segment, 0);
  std::vector<float> data(segment.layout().slotBytes() / sizeof(float) * 3);
  CollectiveArgs args;
  args.sendbuff = args.recvbuff = data.data();
  args.count = data.size();
  uint32_t nextSeq = 1;
  std::unique_ptr<Collective> op = makeShmAllReduce(arena, args, &nextSeq);
  EXPECT_EQ(nextSeq, 4u);  // three slots of data: three chunks
  bool done = true;
  Status status = op->progress(&done);
  EXPECT_EQ(status.code(), ftcclInvalidArgument);
  EXPECT_FALSE(done);
  EXPECT_FALSE(arena.readyReached(0, 1));
  args.count = 1;
  op = makeShmAllReduce(arena, args, &nextSeq);
  EXPECT_EQ(nextSeq, 5u);
}

TEST(ShmAllReduce, WaitsWithoutBlockingAndReportsLocalPeers) {
  shm::NodeSegment segment;
  ASSERT_NO_FATAL_FAILURE(makeSegment(3, 2, &segment));
  shm::NodeArena arena(segment, 1);
  float in = 1.0f, out = 0.0f;
  CollectiveArgs args;
  args.sendbuff = &in;
  args.recvbuff = &out;
  args.count = 1;
  uint32_t nextSeq = 1;
  std::unique_ptr<Collective> op = makeShmAllReduce(arena, args, &nextSeq);
  bool done = true;
  ASSERT_TRUE(op->progress(&done).isOk());  // peers absent: returns, not done
  EXPECT_FALSE(done);
  EXPECT_TRUE(arena.readyReached(1, 1));
  EXPECT_EQ(op->pendingPeers(), (std::vector<int>{0, 2}));
  uint64_t mark = op->progressMark();
  EXPECT_GT(mark, 0u);
  op->abort();
  ASSERT_TRUE(op->progress(&done).isOk());
  EXPECT_FALSE(done);
  EXPECT_TRUE(op->pendingPeers().empty());
  EXPECT_FALSE(arena.doneReached(1, 1));
}

}  // namespace
}  // namespace ftccl
