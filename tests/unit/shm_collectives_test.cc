// The shared-memory broadcast, reduce, all-gather and reduce-scatter
// (src/algorithms/shm_*.cc) over a real NodeSegment in one process, mixed with the
// all-reduce in one sequence of ops, so that the flag contract of
// transports/node_memory.h is kept across collectives of different kinds.
// Per local size 1..8, 1560 back-to-back ops over ONE segment, each rank a thread with
// its own NodeArena and ONE sequence counter, driving the op with progress() and
// bounded sleeps as the op driver does: every type x op (where it reduces) x count (0 to
// several chunks) x in place / out of place, roots cycling, the kinds interleaved. Each
// rank checks what it receives against the reference of tests/unit/reduce_reference.h,
// the guards around its buffers, and that what it must only read is unchanged; where
// every rank receives, every rank's result must be bit-identical. Then one thread steps
// the ranks in random orders (a rank far ahead, another lagging). Ranks that call one op
// differently, refused arguments and the waits: shm_collectives_usage_test.cc. No
// timing asserts: 8 threads may share 2 cores.
#include <unistd.h>

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

namespace ftccl {
namespace shm_test {
namespace {

using reduce_test::Buffer;
using reduce_test::kAllOps;
using reduce_test::kAllTypes;

constexpr size_t kLargest = ~size_t{0};      // one chunk's worth
constexpr size_t kSeveral = ~size_t{0} - 1;  // two and a half chunks, and 3 elements

struct OpSpec {
  Kind kind;
  ftcclDataType_t type;
  ftcclRedOp_t op;
  size_t count;  // NCCL's: all-gather sends it, reduce-scatter receives it
  bool inPlace;
  int root;
};

// The elements one chunk carries: a slot's, or for reduce-scatter a slot's n-th on
// cache lines (as the algorithm cuts it), so that the counts land on chunk edges.
size_t chunkElems(Kind kind, ftcclDataType_t type, int n, size_t slotData) {
  size_t size = dataTypeSize(type), elems = slotData / size;
  if (kind != Kind::kReduceScatter) return elems;
  size_t each = elems / static_cast<size_t>(n), align = std::max<size_t>(1, 64 / size);
  return each >= align ? each / align * align : each;
}

// Reduce and reduce-scatter: every type x op x count x in place (600 each); broadcast,
// all-gather and the all-reduce (whose own test has them all) every type x count x in
// place, the all-reduce's op cycling (120 each): 1560. Roots cycle over the ranks; the
// kinds take turns, and types change fastest within a kind, so consecutive ops reuse
// slots with another kind and size.
std::vector<OpSpec> mixedOps(int n, size_t slotData) {
  std::vector<std::vector<OpSpec>> lists;
  for (Kind kind : kKinds) {
    bool everyOp = reduces(kind) && kind != Kind::kAllReduce;
    std::vector<OpSpec> ops;
    for (bool inPlace : {false, true}) {
      for (size_t count : {size_t{0}, size_t{1}, size_t{3}, size_t{1003}, kLargest, kSeveral}) {
        for (ftcclRedOp_t op : kAllOps) {
          if (!everyOp && op != ftcclSum) continue;
          for (ftcclDataType_t type : kAllTypes) {
            size_t i = ops.size(), chunk = chunkElems(kind, type, n, slotData);
            size_t c = count == kLargest ? chunk : count == kSeveral ? chunk * 5 / 2 + 3 : count;
            int root = static_cast<int>((i + i / 10) % static_cast<size_t>(n));
            ops.push_back({kind, type, everyOp ? op : kAllOps[i % 5], c, inPlace, root});
          }
        }
      }
    }
    lists.push_back(ops);
  }
  std::vector<OpSpec> mixed;
  size_t total = 0;
  for (const std::vector<OpSpec>& list : lists) total += list.size();
  for (size_t i = 0; mixed.size() < total; ++i) {
    for (const std::vector<OpSpec>& list : lists) {
      if (i < list.size()) mixed.push_back(list[i]);
    }
  }
  return mixed;
}

// Part `part` of rank `rank`'s input of op `index`: reproducible, so any rank can build
// any rank's part.
void fillPart(const OpSpec& spec, int n, size_t index, int rank, size_t part, uint8_t* out) {
  fillValues(spec.type, spec.count,
             (uint64_t{static_cast<uint32_t>(n)} << 56) ^ (uint64_t{index} << 24) ^
                 (uint64_t{part} << 12) ^ static_cast<uint64_t>(rank),
             out);
}

// `got` against part `part` of every rank's input folded in rank order, then divided
// for Avg. Returns "" or the first mismatch.
std::string checkReduced(const OpSpec& spec, int n, size_t index, size_t part, const uint8_t* got) {
  size_t size = dataTypeSize(spec.type);
  std::vector<std::vector<uint8_t>> inputs(n, std::vector<uint8_t>(spec.count * size));
  for (int r = 0; r < n; ++r) fillPart(spec, n, index, r, part, inputs[r].data());
  return checkFolded(spec.type, spec.op, inputs, spec.count, got);
}

std::string checkCopied(const OpSpec& spec, int n, size_t index, int rank, const uint8_t* got) {
  std::vector<uint8_t> want(spec.count * dataTypeSize(spec.type));
  fillPart(spec, n, index, rank, 0, want.data());
  if (want.empty() || std::memcmp(want.data(), got, want.size()) == 0) return "";
  return "differs from local rank " + std::to_string(rank) + "'s input";
}

std::string where(const OpSpec& spec, size_t index) {
  return std::string(" (op ") + std::to_string(index) + ": " + collectiveName(spec.kind) + " " +
         dataTypeName(spec.type) +
         (reduces(spec.kind) ? std::string(" ") + redOpName(spec.op) : "") + " x" +
         std::to_string(spec.count) +
         (rooted(spec.kind) ? ", root " + std::to_string(spec.root) : "") +
         (spec.inPlace ? ", in place)" : ")");
}

// One rank's buffers and arguments for op `index`, laid out as NCCL's callers do (in
// place: all-gather's input is part r of its output, reduce-scatter's output part r of
// its input), with garbage where NCCL ignores an argument: a null sendbuff on a
// broadcast's non-roots and recvbuff on a reduce's, an op that differs per rank where
// nothing is reduced, a root that differs where there is none.
class RankOp {
 public:
  RankOp(const OpSpec& spec, int n, size_t index, int rank)
      : spec_(spec),
        n_(n),
        index_(index),
        rank_(rank),
        size_(dataTypeSize(spec.type)),
        parts_(spec.kind == Kind::kReduceScatter ? n : 1),
        main_(spec.count * (spec.inPlace && spec.kind == Kind::kAllGather ? n : parts_), size_, 0),
        out_(spec.inPlace ? 0 : spec.count * (spec.kind == Kind::kAllGather ? n : 1), size_, 0) {
    bool gatherInPlace = spec.inPlace && spec.kind == Kind::kAllGather;
    uint8_t* in = main_.at(gatherInPlace ? rank * spec.count : 0);
    for (size_t p = 0; p < parts_; ++p)
      fillPart(spec, n, index, rank, p, in + p * spec.count * size_);
    args_.sendbuff = in;
    args_.recvbuff = !spec.inPlace                       ? out_.data
                     : spec.kind == Kind::kReduceScatter ? main_.at(rank * spec.count)
                                                         : main_.data;
    bool isRoot = rank == spec.root;
    if (!spec.inPlace && spec.kind == Kind::kBroadcast && !isRoot) args_.sendbuff = nullptr;
    if (!spec.inPlace && spec.kind == Kind::kReduce && !isRoot) args_.recvbuff = nullptr;
    args_.count = spec.count;
    args_.type = spec.type;
    args_.op = reduces(spec.kind) ? spec.op : static_cast<ftcclRedOp_t>(100 + rank);
    args_.root = rooted(spec.kind) ? spec.root : 100 + rank;
    readOnly_ = !spec.inPlace || (spec.kind == Kind::kReduce && !isRoot);
    before_ = fnv1a(main_.data, main_.n * size_);
  }

