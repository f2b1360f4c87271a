// The hierarchical all-reduce's intra-node phases over shared memory
// (makeShmReduceScatterPhase, makeShmAllGatherPhase in ring_phases.h): the reduce-scatter
// and all-gather over the ring's uneven parts of one buffer, the parts differing by an
// element (empty ones where the count is below the local size). Per local size 1..8,
// every rank a thread with its own arena and ONE sequence counter over one segment:
// for each type x op x count (0, below n, odd, several chunks) x in place / out of
// place, a reduce-scatter then an all-gather, which together are an all-reduce. Each
// rank checks its part after the first phase against the reference fold, the guards
// around its buffers, that it never wrote an input it must only read, and that every
// rank ends with the same bits of the whole buffer. No timing asserts.
#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "algorithms/ring_phases.h"
#include "gtest/gtest.h"
#include "shm_collectives_fixture.h"

namespace ftccl {
namespace shm_test {
namespace {

using reduce_test::Buffer;

constexpr ftcclDataType_t kTypes[] = {ftcclInt8,     ftcclFloat16, ftcclFloat32,
                                      ftcclBfloat16, ftcclFloat64, ftcclUint64};
constexpr ftcclRedOp_t kOps[] = {ftcclSum, ftcclMax, ftcclProd};

struct PhaseCase {
  ftcclDataType_t type;
  ftcclRedOp_t op;
  size_t count;
  bool inPlace;
};

std::vector<PhaseCase> cases(int n) {
  const size_t several = kSlotBytes / 2 * 5 / 2 + 7;  // chunks of a slot's n-th: several
  std::vector<PhaseCase> all;
  for (bool inPlace : {true, false}) {
    for (size_t count : {size_t{0}, size_t{1}, static_cast<size_t>(n + 1), size_t{1003}, several}) {
      for (ftcclRedOp_t op : kOps) {
        for (ftcclDataType_t type : kTypes) all.push_back({type, op, count, inPlace});
      }
    }
  }
  return all;
}

uint64_t seedOf(int n, size_t index, int rank) {
  return (uint64_t{static_cast<uint32_t>(n)} << 48) ^ (uint64_t{index} << 16) ^
         static_cast<uint64_t>(rank);
}

struct RankResult {
  std::vector<uint64_t> hashes;
  std::string failure;
};

// Rank `rank`'s phases for every case; the reference needs every rank's input, which
// any rank can rebuild from the seeds.
void runRank(shm::NodeArena& arena, int rank, const std::vector<PhaseCase>& all,
             RankResult* result) {
  const int n = arena.localSize();
  uint32_t nextSeq = 1;
  auto fail = [&](const std::string& why, size_t i) {
    if (result->failure.empty()) {
      result->failure = why + " (case " + std::to_string(i) + ": " + dataTypeName(all[i].type) +
                        " " + redOpName(all[i].op) + " x" + std::to_string(all[i].count) +
                        (all[i].inPlace ? ", in place)" : ")");
    }
    gAbandoned.store(true);
  };
  for (size_t i = 0; i < all.size(); ++i) {
    const PhaseCase& c = all[i];
    const size_t size = dataTypeSize(c.type);
    const std::vector<Segment> parts = ringParts(n, c.count);
    const Segment mine = parts[static_cast<size_t>(rank)];
    Buffer input(c.count, size, 0), part(c.inPlace ? 0 : mine.count, size, 0);
    Buffer gathered(c.inPlace ? 0 : c.count, size, 0);
    fillValues(c.type, c.count, seedOf(n, i, rank), input.data);
    const uint64_t before = fnv1a(input.data, c.count * size);
    CollectiveArgs args;
    args.type = c.type;
    args.op = c.op;
    args.opSeq = static_cast<uint32_t>(i);
    uint8_t* out = c.inPlace ? input.at(mine.offset) : part.data;
    Status st =
        runToCompletion(makeShmReduceScatterPhase(arena, args, parts, input.data, out, &nextSeq));
    if (!st.isOk()) return fail("reduce-scatter: " + st.message(), i);
    // Part `rank` of every rank's input, folded in local rank order.
    std::vector<std::vector<uint8_t>> inputs(n, std::vector<uint8_t>(c.count * size));
    for (int r = 0; r < n; ++r) fillValues(c.type, c.count, seedOf(n, i, r), inputs[r].data());
    std::vector<std::vector<uint8_t>> slices;
    for (const auto& whole : inputs) {
      slices.emplace_back(whole.begin() + static_cast<long>(mine.offset * size),
                          whole.begin() + static_cast<long>((mine.offset + mine.count) * size));
    }
    std::string wrong = checkFolded(c.type, c.op, slices, mine.count, out);
    if (!wrong.empty()) return fail("reduce-scatter: " + wrong, i);
    if (!c.inPlace && fnv1a(input.data, c.count * size) != before) {
      return fail("reduce-scatter wrote into its input", i);
    }
    uint8_t* whole = c.inPlace ? input.data : gathered.data;
    st = runToCompletion(makeShmAllGatherPhase(arena, args, parts, out, whole, &nextSeq));
    if (!st.isOk()) return fail("all-gather: " + st.message(), i);
    if (!input.guardsIntact() || !part.guardsIntact() || !gathered.guardsIntact()) {
      return fail("wrote outside its buffers", i);
    }
    wrong = checkFolded(c.type, c.op, inputs, c.count, whole);
    if (!wrong.empty()) return fail("all-gather: " + wrong, i);
    result->hashes.push_back(fnv1a(whole, c.count * size));
  }
}

class ShmPhasesRanks : public ::testing::TestWithParam<int> {};

TEST_P(ShmPhasesRanks, ReduceScatterThenAllGatherOverUnevenParts) {
  const int n = GetParam();
  shm::NodeSegment segment;
  ASSERT_NO_FATAL_FAILURE(makeSegment(n, 2, &segment));
  std::vector<std::unique_ptr<shm::NodeArena>> arenas;
  for (int r = 0; r < n; ++r) arenas.push_back(std::make_unique<shm::NodeArena>(segment, r));
  const std::vector<PhaseCase> all = cases(n);
  gAbandoned.store(false);
  std::vector<RankResult> results(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back(runRank, std::ref(*arenas[static_cast<size_t>(r)]), r, std::cref(all),
                         &results[static_cast<size_t>(r)]);
  }
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < n; ++r) {
    const RankResult& got = results[static_cast<size_t>(r)];
    EXPECT_EQ(got.failure, "") << "local rank " << r << " of " << n;
    ASSERT_EQ(got.hashes.size(), all.size()) << "local rank " << r;
    EXPECT_EQ(got.hashes, results[0].hashes) << "local rank " << r << " ended with other bits";
  }
}

INSTANTIATE_TEST_SUITE_P(LocalSizes, ShmPhasesRanks, ::testing::Range(1, 9));

}  // namespace
}  // namespace shm_test
}  // namespace ftccl
