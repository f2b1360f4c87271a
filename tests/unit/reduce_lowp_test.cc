// fp16 and bf16 in the typed reduction kernels (src/reduce): the portable conversions of
// half.h against the reference and, on CPUs with F16C, against the hardware conversions;
// the fp16 kernels of every build against the reference on every bit pattern.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "reduce/half.h"
#include "reduce/reduce.h"
#include "reduce_reference.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define REDUCE_TEST_X86 1
#else
#define REDUCE_TEST_X86 0
#endif

namespace ftccl {
namespace reduce_test {
namespace {

// ---------------------------------------------------------------------------------
// fp16 conversions: the portable helpers against the reference and against F16C.

TEST(HalfConversion, HalfToFloatExhaustiveMatchesReference) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float got = ftccl::halfToFloat(static_cast<uint16_t>(h));
    const float want = refHalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << std::hex << h;
      ASSERT_NE(f32Bits(got) & 0x400000u, 0u) << std::hex << h;  // quiet
      ASSERT_EQ(f32Bits(got) >> 31, h >> 15) << std::hex << h;   // sign kept
    } else {
      ASSERT_EQ(f32Bits(got), f32Bits(want)) << std::hex << h;
    }
  }
}

// Floats worth checking: every half value and its midpoints to the next, +-1 ulp,
// plus random bit patterns.
std::vector<float> interestingFloats(size_t nRandom) {
  std::vector<float> v;
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const float x = refHalfToFloat(static_cast<uint16_t>(h));
    const double mid = (refHalfValue(h) + (h + 1 < 0x7c00 ? refHalfValue(h + 1) : 65536.0)) / 2;
    const float m = static_cast<float>(mid);  // exact: 12 significant bits
    for (float f : {x, m, std::nextafter(m, 0.0f), std::nextafter(m, 1e30f)}) {
      v.push_back(f);
      v.push_back(-f);
    }
  }
  std::mt19937_64 rng(4242);
  for (size_t i = 0; i < nRandom; ++i) v.push_back(f32FromBits(static_cast<uint32_t>(rng())));
  return v;
}

TEST(HalfConversion, FloatToHalfMatchesReference) {
  for (float f : interestingFloats(1 << 18)) {
    const uint16_t got = ftccl::floatToHalf(f);
    if (std::isnan(f)) {
      ASSERT_EQ(got & 0x7e00, 0x7e00) << std::hex << f32Bits(f);  // quiet NaN
      ASSERT_EQ(got >> 15, f32Bits(f) >> 31);
    } else {
      ASSERT_EQ(got, refFloatToHalf(f)) << std::hex << f32Bits(f);
    }
  }
}

TEST(Bf16Conversion, FloatToBf16MatchesReference) {
  std::mt19937_64 rng(777);
  for (int i = 0; i < (1 << 20); ++i) {
    uint32_t u = static_cast<uint32_t>(rng());
    if (i % 4 == 0) u = (u & 0xffff0000u) | 0x8000u;  // exact ties
    const float f = f32FromBits(u);
    const uint16_t got = ftccl::floatToBf16(f);
    if (std::isnan(f)) {
      ASSERT_EQ(got & 0x7fc0, 0x7fc0) << std::hex << u;
      ASSERT_EQ(got & 0x8000, (u >> 16) & 0x8000) << std::hex << u;
    } else {
      ASSERT_EQ(got, refFloatToBf16(f)) << std::hex << u;
    }
  }
  for (uint32_t h = 0; h < 0x10000; ++h)
    ASSERT_EQ(f32Bits(ftccl::bf16ToFloat(static_cast<uint16_t>(h))), h << 16);
}

#if REDUCE_TEST_X86
__attribute__((target("f16c"))) float hwHalfToFloat(uint16_t h) { return _cvtsh_ss(h); }
__attribute__((target("f16c"))) uint16_t hwFloatToHalf(float f) {
  return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}

TEST(HalfConversion, PortableMatchesF16CBitForBit) {
  if (!ftccl::reduce_detail::cpuHas(Isa::kAvx2)) GTEST_SKIP() << "no F16C/AVX2 on this CPU";
  for (uint32_t h = 0; h < 0x10000; ++h) {
    ASSERT_EQ(f32Bits(ftccl::halfToFloat(static_cast<uint16_t>(h))),
              f32Bits(hwHalfToFloat(static_cast<uint16_t>(h))))
        << std::hex << h;
  }
  for (float f : interestingFloats(1 << 20))
    ASSERT_EQ(ftccl::floatToHalf(f), hwFloatToHalf(f)) << std::hex << f32Bits(f);
}
#endif

// fp16 on arbitrary bit patterns against the reference, every build.
TEST(HalfKernels, BothBuildsMatchReferenceOnAllBitPatterns) {
  std::mt19937_64 rng(2718);
  const size_t n = 1 << 16;
  std::vector<uint16_t> a(n), b(n), d(n);
  for (const Impl& impl : impls()) {
    for (ftcclRedOp_t op : kAllOps) {
      for (size_t i = 0; i < n; ++i) {
        a[i] = static_cast<uint16_t>(i);  // every pattern once
        b[i] = (rng() % 2) ? static_cast<uint16_t>(rng()) : static_cast<uint16_t>(i ^ 0x8000);
      }
      impl.reduce(d.data(), a.data(), b.data(), n, ftcclFloat16, op);
      for (size_t i = 0; i < n; ++i)
        ASSERT_EQ(d[i], refHalfOp(op, a[i], b[i])) << impl.name << " " << ftccl::redOpName(op)
                                                   << std::hex << " a " << a[i] << " b " << b[i];
    }
    for (int divisor : {3, -7}) {
      std::vector<uint16_t> v(a);
      impl.divide(v.data(), n, ftcclFloat16, divisor);
      for (size_t i = 0; i < n; ++i) {
        const float r = refHalfToFloat(a[i]) / static_cast<float>(divisor);
        ASSERT_EQ(v[i], std::isnan(r) ? 0x7e00 : refFloatToHalf(r))
            << impl.name << std::hex << " " << a[i];
      }
    }
  }
}

}  // namespace
}  // namespace reduce_test
}  // namespace ftccl
