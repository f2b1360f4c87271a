// Helpers of the shared-memory collective tests (shm_allreduce_test.cc and
// shm_collectives_*_test.cc): a segment per test, a factory per collective, the op
// driver's loop, and the reference of a reduction.
#pragma once

#include <unistd.h>

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
#include "transports/shm/node_arena.h"
#include "transports/shm/node_segment.h"

namespace ftccl {
namespace shm_test {

using Kind = CollectiveKind;

constexpr size_t kSlotBytes = 16 * 1024;  // of the segment: a slot's data is 64 B less
constexpr Kind kKinds[] = {Kind::kBroadcast, Kind::kReduce, Kind::kAllGather, Kind::kReduceScatter,
                           Kind::kAllReduce};

inline bool reduces(Kind k) { return k != Kind::kBroadcast && k != Kind::kAllGather; }
inline bool rooted(Kind k) { return k == Kind::kBroadcast || k == Kind::kReduce; }

// streamBytes: from what size the all-reduce's outputs bypass the cache.
inline std::unique_ptr<Collective> makeOp(Kind kind, NodeMemory& memory, const CollectiveArgs& args,
                                          uint32_t* nextSeq, size_t streamBytes = kShmStreamBytes) {
  switch (kind) {
    case Kind::kAllReduce:
      return makeShmAllReduce(memory, args, nextSeq, streamBytes);
    case Kind::kBroadcast:
      return makeShmBroadcast(memory, args, nextSeq);
    case Kind::kReduce:
      return makeShmReduce(memory, args, nextSeq);
    case Kind::kAllGather:
      return makeShmAllGather(memory, args, nextSeq);
    case Kind::kReduceScatter:
      return makeShmReduceScatter(memory, args, nextSeq);
  }
  return nullptr;
}

// A fresh segment of n local ranks with slots of `slotBytes`.
inline void makeSegment(int n, int slotsPerRank, shm::NodeSegment* segment,
                        size_t slotBytes = kSlotBytes) {
  shm::NodeLayout layout;
  ASSERT_TRUE(shm::NodeLayout::make(n, slotBytes, slotsPerRank, 1, &layout).isOk());
  Status created = shm::NodeSegment::create(layout, segment);
  ASSERT_TRUE(created.isOk()) << created.message();
}

// Why this process cannot read another's memory through the kernel (single copy), or
// "": a seccomp filter, ptrace rules or an old kernel refuse it, and the tests of single
// copy then skip, saying why, as core then leaves it off.
inline std::string singleCopyUnavailable() {
  static volatile uint64_t word = 42;
  shm::PeerReader reader;
  Status st = reader.open({getpid()});
  uint64_t got = 0;
  if (st.isOk()) st = reader.read(0, reinterpret_cast<uintptr_t>(&word), &got, sizeof(got));
  if (st.isOk() && got != 42) st = internalError("read the wrong bytes");
  return st.isOk() ? "" : st.message();
}

// Set by the first rank that fails, so that its peers stop waiting for it and the test
// reports the failure instead of hanging until CTest's timeout.
inline std::atomic<bool> gAbandoned{false};

// Runs a collective to completion the way the op driver will: progress, and between
// calls a bounded sleep on a peer it waits for.
inline Status runToCompletion(std::unique_ptr<Collective> op) {
  for (;;) {
    bool done = false;
    FTCCL_CHECK(op->progress(&done));
    if (done) return Status::ok();
    if (gAbandoned.load()) {
      op->abort();
      return internalError("a peer failed first");
    }
    if (!op->waitForPeers(1000)) std::this_thread::yield();
  }
}

// One collective of `kind`, built and run to completion.
inline Status runOne(Kind kind, NodeMemory& memory, const CollectiveArgs& args, uint32_t* nextSeq,
                     size_t streamBytes = kShmStreamBytes) {
  return runToCompletion(makeOp(kind, memory, args, nextSeq, streamBytes));
}

// `count` reproducible values of `type` from `seed` (reduce_reference.h's mix).
inline void fillValues(ftcclDataType_t type, size_t count, uint64_t seed, uint8_t* out) {
  std::mt19937_64 rng(seed);
  const size_t size = dataTypeSize(type);
  for (size_t i = 0; i < count; ++i) reduce_test::fillValue(type, rng, out + i * size);
}

inline uint64_t fnv1a(const uint8_t* data, size_t bytes) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < bytes; ++i) h = (h ^ data[i]) * 1099511628211ull;
  return h;
}

// `got` against the n `inputs` (count elements each) folded in rank order, then divided
// by n for Avg. Returns "" or the first mismatch.
inline std::string checkFolded(ftcclDataType_t type, ftcclRedOp_t op,
                               const std::vector<std::vector<uint8_t>>& inputs, size_t count,
                               const uint8_t* got) {
  const size_t size = dataTypeSize(type);
  const int n = static_cast<int>(inputs.size());
  uint8_t acc[8], next[8];
  for (size_t i = 0; i < count; ++i) {
    std::memcpy(acc, inputs[0].data() + i * size, size);
    for (int r = 1; r < n; ++r) {
      reduce_test::refElem(type, op, acc, inputs[r].data() + i * size, next);
      std::memcpy(acc, next, size);
    }
    if (op == ftcclAvg) {
      reduce_test::refDivElem(type, acc, n, next);
      std::memcpy(acc, next, size);
    }
    // One rank combines nothing: its input comes back as is (a signalling NaN too, which
    // sameElem would want quiet), as from the other algorithms at one rank.
    bool same = n == 1 && op != ftcclAvg ? std::memcmp(acc, got + i * size, size) == 0
                                         : bool(reduce_test::sameElem(type, acc, got + i * size));
    if (!same) return "element " + std::to_string(i) + " differs from the reference";
  }
  return "";
}

}  // namespace shm_test
}  // namespace ftccl
