// Shared checks for the all-reduce algorithm tests (gtest), for any algorithm given a
// factory of its per-rank ops: exact results in both placements, abort at any point,
// and a peer that dies mid-operation.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "sim_collective.h"

namespace ftccl {
namespace testing {

// Makes rank r's op over `transport` with `args`.
using OpFactory = std::function<std::unique_ptr<Collective>(Transport& transport, int rank,
                                                            const CollectiveArgs& args)>;

// One op per rank; rank r reads in[r] and writes out[r] (or in[r] in place).
inline std::vector<std::unique_ptr<Collective>> makeAllReduceOps(
    sim::SimFabric& fabric, const OpFactory& make, ftcclDataType_t type, ftcclRedOp_t op,
    size_t count, bool inPlace, std::vector<std::vector<uint8_t>>& in,
    std::vector<std::vector<uint8_t>>& out) {
  int n = fabric.size();
  std::vector<std::unique_ptr<Collective>> ops(n);
  out.resize(n);
  for (int r = 0; r < n; ++r) {
    out[r].assign(in[r].size(), 0xEE);
    CollectiveArgs args;
    args.sendbuff = in[r].data();
    args.recvbuff = inPlace ? in[r].data() : out[r].data();
    args.count = count;
    args.type = type;
    args.op = op;
    args.opSeq = 7;
    ops[r] = make(fabric.transport(r), r, args);
  }
  return ops;
}

// Runs the all-reduce over `in` (consumed), progressing all ranks in turn, or with
// skewSeed set, at very different paces; returns each rank's output.
inline std::vector<std::vector<uint8_t>> runAllReduce(const OpFactory& make, ftcclDataType_t type,
                                                      ftcclRedOp_t op, size_t count, bool inPlace,
                                                      std::vector<std::vector<uint8_t>> in,
                                                      uint64_t skewSeed = 0) {
  sim::SimFabric fabric(static_cast<int>(in.size()));
  std::vector<std::vector<uint8_t>> out;
  auto ops = makeAllReduceOps(fabric, make, type, op, count, inPlace, in, out);
  Status st = skewSeed ? runSkewed(fabric, ops, skewSeed) : runAll(fabric, ops);
  EXPECT_TRUE(st.isOk()) << st.message();
  EXPECT_EQ(fabric.pending(), 0u);
  return inPlace ? std::move(in) : std::move(out);
}

// Both placements against the rank-order reduction, bitwise, on every rank.
inline void expectExactAllReduce(int n, const OpFactory& make, ftcclDataType_t type,
                                 ftcclRedOp_t op, size_t count, const std::string& context,
                                 uint64_t skewSeed = 0) {
  std::vector<std::vector<uint8_t>> in(n);
  for (int r = 0; r < n; ++r) in[r] = patternBuffer(type, r, count, op);
  std::vector<uint8_t> want = expectedReduction(type, op, n, count);
  for (bool inPlace : {false, true}) {
    auto got = runAllReduce(make, type, op, count, inPlace, in, skewSeed);
    for (int r = 0; r < n; ++r) {
      ASSERT_EQ(0, std::memcmp(got[r].data(), want.data(), count * dataTypeSize(type)))
          << "n=" << n << " " << dataTypeName(type) << " " << redOpName(op) << " count=" << count
          << " inPlace=" << inPlace << " " << context << " rank " << r;
    }
  }
}

// Inexact float sums (20,001 values in (-1000, 1000) per rank): a combination order
// that differed between ranks or runs would give different bits. Every rank must hold
// the same bits, a second run (at skewed paces when rerunSkew is set) the same ones,
// and they must be close to the plain sum.
inline void expectSameBitsOnInexactInputs(int n, const OpFactory& make, const std::string& context,
                                          uint64_t rerunSkew = 0) {
  const size_t count = 20001;
  std::mt19937 rng(n);
  std::uniform_real_distribution<float> dist(-1, 1);
  std::vector<std::vector<uint8_t>> in(n, std::vector<uint8_t>(count * 4));
  for (auto& buf : in) {
    for (size_t i = 0; i < count; ++i) {
      float v = dist(rng) * 1e3f;
      std::memcpy(buf.data() + 4 * i, &v, 4);
    }
  }
  for (bool inPlace : {false, true}) {
    auto got = runAllReduce(make, ftcclFloat32, ftcclSum, count, inPlace, in);
    for (int r = 1; r < n; ++r)
      ASSERT_EQ(got[r], got[0]) << "n=" << n << " " << context << " rank " << r;
    EXPECT_EQ(runAllReduce(make, ftcclFloat32, ftcclSum, count, inPlace, in, rerunSkew)[0], got[0]);
    for (size_t i = 0; i < count; i += 997) {
      float sum = 0, v = 0;
      for (int r = 0; r < n; ++r) {
        std::memcpy(&v, in[r].data() + 4 * i, 4);
        sum += v;
      }
      std::memcpy(&v, got[0].data() + 4 * i, 4);
      ASSERT_NEAR(v, sum, 1e-2) << "n=" << n << " " << context << " element " << i;
    }
  }
}

inline std::vector<std::unique_ptr<Collective>> makeInPlaceOps(
    sim::SimFabric& fabric, ftcclDataType_t type, size_t count, const OpFactory& make,
    std::vector<std::vector<uint8_t>>& data) {
  std::vector<std::vector<uint8_t>> unused;
  data.assign(fabric.size(), {});
  for (int r = 0; r < fabric.size(); ++r) data[r] = patternBuffer(type, r, count, ftcclSum);
  return makeAllReduceOps(fabric, make, type, ftcclSum, count, true, data, unused);
}

// abort() after k rounds, for every k until the op ends, cancels everything posted;
// destroying the ops afterwards is safe.
inline void expectAbortAtAnyPointLeavesNothingPosted(int n, ftcclDataType_t type, size_t count,
                                                     const OpFactory& make) {
  for (int rounds = 0;; ++rounds) {
    sim::SimFabric fabric(n);
    std::vector<std::vector<uint8_t>> data;
    auto ops = makeInPlaceOps(fabric, type, count, make, data);
    bool all = false;
    for (int k = 0; k < rounds && !all; ++k) {
      all = true;
      for (auto& op : ops) {
        bool done = false;
        ASSERT_TRUE(op->progress(&done).isOk());
        all = all && done;
      }
      fabric.progress();
    }
    for (auto& op : ops) op->abort();
    EXPECT_EQ(fabric.pending(), 0u) << "aborted after " << rounds << " rounds";
    ops.clear();
    if (all) break;
    ASSERT_LT(rounds, 1000);
  }
}

// Each rank in turn dies after each of `roundsBefore` rounds: the survivors' ops end
// (never a hang) with ftcclRemoteError from the first to fail, the others are aborted,
// and nothing is left posted.
inline void expectPeerDeathFailsTheOp(int n, ftcclDataType_t type, size_t count,
                                      const std::vector<int>& roundsBefore, const OpFactory& make) {
  for (int victim = 0; victim < n; ++victim) {
    for (int rounds : roundsBefore) {
      sim::SimFabric fabric(n);
      std::vector<std::vector<uint8_t>> data;
      auto ops = makeInPlaceOps(fabric, type, count, make, data);
      for (int round = 0; round < rounds; ++round) {
        for (auto& op : ops) {
          bool done = false;
          ASSERT_TRUE(op->progress(&done).isOk());
          ASSERT_FALSE(done);
        }
        fabric.progress();
      }
      fabric.kill(victim);
      ops.erase(ops.begin() + victim);  // the dead rank's op is gone with it
      Status st = runAll(fabric, ops);
      EXPECT_EQ(st.code(), ftcclRemoteError)
          << "victim " << victim << " after " << rounds << " rounds: " << st.message();
      for (auto& op : ops) op->abort();
      EXPECT_EQ(fabric.pending(), 0u);
    }
  }
}

}  // namespace testing
}  // namespace ftccl
