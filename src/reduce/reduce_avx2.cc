// The AVX2 (+F16C) build of the kernels: this file is compiled with -mavx2 -mf16c
// (CMakeLists.txt), so only reduce.cc's dispatch may call it, on a CPU that has both.
//
// The generic loops of reduce_kernels.h compiled for AVX2; fp16 (F16C conversions) and
// bf16 (integer rounding) hand-vectorised 8 lanes at a time with the same float
// operations, NaN results canonical, rounding to nearest-even. Every result is fully
// determined by IEEE arithmetic on the inputs (NaN payloads of fp16/bf16 are canonical),
// so the baseline and AVX2 builds give the same bits; the unit tests check it. Integer
// division has no SIMD form: it goes to the baseline build.
//
// Nothing here may have external linkage but the two entry points (reduce_kernels.h
// says why; unit.reduce_isa_objects checks it): no inline function of another header
// but the intrinsics, no std:: template.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "reduce/half.h"  // kBf16CanonicalNaN only
#include "reduce/reduce_isa.h"
#include "reduce/reduce_kernels.h"

namespace ftccl {
namespace reduce_detail {
namespace avx2 {
namespace {

// kInputNaN: whether a NaN input can give a non-NaN lane (then the caller masks it).
struct VSum {
  static constexpr bool kInputNaN = false;
  static inline __m256 apply(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
};
struct VProd {
  static constexpr bool kInputNaN = false;
  static inline __m256 apply(__m256 a, __m256 b) { return _mm256_mul_ps(a, b); }
};
struct VMax {
  static constexpr bool kInputNaN = true;
  static inline __m256 apply(__m256 a, __m256 b) {
    __m256 r = _mm256_blendv_ps(b, a, _mm256_cmp_ps(a, b, _CMP_GT_OQ));
    return _mm256_blendv_ps(r, _mm256_and_ps(a, b), _mm256_cmp_ps(a, b, _CMP_EQ_OQ));
  }
};
struct VMin {
  static constexpr bool kInputNaN = true;
  static inline __m256 apply(__m256 a, __m256 b) {
    __m256 r = _mm256_blendv_ps(b, a, _mm256_cmp_ps(a, b, _CMP_LT_OQ));
    return _mm256_blendv_ps(r, _mm256_or_ps(a, b), _mm256_cmp_ps(a, b, _CMP_EQ_OQ));
  }
};

// 8 x 16-bit <-> 8 x float. narrow() rounds to nearest-even and writes the canonical
// NaN in the lanes of nanMask and in every lane whose result is NaN.
struct HalfConv {
  static inline __m256 widen(__m128i h) { return _mm256_cvtph_ps(h); }
  static inline __m128i narrow(__m256 r, __m256 nanMask) {
    const __m256 qnan = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fc00000));  // -> 0x7e00
    nanMask = _mm256_or_ps(nanMask, _mm256_cmp_ps(r, r, _CMP_UNORD_Q));
    return _mm256_cvtps_ph(_mm256_blendv_ps(r, qnan, nanMask), _MM_FROUND_TO_NEAREST_INT);
  }
};

struct Bf16Conv {
  static inline __m256 widen(__m128i h) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static inline __m128i narrow(__m256 r, __m256 nanMask) {
    nanMask = _mm256_or_ps(nanMask, _mm256_cmp_ps(r, r, _CMP_UNORD_Q));
    const __m256i x = _mm256_castps_si256(r);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
    const __m256i bias = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb);
    __m256i h = _mm256_srli_epi32(_mm256_add_epi32(x, bias), 16);
    h = _mm256_blendv_epi8(h, _mm256_set1_epi32(kBf16CanonicalNaN), _mm256_castps_si256(nanMask));
    // Pack the 8 x 32-bit lanes (all <= 0xffff) to 16 bits: packus works per 128-bit half,
    // so gather quadwords 0 and 2.
    const __m256i packed = _mm256_packus_epi32(h, h);
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
  }
};

template <typename C, typename V>
inline __m128i lowpStep(__m128i ha, __m128i hb) {
  const __m256 a = C::widen(ha);
  const __m256 b = C::widen(hb);
  const __m256 inputNaN = V::kInputNaN ? _mm256_cmp_ps(a, b, _CMP_UNORD_Q) : _mm256_setzero_ps();
  return C::narrow(V::apply(a, b), inputNaN);
}

inline __m128i load8(const uint16_t* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}
inline void store8(uint16_t* p, __m128i v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); }

// fp16/bf16 reduce, 8 lanes at a time. Each block is loaded before it is stored, so
// dst == a or dst == b is fine.
template <typename C, typename V>
__attribute__((noinline)) void lowpLoop(uint16_t* d, const uint16_t* a, const uint16_t* b,
                                        size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i a0 = load8(a + i), a1 = load8(a + i + 8);
    const __m128i b0 = load8(b + i), b1 = load8(b + i + 8);
    store8(d + i, lowpStep<C, V>(a0, b0));
    store8(d + i + 8, lowpStep<C, V>(a1, b1));
  }
  for (; i + 8 <= n; i += 8) store8(d + i, lowpStep<C, V>(load8(a + i), load8(b + i)));
  if (i < n) {  // tail through zero-padded stack copies
    uint16_t ta[8] = {}, tb[8] = {}, td[8];
    const size_t rest = n - i;
    std::memcpy(ta, a + i, rest * sizeof(uint16_t));
    std::memcpy(tb, b + i, rest * sizeof(uint16_t));
    store8(td, lowpStep<C, V>(load8(ta), load8(tb)));
    std::memcpy(d + i, td, rest * sizeof(uint16_t));
  }
}

