// The AVX-512 (F, BW, DQ, VL) build of the kernels: this file is compiled with those
// flags and F16C (CMakeLists.txt), so only reduce.cc's dispatch may call it, on a CPU
// that has them all.
//
// fp16/bf16: 16 lanes at a time with the same float operations as the AVX2 kernels (mask
// registers instead of blend vectors); tails use masked loads and stores. Their
// conversions make them compute-bound, so twice the lanes nearly double them in cache
// (bench/reduce_kernels). The other types go to the AVX2 build: they are bound by
// memory, and the generic loops compiled for 512-bit vectors were 3-7% slower on float
// sums (256-bit AVX-512VL code: float max 20-36%).
//
// Nothing here may have external linkage but the two entry points (reduce_kernels.h
// says why; unit.reduce_isa_objects checks it): no inline function of another header
// but the intrinsics, no std:: template.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "reduce/half.h"  // kBf16CanonicalNaN only
#include "reduce/reduce_isa.h"
#include "reduce/reduce_kernels.h"

namespace ftccl {
namespace reduce_detail {
namespace avx512 {
namespace {

// As avx2's VSum..VMin: mask_blend(k, x, y) is k ? y : x.
struct WSum {
  static constexpr bool kInputNaN = false;
  static inline __m512 apply(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
};
struct WProd {
  static constexpr bool kInputNaN = false;
  static inline __m512 apply(__m512 a, __m512 b) { return _mm512_mul_ps(a, b); }
};
struct WMax {
  static constexpr bool kInputNaN = true;
  static inline __m512 apply(__m512 a, __m512 b) {
    const __m512 r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), b, a);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ), r, _mm512_and_ps(a, b));
  }
};
struct WMin {
  static constexpr bool kInputNaN = true;
  static inline __m512 apply(__m512 a, __m512 b) {
    const __m512 r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), b, a);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ), r, _mm512_or_ps(a, b));
  }
};

// 16 x 16-bit <-> 16 x float, as avx2's HalfConv and Bf16Conv.
struct HalfConv16 {
  static inline __m512 widen(__m256i h) { return _mm512_cvtph_ps(h); }
  static inline __m256i narrow(__m512 r, __mmask16 nanMask) {
    const __m512 qnan = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fc00000));  // -> 0x7e00
    nanMask |= _mm512_cmp_ps_mask(r, r, _CMP_UNORD_Q);
    return _mm512_cvtps_ph(_mm512_mask_blend_ps(nanMask, r, qnan), _MM_FROUND_TO_NEAREST_INT);
  }
};

struct Bf16Conv16 {
  static inline __m512 widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static inline __m256i narrow(__m512 r, __mmask16 nanMask) {
    nanMask |= _mm512_cmp_ps_mask(r, r, _CMP_UNORD_Q);
    const __m512i x = _mm512_castps_si512(r);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
    const __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb);
    __m512i h = _mm512_srli_epi32(_mm512_add_epi32(x, bias), 16);
    h = _mm512_mask_blend_epi32(nanMask, h, _mm512_set1_epi32(kBf16CanonicalNaN));
    return _mm512_cvtepi32_epi16(h);  // every lane <= 0xffff: truncation is exact
  }
};

template <typename C, typename V>
inline __m256i lowpStep16(__m256i ha, __m256i hb) {
  const __m512 a = C::widen(ha);
  const __m512 b = C::widen(hb);
  const __mmask16 inputNaN = V::kInputNaN ? _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q) : 0;
  return C::narrow(V::apply(a, b), inputNaN);
}

inline __m256i load16(const uint16_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
inline void store16(uint16_t* p, __m256i v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
}
inline __mmask16 tailMask(size_t rest) { return static_cast<__mmask16>((1u << rest) - 1); }

// Loads precede stores in every block, so dst == a or dst == b is fine. Masked-off
// lanes are neither read (no fault past the end) nor written.
template <typename C, typename V>
__attribute__((noinline)) void lowpLoop16(uint16_t* d, const uint16_t* a, const uint16_t* b,
                                          size_t n) {
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i a0 = load16(a + i), a1 = load16(a + i + 16);
    const __m256i b0 = load16(b + i), b1 = load16(b + i + 16);
    store16(d + i, lowpStep16<C, V>(a0, b0));
    store16(d + i + 16, lowpStep16<C, V>(a1, b1));
  }
  for (; i + 16 <= n; i += 16) store16(d + i, lowpStep16<C, V>(load16(a + i), load16(b + i)));
  if (i < n) {
    const __mmask16 m = tailMask(n - i);
    const __m256i r =
        lowpStep16<C, V>(_mm256_maskz_loadu_epi16(m, a + i), _mm256_maskz_loadu_epi16(m, b + i));
    _mm256_mask_storeu_epi16(d + i, m, r);
  }
}

template <typename C>
void reduceLowp16(void* dst, const void* a, const void* b, size_t n, ftcclRedOp_t op) {
  visitOp<WSum, WProd, WMax, WMin>(op, [&](auto v) {
    lowpLoop16<C, decltype(v)>(static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(a),
                               static_cast<const uint16_t*>(b), n);
  });
}

template <typename C>
void divideLowp16(uint16_t* p, size_t n, int divisor) {
  const __m512 d = _mm512_set1_ps(static_cast<float>(divisor));
  auto step = [d](__m256i h) { return C::narrow(_mm512_div_ps(C::widen(h), d), 0); };
  size_t i = 0;
  for (; i + 16 <= n; i += 16) store16(p + i, step(load16(p + i)));
  if (i < n) {
    const __mmask16 m = tailMask(n - i);
    _mm256_mask_storeu_epi16(p + i, m, step(_mm256_maskz_loadu_epi16(m, p + i)));
  }
}

}  // namespace

void reduce(void* dst, const void* a, const void* b, size_t count, ftcclDataType_t type,
            ftcclRedOp_t op) {
  switch (type) {
    case ftcclFloat16:
      reduceLowp16<HalfConv16>(dst, a, b, count, op);
      break;
    case ftcclBfloat16:
      reduceLowp16<Bf16Conv16>(dst, a, b, count, op);
      break;
    default:
      avx2::reduce(dst, a, b, count, type, op);
      break;
  }
}

void divideBy(void* data, size_t count, ftcclDataType_t type, int divisor) {
  switch (type) {
    case ftcclFloat16:
      divideLowp16<HalfConv16>(static_cast<uint16_t*>(data), count, divisor);
      break;
    case ftcclBfloat16:
      divideLowp16<Bf16Conv16>(static_cast<uint16_t*>(data), count, divisor);
      break;
    default:
      avx2::divideBy(data, count, type, divisor);
      break;
  }
}

}  // namespace avx512
}  // namespace reduce_detail
}  // namespace ftccl
