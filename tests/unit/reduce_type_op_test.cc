// The typed reduction kernels (src/reduce) against the reference of reduce_reference.h,
// bit for bit: every dtype x op on random and edge values, for every aliasing shape, odd
// counts and unaligned pointers; divideBy for every dtype; each through reduce() and
// every instruction-set build the CPU has.
#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "reduce/reduce.h"
#include "reduce_reference.h"

namespace ftccl {
namespace reduce_test {
namespace {

const size_t kCounts[] = {1,  2,  3,  7,  8,  9,   15,   16,   17,  31,
                          32, 33, 63, 64, 65, 127, 1000, 1001, 4099};

enum class Alias { kNone, kDstIsA, kDstIsB, kAll };
const char* aliasName(Alias a) {
  switch (a) {
    case Alias::kNone:
      return "distinct";
    case Alias::kDstIsA:
      return "dst==a";
    case Alias::kDstIsB:
      return "dst==b";
    case Alias::kAll:
      return "dst==a==b";
  }
  return "?";
}

// Runs `impl` in every aliasing shape and compares each element with refElem.
void checkReduce(const Impl& impl, ftcclDataType_t type, ftcclRedOp_t op, size_t count,
                 size_t offset, std::mt19937_64& rng) {
  const size_t size = dataTypeSize(type);
  Buffer a(count, size, offset), b(count, size, offset);
  for (size_t i = 0; i < count; ++i) {
    fillValue(type, rng, a.at(i));
    fillValue(type, rng, b.at(i));
  }
  for (Alias alias : {Alias::kNone, Alias::kDstIsA, Alias::kDstIsB, Alias::kAll}) {
    Buffer d(count, size, offset);
    const uint8_t* pa = a.data;
    const uint8_t* pb = b.data;
    switch (alias) {
      case Alias::kNone:
        std::memset(d.data, 0x5a, count * size);
        break;
      case Alias::kDstIsA:
        std::memcpy(d.data, a.data, count * size);
        pa = d.data;
        break;
      case Alias::kDstIsB:
        std::memcpy(d.data, b.data, count * size);
        pb = d.data;
        break;
      case Alias::kAll:
        std::memcpy(d.data, a.data, count * size);
        pa = pb = d.data;
        break;
    }
    impl.reduce(d.data, pa, pb, count, type, op);
    ASSERT_TRUE(d.guardsIntact()) << impl.name << " " << aliasName(alias) << " count " << count;
    std::vector<uint8_t> want(size);
    for (size_t i = 0; i < count; ++i) {
      refElem(type, op, a.at(i), alias == Alias::kAll ? a.at(i) : b.at(i), want.data());
      ASSERT_TRUE(sameElem(type, want.data(), d.at(i)))
          << impl.name << " " << ftccl::dataTypeName(type) << " " << ftccl::redOpName(op) << " "
          << aliasName(alias) << " count " << count << " offset " << offset << " at " << i;
    }
  }
}

// ---------------------------------------------------------------------------------
// Every dtype x op against the reference.

class ReduceTypeOp : public ::testing::TestWithParam<std::tuple<ftcclDataType_t, ftcclRedOp_t>> {};

TEST_P(ReduceTypeOp, MatchesReferenceForAllShapes) {
  const ftcclDataType_t type = std::get<0>(GetParam());
  const ftcclRedOp_t op = std::get<1>(GetParam());
  for (const Impl& impl : impls()) {
    std::mt19937_64 rng(1234 + 17 * type + op);
    for (size_t count : kCounts) {
      for (size_t offset : {0, 1}) {
        checkReduce(impl, type, op, count, offset, rng);
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST_P(ReduceTypeOp, EdgeValuesAllPairs) {
  const ftcclDataType_t type = std::get<0>(GetParam());
  const ftcclRedOp_t op = std::get<1>(GetParam());
  const size_t size = dataTypeSize(type);
  const std::vector<uint64_t> edges = edgeBits(type);
  const size_t n = edges.size() * edges.size();
  std::vector<uint8_t> a(n * size), b(n * size), d(n * size), want(size);
  for (size_t i = 0; i < edges.size(); ++i) {
    for (size_t j = 0; j < edges.size(); ++j) {
      std::memcpy(&a[(i * edges.size() + j) * size], &edges[i], size);
      std::memcpy(&b[(i * edges.size() + j) * size], &edges[j], size);
    }
  }
  for (const Impl& impl : impls()) {
    impl.reduce(d.data(), a.data(), b.data(), n, type, op);
    for (size_t k = 0; k < n; ++k) {
      refElem(type, op, &a[k * size], &b[k * size], want.data());
      ASSERT_TRUE(sameElem(type, want.data(), &d[k * size]))
          << impl.name << " " << ftccl::dataTypeName(type) << " " << ftccl::redOpName(op)
          << " pair " << k;
    }
  }
}

TEST_P(ReduceTypeOp, CountZeroTouchesNothing) {
  const ftcclDataType_t type = std::get<0>(GetParam());
  const ftcclRedOp_t op = std::get<1>(GetParam());
  uint8_t buf[16];
  std::memset(buf, 0x77, sizeof buf);
  for (const Impl& impl : impls()) {
    impl.reduce(buf, buf, buf, 0, type, op);
    impl.reduce(nullptr, nullptr, nullptr, 0, type, op);
  }
  for (uint8_t c : buf) EXPECT_EQ(c, 0x77);
}

INSTANTIATE_TEST_SUITE_P(AllTypesOps, ReduceTypeOp,
                         ::testing::Combine(::testing::ValuesIn(kAllTypes),
                                            ::testing::ValuesIn(kAllOps)),
                         [](const ::testing::TestParamInfo<ReduceTypeOp::ParamType>& info) {
                           return std::string(ftccl::dataTypeName(std::get<0>(info.param))) + "_" +
                                  ftccl::redOpName(std::get<1>(info.param));
                         });

// ---------------------------------------------------------------------------------
// divideBy for every dtype against the reference.

class DivideType : public ::testing::TestWithParam<ftcclDataType_t> {};

TEST_P(DivideType, MatchesReference) {
  const ftcclDataType_t type = GetParam();
  const size_t size = dataTypeSize(type);
  std::mt19937_64 rng(99 + type);
  const int divisors[] = {1, 2, 3, 4, 7, 8, 255, 256, 1000, -1, -2, -3, INT_MAX, INT_MIN};
  for (const Impl& impl : impls()) {
    for (int divisor : divisors) {
      for (size_t count : {size_t{1}, size_t{7}, size_t{16}, size_t{33}, size_t{1001}}) {
        for (size_t offset : {0, 1}) {
          Buffer in(count, size, offset), d(count, size, offset);
          for (size_t i = 0; i < count; ++i) fillValue(type, rng, in.at(i));
          std::memcpy(d.data, in.data, count * size);
          impl.divide(d.data, count, type, divisor);
          ASSERT_TRUE(d.guardsIntact());
          std::vector<uint8_t> want(size);
          for (size_t i = 0; i < count; ++i) {
            refDivElem(type, in.at(i), divisor, want.data());
            ASSERT_TRUE(sameElem(type, want.data(), d.at(i)))
                << impl.name << " " << ftccl::dataTypeName(type) << " / " << divisor << " count "
                << count << " offset " << offset << " at " << i;
          }
        }
      }
    }
  }
}

TEST_P(DivideType, EdgeValues) {
  const ftcclDataType_t type = GetParam();
  const size_t size = dataTypeSize(type);
  const std::vector<uint64_t> edges = edgeBits(type);
  for (const Impl& impl : impls()) {
    for (int divisor : {1, 2, 3, -1, -2, 6, INT_MIN, INT_MAX}) {
      std::vector<uint8_t> d(edges.size() * size), want(size);
      for (size_t i = 0; i < edges.size(); ++i) std::memcpy(&d[i * size], &edges[i], size);
      impl.divide(d.data(), edges.size(), type, divisor);
      for (size_t i = 0; i < edges.size(); ++i) {
        refDivElem(type, reinterpret_cast<const uint8_t*>(&edges[i]), divisor, want.data());
        ASSERT_TRUE(sameElem(type, want.data(), &d[i * size]))
            << impl.name << " " << ftccl::dataTypeName(type) << " edge " << i << " / " << divisor;
      }
    }
  }
}

TEST_P(DivideType, CountZeroAndDivisorZeroAreNoOps) {
  const ftcclDataType_t type = GetParam();
  uint8_t buf[32];
  std::memset(buf, 0x3c, sizeof buf);
  for (const Impl& impl : impls()) {
    impl.divide(buf, 0, type, 3);
    impl.divide(nullptr, 0, type, 3);
    impl.divide(buf, 2, type, 0);
  }
  for (uint8_t c : buf) EXPECT_EQ(c, 0x3c);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, DivideType, ::testing::ValuesIn(kAllTypes),
                         [](const ::testing::TestParamInfo<ftcclDataType_t>& info) {
                           return std::string(ftccl::dataTypeName(info.param));
                         });

}  // namespace
}  // namespace reduce_test
}  // namespace ftccl