template <typename C>
inline __m128i lowpDivStep(__m128i h, __m256 d) {
  return C::narrow(_mm256_div_ps(C::widen(h), d), _mm256_setzero_ps());
}

template <typename C>
void divideLowp8(uint16_t* p, size_t n, int divisor) {
  const __m256 d = _mm256_set1_ps(static_cast<float>(divisor));
  size_t i = 0;
  for (; i + 8 <= n; i += 8) store8(p + i, lowpDivStep<C>(load8(p + i), d));
  if (i < n) {
    uint16_t t[8] = {};
    const size_t rest = n - i;
    std::memcpy(t, p + i, rest * sizeof(uint16_t));
    store8(t, lowpDivStep<C>(load8(t), d));
    std::memcpy(p + i, t, rest * sizeof(uint16_t));
  }
}

// The build (see reduce_kernels.h for its shape).
struct Build : Loops<Build> {
  template <bool kBf16>
  static void reduceLowp(void* dst, const void* a, const void* b, size_t n, ftcclRedOp_t op) {
    using C = std::conditional_t<kBf16, Bf16Conv, HalfConv>;
    visitOp<VSum, VProd, VMax, VMin>(op, [&](auto v) {
      lowpLoop<C, decltype(v)>(static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(a),
                               static_cast<const uint16_t*>(b), n);
    });
  }

  template <bool kBf16>
  static void divideLowp(uint16_t* p, size_t n, int divisor) {
    divideLowp8<std::conditional_t<kBf16, Bf16Conv, HalfConv>>(p, n, divisor);
  }

  static void divideInteger(void* data, size_t n, ftcclDataType_t type, int divisor) {
    baseline::divideBy(data, n, type, divisor);
  }
};

}  // namespace

void reduce(void* dst, const void* a, const void* b, size_t count, ftcclDataType_t type,
            ftcclRedOp_t op) {
  reduceByType<Build>(dst, a, b, count, type, op);
}

void divideBy(void* data, size_t count, ftcclDataType_t type, int divisor) {
  divideByType<Build>(data, count, type, divisor);
}

}  // namespace avx2
}  // namespace reduce_detail
}  // namespace ftccl
