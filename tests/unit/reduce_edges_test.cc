// Hand-written expectations for the typed reduction kernels (src/reduce): the edge
// semantics (wrap-around, INT_MIN/-1, rounding ties, NaN, -0) pinned down without the
// reference, through reduce() and divideBy(); and copyStreaming at every alignment.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "reduce/half.h"
#include "reduce/reduce.h"
#include "reduce_reference.h"

namespace ftccl {
namespace reduce_test {
namespace {

template <typename T>
T reduce1(T a, T b, ftcclDataType_t type, ftcclRedOp_t op) {
  T d;
  ftccl::reduce(&d, &a, &b, 1, type, op);
  return d;
}
template <typename T>
T divide1(T v, ftcclDataType_t type, int divisor) {
  ftccl::divideBy(&v, 1, type, divisor);
  return v;
}

TEST(ReduceNames, NccltestsNamesSizesAndValidity) {
  const char* names[] = {"int8",   "uint8", "int32", "uint32", "int64",
                         "uint64", "half",  "float", "double", "bfloat16"};
  const size_t sizes[] = {1, 1, 4, 4, 8, 8, 2, 4, 8, 2};
  for (int t = 0; t < ftcclNumTypes; ++t) {
    EXPECT_STREQ(ftccl::dataTypeName(static_cast<ftcclDataType_t>(t)), names[t]);
    EXPECT_EQ(ftccl::dataTypeSize(static_cast<ftcclDataType_t>(t)), sizes[t]);
    EXPECT_TRUE(ftccl::isValidDataType(t));
  }
  const char* ops[] = {"sum", "prod", "max", "min", "avg"};
  for (int o = 0; o < ftcclNumOps; ++o) {
    EXPECT_STREQ(ftccl::redOpName(static_cast<ftcclRedOp_t>(o)), ops[o]);
    EXPECT_TRUE(ftccl::isValidRedOp(o));
  }
  EXPECT_FALSE(ftccl::isValidDataType(-1));
  EXPECT_FALSE(ftccl::isValidDataType(ftcclNumTypes));
  EXPECT_FALSE(ftccl::isValidRedOp(-1));
  EXPECT_FALSE(ftccl::isValidRedOp(ftcclNumOps));
  EXPECT_EQ(ftccl::dataTypeSize(static_cast<ftcclDataType_t>(ftcclNumTypes)), 0u);
  EXPECT_NE(ftccl::dataTypeName(static_cast<ftcclDataType_t>(-1)), nullptr);
  EXPECT_NE(ftccl::redOpName(static_cast<ftcclRedOp_t>(ftcclNumOps)), nullptr);
}

TEST(ReduceEdges, InvalidTypeOrOpLeavesDstAlone) {
  int32_t a = 5, b = 6, d = 77;
  ftccl::reduce(&d, &a, &b, 1, static_cast<ftcclDataType_t>(ftcclNumTypes), ftcclSum);
  EXPECT_EQ(d, 77);
  ftccl::reduce(&d, &a, &b, 1, ftcclInt32, static_cast<ftcclRedOp_t>(ftcclNumOps));
  EXPECT_EQ(d, 77);
}

TEST(ReduceEdges, IntegersWrap) {
  EXPECT_EQ(reduce1<int8_t>(127, 1, ftcclInt8, ftcclSum), -128);
  EXPECT_EQ(reduce1<int8_t>(-128, -1, ftcclInt8, ftcclSum), 127);
  EXPECT_EQ(reduce1<int8_t>(16, 16, ftcclInt8, ftcclProd), 0);
  EXPECT_EQ(reduce1<int8_t>(-128, -1, ftcclInt8, ftcclProd), -128);
  EXPECT_EQ(reduce1<int8_t>(-128, 127, ftcclInt8, ftcclMax), 127);
  EXPECT_EQ(reduce1<int8_t>(-128, 127, ftcclInt8, ftcclMin), -128);
  EXPECT_EQ(reduce1<uint8_t>(255, 1, ftcclUint8, ftcclSum), 0);
  EXPECT_EQ(reduce1<uint8_t>(255, 255, ftcclUint8, ftcclProd), 1);
  EXPECT_EQ(reduce1<uint8_t>(0x80, 0x7f, ftcclUint8, ftcclMax), 0x80);
  EXPECT_EQ(reduce1<int32_t>(INT32_MAX, 1, ftcclInt32, ftcclAvg), INT32_MIN);
  EXPECT_EQ(reduce1<int32_t>(INT32_MIN, -1, ftcclInt32, ftcclProd), INT32_MIN);
  EXPECT_EQ(reduce1<int32_t>(65536, 65536, ftcclInt32, ftcclProd), 0);
  EXPECT_EQ(reduce1<int32_t>(-1, 0, ftcclInt32, ftcclMax), 0);
  EXPECT_EQ(reduce1<uint32_t>(0xffffffffu, 2, ftcclUint32, ftcclSum), 1u);
  EXPECT_EQ(reduce1<uint32_t>(0xffffffffu, 0xffffffffu, ftcclUint32, ftcclProd), 1u);
  EXPECT_EQ(reduce1<uint32_t>(0x80000000u, 1, ftcclUint32, ftcclMin), 1u);
  EXPECT_EQ(reduce1<int64_t>(INT64_MAX, 1, ftcclInt64, ftcclSum), INT64_MIN);
  EXPECT_EQ(reduce1<int64_t>(INT64_MIN, -1, ftcclInt64, ftcclProd), INT64_MIN);
  EXPECT_EQ(reduce1<int64_t>(int64_t{1} << 32, int64_t{1} << 32, ftcclInt64, ftcclProd), 0);
  EXPECT_EQ(reduce1<int64_t>(INT64_MIN, INT64_MAX, ftcclInt64, ftcclMax), INT64_MAX);
  EXPECT_EQ(reduce1<int64_t>(INT64_MIN, INT64_MAX, ftcclInt64, ftcclMin), INT64_MIN);
  EXPECT_EQ(reduce1<uint64_t>(~uint64_t{0}, 1, ftcclUint64, ftcclSum), 0u);
  EXPECT_EQ(reduce1<uint64_t>(~uint64_t{0}, ~uint64_t{0}, ftcclUint64, ftcclProd), 1u);
  EXPECT_EQ(reduce1<uint64_t>(uint64_t{1} << 63, 1, ftcclUint64, ftcclMax), uint64_t{1} << 63);
}

TEST(ReduceEdges, IntegerDivideTruncatesTowardZeroAndWraps) {
  EXPECT_EQ(divide1<int8_t>(-7, ftcclInt8, 2), -3);
  EXPECT_EQ(divide1<int8_t>(7, ftcclInt8, -2), -3);
  EXPECT_EQ(divide1<int8_t>(-7, ftcclInt8, -2), 3);
  EXPECT_EQ(divide1<int8_t>(-128, ftcclInt8, -1), -128);  // 128 wraps
  EXPECT_EQ(divide1<int8_t>(-128, ftcclInt8, 256), 0);
  EXPECT_EQ(divide1<uint8_t>(255, ftcclUint8, 2), 127);
  EXPECT_EQ(divide1<uint8_t>(255, ftcclUint8, 256), 0);  // divisor not truncated to 0
  EXPECT_EQ(divide1<int32_t>(INT32_MIN, ftcclInt32, -1), INT32_MIN);
  EXPECT_EQ(divide1<int32_t>(INT32_MIN, ftcclInt32, INT32_MIN), 1);
  EXPECT_EQ(divide1<int32_t>(-5, ftcclInt32, 4), -1);
  EXPECT_EQ(divide1<int32_t>(INT32_MAX, ftcclInt32, 1), INT32_MAX);
  EXPECT_EQ(divide1<uint32_t>(0xffffffffu, ftcclUint32, 3), 0x55555555u);
  EXPECT_EQ(divide1<int64_t>(INT64_MIN, ftcclInt64, -1), INT64_MIN);
  EXPECT_EQ(divide1<int64_t>(INT64_MIN, ftcclInt64, INT32_MIN), int64_t{1} << 32);
  EXPECT_EQ(divide1<int64_t>(-9, ftcclInt64, 4), -2);
  EXPECT_EQ(divide1<uint64_t>(~uint64_t{0}, ftcclUint64, 3), 0x5555555555555555u);
  // Wrapped sums first, then the divide: Avg of {INT32_MAX, 1} over 2 ranks.
  int32_t a = INT32_MAX, b = 1, d;
  ftccl::reduce(&d, &a, &b, 1, ftcclInt32, ftcclAvg);
  ftccl::divideBy(&d, 1, ftcclInt32, 2);
  EXPECT_EQ(d, INT32_MIN / 2);
}

TEST(ReduceEdges, FloatMaxMinSignedZeroAndNaN) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (ftcclDataType_t t : {ftcclFloat32}) {
    EXPECT_EQ(f32Bits(reduce1(-0.0f, 0.0f, t, ftcclMax)), f32Bits(0.0f));
    EXPECT_EQ(f32Bits(reduce1(0.0f, -0.0f, t, ftcclMax)), f32Bits(0.0f));
    EXPECT_EQ(f32Bits(reduce1(-0.0f, 0.0f, t, ftcclMin)), f32Bits(-0.0f));
    EXPECT_EQ(f32Bits(reduce1(0.0f, -0.0f, t, ftcclMin)), f32Bits(-0.0f));
    EXPECT_EQ(f32Bits(reduce1(-0.0f, -0.0f, t, ftcclMax)), f32Bits(-0.0f));
    EXPECT_TRUE(std::isnan(reduce1(nan, 1.0f, t, ftcclMax)));
    EXPECT_TRUE(std::isnan(reduce1(1.0f, nan, t, ftcclMax)));
    EXPECT_TRUE(std::isnan(reduce1(nan, -inf, t, ftcclMin)));
    EXPECT_TRUE(std::isnan(reduce1(inf, nan, t, ftcclMin)));
    EXPECT_TRUE(std::isnan(reduce1(inf, -inf, t, ftcclSum)));
    EXPECT_TRUE(std::isnan(reduce1(0.0f, inf, t, ftcclProd)));
    EXPECT_EQ(reduce1(-inf, 3.0f, t, ftcclMax), 3.0f);
    EXPECT_EQ(reduce1(-inf, 3.0f, t, ftcclMin), -inf);
    EXPECT_EQ(reduce1(3.0e38f, 3.0e38f, t, ftcclSum), inf);
    const float sNaN = f32FromBits(0x7f800001);
    EXPECT_NE(f32Bits(reduce1(sNaN, 1.0f, t, ftcclMax)) & 0x400000u, 0u);  // quieted
    EXPECT_NE(f32Bits(reduce1(1.0f, sNaN, t, ftcclMin)) & 0x400000u, 0u);
  }
  const double dnan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(f64Bits(reduce1(-0.0, 0.0, ftcclFloat64, ftcclMax)), f64Bits(0.0));
  EXPECT_EQ(f64Bits(reduce1(0.0, -0.0, ftcclFloat64, ftcclMin)), f64Bits(-0.0));
  EXPECT_TRUE(std::isnan(reduce1(dnan, 1.0, ftcclFloat64, ftcclMax)));
  EXPECT_TRUE(std::isnan(reduce1(1.0, dnan, ftcclFloat64, ftcclMin)));
  EXPECT_EQ(reduce1(4.9e-324, 4.9e-324, ftcclFloat64, ftcclSum), 9.9e-324);  // subnormals
}

uint16_t halfOp(uint16_t a, uint16_t b, ftcclRedOp_t op) {
  return reduce1<uint16_t>(a, b, ftcclFloat16, op);
}
uint16_t bf16Op(uint16_t a, uint16_t b, ftcclRedOp_t op) {
  return reduce1<uint16_t>(a, b, ftcclBfloat16, op);
}

TEST(ReduceEdges, HalfRoundingTiesOverflowSubnormalsNaN) {
  EXPECT_EQ(halfOp(0x3c00, 0x3c00, ftcclSum), 0x4000);  // 1 + 1 = 2
  EXPECT_EQ(halfOp(0x3c00, 0x1000, ftcclSum), 0x3c00);  // 1 + 2^-11: tie -> even (down)
  EXPECT_EQ(halfOp(0x3c01, 0x1000, ftcclSum), 0x3c02);  // tie -> even (up)
  EXPECT_EQ(halfOp(0x3c00, 0x1001, ftcclSum), 0x3c01);  // just above the tie
  EXPECT_EQ(halfOp(0x7bff, 0x4c00, ftcclSum), 0x7c00);  // 65504 + 16 = 65520: tie -> inf
  EXPECT_EQ(halfOp(0x7bff, 0x4800, ftcclSum), 0x7bff);  // 65504 + 8 -> 65504
  EXPECT_EQ(halfOp(0x7bff, 0x7bff, ftcclSum), 0x7c00);  // overflow
  EXPECT_EQ(halfOp(0xfbff, 0xfbff, ftcclAvg), 0xfc00);
  EXPECT_EQ(halfOp(0x0001, 0x0001, ftcclSum), 0x0002);   // subnormals
  EXPECT_EQ(halfOp(0x03ff, 0x0001, ftcclSum), 0x0400);   // to the smallest normal
  EXPECT_EQ(halfOp(0x0001, 0x3800, ftcclProd), 0x0000);  // 2^-25: tie -> 0
  EXPECT_EQ(halfOp(0x0003, 0x3800, ftcclProd), 0x0002);  // 1.5 * 2^-24: tie -> 2
  EXPECT_EQ(halfOp(0x8001, 0x3800, ftcclProd), 0x8000);  // -0 kept
  EXPECT_EQ(halfOp(0x8000, 0x8000, ftcclSum), 0x8000);
  EXPECT_EQ(halfOp(0x0000, 0x8000, ftcclMax), 0x0000);
  EXPECT_EQ(halfOp(0x8000, 0x0000, ftcclMax), 0x0000);
  EXPECT_EQ(halfOp(0x0000, 0x8000, ftcclMin), 0x8000);
  EXPECT_EQ(halfOp(0x8000, 0x0000, ftcclMin), 0x8000);
  EXPECT_EQ(halfOp(0x7c01, 0x3c00, ftcclSum), 0x7e00);  // sNaN -> canonical quiet NaN
  EXPECT_EQ(halfOp(0x3c00, 0xfe12, ftcclMax), 0x7e00);
  EXPECT_EQ(halfOp(0xfe12, 0x3c00, ftcclMin), 0x7e00);
  EXPECT_EQ(halfOp(0x7e00, 0xfc00, ftcclMin), 0x7e00);
  EXPECT_EQ(halfOp(0x7c00, 0xfc00, ftcclSum), 0x7e00);  // inf - inf
  EXPECT_EQ(halfOp(0x7c00, 0x3c00, ftcclMax), 0x7c00);
  EXPECT_EQ(halfOp(0xfc00, 0x3c00, ftcclMin), 0xfc00);
  uint16_t v[3] = {0x3c00, 0x3e00, 0x7e00};  // 1, 1.5, NaN
  ftccl::divideBy(v, 3, ftcclFloat16, 3);
  EXPECT_EQ(v[0], 0x3555);  // 1/3 rounded once
  EXPECT_EQ(v[1], 0x3800);
  EXPECT_EQ(v[2], 0x7e00);
}

TEST(ReduceEdges, Bf16RoundingTiesOverflowNaN) {
  EXPECT_EQ(bf16Op(0x3f80, 0x3f80, ftcclSum), 0x4000);
  EXPECT_EQ(bf16Op(0x3f80, 0x3b80, ftcclSum), 0x3f80);  // 1 + 2^-8: tie -> even (down)
  EXPECT_EQ(bf16Op(0x3f81, 0x3b80, ftcclSum), 0x3f82);  // tie -> even (up)
  EXPECT_EQ(bf16Op(0x7f7f, 0x7f7f, ftcclSum), 0x7f80);  // overflow -> inf
  EXPECT_EQ(bf16Op(0xff7f, 0xff7f, ftcclSum), 0xff80);
  EXPECT_EQ(bf16Op(0x0001, 0x0001, ftcclSum), 0x0002);   // subnormals
  EXPECT_EQ(bf16Op(0x7fff, 0x3f80, ftcclProd), 0x7fc0);  // NaN stays NaN, no carry to inf
  EXPECT_EQ(bf16Op(0xffff, 0x3f80, ftcclSum), 0x7fc0);
  EXPECT_EQ(bf16Op(0x7f81, 0x3f80, ftcclMax), 0x7fc0);  // sNaN
  EXPECT_EQ(bf16Op(0x3f80, 0x7f81, ftcclMin), 0x7fc0);
  EXPECT_EQ(bf16Op(0x8000, 0x0000, ftcclMax), 0x0000);
  EXPECT_EQ(bf16Op(0x0000, 0x8000, ftcclMin), 0x8000);
  EXPECT_EQ(bf16Op(0x7f80, 0xff80, ftcclSum), 0x7fc0);
  // The conversion helper itself: NaN never rounds into inf or across the sign.
  EXPECT_EQ(ftccl::floatToBf16(f32FromBits(0x7fffffff)), 0x7fff);
  EXPECT_EQ(ftccl::floatToBf16(f32FromBits(0x7f808000)), 0x7fc0);
  EXPECT_EQ(ftccl::floatToBf16(f32FromBits(0x7f7fffff)), 0x7f80);
  EXPECT_EQ(ftccl::floatToBf16(f32FromBits(0x3f808000)), 0x3f80);
  EXPECT_EQ(ftccl::floatToBf16(f32FromBits(0x3f818000)), 0x3f82);
  uint16_t v[2] = {0x3f80, 0x7fc0};
  ftccl::divideBy(v, 2, ftcclBfloat16, 3);
  EXPECT_EQ(v[0], 0x3eab);  // 1/3
  EXPECT_EQ(v[1], 0x7fc0);
}

TEST(ReduceEdges, FloatSumIsPlainIeeeAdd) {
  // The hot path: every element, many counts, both offsets, against a + b.
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<float> dist(-1e3f, 1e3f);
  for (size_t n : {size_t{1}, size_t{5}, size_t{64}, size_t{1 << 16}}) {
    std::vector<float> a(n + 1), b(n + 1), d(n + 1);
    for (size_t i = 0; i <= n; ++i) {
      a[i] = dist(rng);
      b[i] = dist(rng);
    }
    ftccl::reduce(d.data() + 1, a.data() + 1, b.data() + 1, n, ftcclFloat32, ftcclSum);
    for (size_t i = 1; i <= n; ++i) ASSERT_EQ(f32Bits(d[i]), f32Bits(a[i] + b[i])) << i;
  }
}

// Every destination and source offset in a line, sizes around the 16-byte stores and
// the 64-byte rounds: exactly the bytes asked for, none around them.
TEST(CopyStreaming, EveryAlignmentAndSize) {
  std::vector<uint8_t> src(4096 + 128), dst(4096 + 128);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 7 + 3);
  for (size_t bytes : {0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 200, 1000, 4096}) {
    for (size_t to = 0; to < 64; to += 5) {
      for (size_t from = 0; from < 64; from += 9) {
        std::fill(dst.begin(), dst.end(), 0xee);
        ftccl::copyStreaming(dst.data() + to, src.data() + from, bytes);
        for (size_t i = 0; i < dst.size(); ++i) {
          const bool inside = i >= to && i < to + bytes;
          ASSERT_EQ(dst[i], inside ? src[from + i - to] : 0xee)
              << "byte " << i << " of a copy of " << bytes << " from +" << from << " to +" << to;
        }
      }
    }
  }
}

}  // namespace
}  // namespace reduce_test
}  // namespace ftccl