  const CollectiveArgs& args() const { return args_; }

  // What this rank received (and kept), "" if right.
  std::string check() const {
    if (!main_.guardsIntact() || !out_.guardsIntact()) return "wrote outside its buffers";
    if (readOnly_ && fnv1a(main_.data, main_.n * size_) != before_) {
      return "wrote into a buffer it must only read";
    }
    const uint8_t* got = static_cast<const uint8_t*>(args_.recvbuff);
    switch (spec_.kind) {
      case Kind::kAllReduce:  // one rank checks, all must have the same bits
        return index_ % n_ == static_cast<size_t>(rank_) ? checkReduced(spec_, n_, index_, 0, got)
                                                         : "";
      case Kind::kReduce:
        return rank_ == spec_.root ? checkReduced(spec_, n_, index_, 0, got) : "";
      case Kind::kReduceScatter:
        return checkReduced(spec_, n_, index_, static_cast<size_t>(rank_), got);
      case Kind::kBroadcast:
        return checkCopied(spec_, n_, index_, spec_.root, got);
      case Kind::kAllGather:
        for (int r = 0; r < n_; ++r) {
          std::string wrong = checkCopied(spec_, n_, index_, r, got + r * spec_.count * size_);
          if (!wrong.empty()) return wrong;
        }
        return "";
    }
    return "unknown collective";
  }

  // Of the output where every rank receives the same, else 0.
  uint64_t sharedHash() const {
    if (spec_.kind == Kind::kReduce || spec_.kind == Kind::kReduceScatter) return 0;
    size_t parts = spec_.kind == Kind::kAllGather ? static_cast<size_t>(n_) : 1;
    return fnv1a(static_cast<const uint8_t*>(args_.recvbuff), parts * spec_.count * size_);
  }

 private:
  OpSpec spec_;
  int n_;
  size_t index_;
  int rank_;
  size_t size_, parts_;
  Buffer main_, out_;  // the input (and in place the output); the output
  CollectiveArgs args_;
  bool readOnly_ = false;
  uint64_t before_ = 0;
};

struct RankLog {
  std::vector<uint64_t> hashes;  // per op: sharedHash()
  std::string failure;           // the first failure, "" if none
};

void runRank(shm::NodeArena& arena, int rank, const std::vector<OpSpec>& ops, RankLog* log) {
  uint32_t nextSeq = 1;
  for (size_t i = 0; i < ops.size(); ++i) {
    RankOp op(ops[i], arena.localSize(), i, rank);
    Status status = runOne(ops[i].kind, arena, op.args(), &nextSeq);
    if (!status.isOk()) {
      log->failure = "progress: " + status.message() + where(ops[i], i);
      gAbandoned.store(true);  // peers would otherwise wait for this rank for ever
      return;
    }
    std::string wrong = op.check();
    if (!wrong.empty() && log->failure.empty()) log->failure = wrong + where(ops[i], i);
    log->hashes.push_back(op.sharedHash());
  }
}

size_t slotData() { return kSlotBytes; }

void expectSameHashes(const std::vector<std::vector<uint64_t>>& hashes, size_t ops) {
  for (size_t r = 0; r < hashes.size(); ++r) {
    ASSERT_EQ(hashes[r].size(), ops) << "local rank " << r;
    for (size_t i = 0; i < ops; ++i) {
      ASSERT_EQ(hashes[r][i], hashes[0][i]) << "local rank " << r << ", op " << i;
    }
  }
}

// Whether some of `ops` read a peer's buffer at n ranks: a broadcast, and at 2 ranks an
// all-gather and a reduce-scatter too.
bool readsDirectly(const std::vector<OpSpec>& ops, int n) {
  if (n > kShmSingleCopyMaxRanks) return true;  // nothing to look for
  auto has = [&ops](Kind kind, size_t from, size_t upTo) {
    return std::any_of(ops.begin(), ops.end(), [&](const OpSpec& op) {
      const size_t bytes = op.count * dataTypeSize(op.type);
      return op.kind == kind && bytes >= from && bytes <= upTo;
    });
  };
  return has(Kind::kBroadcast, kShmSingleCopyBytes, kShmSingleCopyMaxBytes) &&
         (n != 2 || (has(Kind::kAllGather, kShmSingleCopyPartBytes, SIZE_MAX) &&
                     has(Kind::kReduceScatter, kShmSingleCopyReducePartBytes,
                         kShmSingleCopyReduceMaxPartBytes)));
}

// The arenas of one segment, with single copy on as core sets it up (every "process" is
// this one: a read of a peer's buffer is a read of this process's memory, through the
// kernel all the same).
std::vector<std::unique_ptr<shm::NodeArena>> makeArenas(const shm::NodeSegment& segment,
                                                        bool singleCopy) {
  const int n = static_cast<int>(segment.layout().localSize());
  std::vector<std::unique_ptr<shm::NodeArena>> arenas;
  for (int r = 0; r < n; ++r) arenas.push_back(std::make_unique<shm::NodeArena>(segment, r));
  if (!singleCopy) return arenas;
  for (auto& arena : arenas) arena->publishProbe();
  for (auto& arena : arenas) {
    Status probed = arena->probeSingleCopy(std::vector<pid_t>(static_cast<size_t>(n), getpid()));
    EXPECT_TRUE(probed.isOk()) << probed.message();
    arena->useSingleCopy(true);
    EXPECT_EQ(arena->singleCopy(), n > 0);
  }
  return arenas;
}

// Every `stride`-th op of mixedOps, all ranks threads over one segment. With single copy,
// the broadcasts of several chunks (kSeveral: 40 KiB and more) read the root's buffer,
// and at 2 ranks the all-gathers and reduce-scatters of such parts each other's.
void runNode(int n, int slotsPerRank, size_t stride, bool singleCopy = false) {
  shm::NodeSegment segment;
  ASSERT_NO_FATAL_FAILURE(makeSegment(n, slotsPerRank, &segment));
  std::vector<std::unique_ptr<shm::NodeArena>> arenas = makeArenas(segment, singleCopy);
  std::vector<OpSpec> all = mixedOps(n, slotData()), ops;
  for (size_t i = 0; i < all.size(); i += stride) ops.push_back(all[i]);
  if (singleCopy) {
    ASSERT_TRUE(readsDirectly(ops, n)) << "nothing to read directly";
  }
  gAbandoned.store(false);
  std::vector<RankLog> logs(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back(runRank, std::ref(*arenas[r]), r, std::cref(ops), &logs[r]);
  }
  for (std::thread& t : threads) t.join();
  std::vector<std::vector<uint64_t>> hashes;
  for (int r = 0; r < n; ++r) {
    EXPECT_EQ(logs[r].failure, "") << "local rank " << r << " of " << n;
    hashes.push_back(logs[r].hashes);
  }
  expectSameHashes(hashes, ops.size());
}

class ShmCollectivesRanks : public ::testing::TestWithParam<int> {};

TEST_P(ShmCollectivesRanks, EveryKindTypeOpCountAndRootMixed) { runNode(GetParam(), 2, 1); }

INSTANTIATE_TEST_SUITE_P(LocalSizes, ShmCollectivesRanks, ::testing::Range(1, 9));

// Over a memory with single copy: at 2 ranks the broadcasts of several chunks read the
// root's buffer and the all-gathers and reduce-scatters each other's (2 and 4 slots); at
// 3 they keep to the slots (kShmSingleCopyMaxRanks).
TEST(ShmCollectives, EveryKindMixedOverSingleCopyMemory) {
  const std::string why = singleCopyUnavailable();
  if (!why.empty()) GTEST_SKIP() << "no single copy here: " << why;
  runNode(2, 2, 1, true);
  runNode(2, 4, 3, true);  // not 2: past the short lists reduces and reduce-scatters alternate
  runNode(3, 2, 2, true);
}

// Four slots per rank: a rank may run further ahead of the slowest.
TEST(ShmCollectives, FourSlots) {
  runNode(3, 4, 3);
  runNode(8, 4, 5);
}

// One thread steps the ranks one progress() call at a time, each rank chosen with its
// own weight: one may run several ops ahead while another has not read a slot yet, which
// threads on 2 cores rarely do. A slot overwritten too early shows as a wrong result; a
// wait that never ends, as a stall (no rank can advance).
void runSchedule(int n, int slotsPerRank, uint64_t seed, size_t stride, bool singleCopy = false) {
  SCOPED_TRACE("n " + std::to_string(n) + ", seed " + std::to_string(seed));
  shm::NodeSegment segment;
  ASSERT_NO_FATAL_FAILURE(makeSegment(n, slotsPerRank, &segment));
  std::vector<std::unique_ptr<shm::NodeArena>> arenas = makeArenas(segment, singleCopy);
  std::vector<OpSpec> all = mixedOps(n, slotData()), ops;
  for (size_t i = seed % stride; i < all.size(); i += stride) ops.push_back(all[i]);
  if (singleCopy) {
    ASSERT_TRUE(readsDirectly(ops, n)) << "nothing to read directly";
  }
  struct Rank {
    std::unique_ptr<shm::NodeArena> arena;
    uint32_t nextSeq = 1;
    size_t next = 0;  // the op in progress
    std::unique_ptr<RankOp> data;
    std::unique_ptr<Collective> op;
    unsigned weight = 1;
  };
  std::mt19937_64 rng(seed);
  std::vector<Rank> ranks(n);
  std::vector<std::vector<uint64_t>> hashes(n);
  unsigned total = 0;
  for (int r = 0; r < n; ++r) {
    ranks[r].arena = std::move(arenas[r]);
    total += ranks[r].weight = 1 + rng() % 16;
  }
  size_t finished = 0, idle = 0;
  while (finished < static_cast<size_t>(n)) {
    int r = 0;
    for (unsigned pick = rng() % total; pick >= ranks[r].weight; ++r) pick -= ranks[r].weight;
    Rank& k = ranks[r];
    if (k.next == ops.size()) continue;
    if (!k.op) {
      k.data = std::make_unique<RankOp>(ops[k.next], n, k.next, r);
      k.op = makeOp(ops[k.next].kind, *k.arena, k.data->args(), &k.nextSeq);
    }
    uint64_t mark = k.op->progressMark();
    bool done = false;
    Status status = k.op->progress(&done);
    ASSERT_TRUE(status.isOk()) << status.message() << where(ops[k.next], k.next);
    if (done) {
      ASSERT_EQ(k.data->check(), "") << "local rank " << r << where(ops[k.next], k.next);
      hashes[r].push_back(k.data->sharedHash());
      k.op.reset();
      if (++k.next == ops.size()) ++finished;
      idle = 0;
    } else if (k.op->progressMark() != mark) {
      idle = 0;
    } else {
      ASSERT_LT(++idle, 100000u) << "stalled: no rank advances" << where(ops[k.next], k.next);
    }
  }
  expectSameHashes(hashes, ops.size());
}

TEST(ShmCollectives, RandomSchedulesInOneThread) {
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    runSchedule(2, 2, seed, 4);
    runSchedule(4, 2, seed, 6);
    runSchedule(5, 4, seed, 8);
  }
}

// A single-copy root far ahead of its reader, or far behind it (stride 3 keeps every kind
// in the list: against the five kinds' rotation, and against the reduces and
// reduce-scatters that alternate once the shorter lists end).
TEST(ShmCollectives, RandomSchedulesWithSingleCopy) {
  const std::string why = singleCopyUnavailable();
  if (!why.empty()) GTEST_SKIP() << "no single copy here: " << why;
  for (uint64_t seed = 1; seed <= 4; ++seed) runSchedule(2, 2, seed, 3, true);
}

}  // namespace
}  // namespace shm_test
}  // namespace ftccl
