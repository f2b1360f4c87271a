// Typed element-wise reduction kernels (see reduce.h for the contract).
//
// Layout of this file:
//   * element operations (Sum/Prod/Max/Min per C++ type, fp16/bf16 wrappers);
//   * four loop shapes (dst distinct, dst==a, dst==b, dst==a==b) written so that the
//     pointers that are used never alias, which lets GCC -O3 vectorise them;
//   * every loop built for the baseline ISA and for AVX2, fp16 (F16C) and bf16 also
//     hand-vectorised for AVX2 and AVX-512; the widest the CPU has is chosen at run
//     time, and all builds are bit-identical;
//   * type/op dispatch. divideBy with divisor 0 leaves the data unchanged.
//
// fp16/bf16 results that are NaN are written as the canonical quiet NaN (0x7e00 /
// 0x7fc0): which input NaN an IEEE operation returns is up to the compiler (it may
// swap the operands of a commutative op), so canonicalising is what makes the result
// depend only on the inputs, whichever path, compiler or CPU computes it.
#include "reduce/reduce.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <type_traits>

#include "reduce/half.h"

#if defined(__x86_64__) || defined(__i386__)
#define FTCCL_REDUCE_X86 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define FTCCL_REDUCE_X86 0
#endif

namespace ftccl {

namespace {

// ---------------------------------------------------------------------------------
// Element operations.

template <typename T>
using Unsigned = std::make_unsigned_t<T>;
// Arithmetic type in which U wraps without promotion to (signed) int.
template <typename U>
using WrapT = decltype(U() + 0u);

template <typename F>
struct FloatBitsOf;
template <>
struct FloatBitsOf<float> {
  using type = uint32_t;
};
template <>
struct FloatBitsOf<double> {
  using type = uint64_t;
};

template <typename F>
inline typename FloatBitsOf<F>::type toBits(F f) {
  typename FloatBitsOf<F>::type u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
template <typename F>
inline F fromBits(typename FloatBitsOf<F>::type u) {
  F f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

struct OpSum {
  template <typename T>
  static inline T apply(T a, T b) {
    if constexpr (std::is_integral_v<T>) {
      using W = WrapT<Unsigned<T>>;
      return static_cast<T>(static_cast<Unsigned<T>>(W(Unsigned<T>(a)) + W(Unsigned<T>(b))));
    } else {
      return a + b;
    }
  }
};

struct OpProd {
  template <typename T>
  static inline T apply(T a, T b) {
    if constexpr (std::is_integral_v<T>) {
      using W = WrapT<Unsigned<T>>;
      return static_cast<T>(static_cast<Unsigned<T>>(W(Unsigned<T>(a)) * W(Unsigned<T>(b))));
    } else {
      return a * b;
    }
  }
};

// Floats: NaN if either input is NaN; equal inputs give a&b (max) or a|b (min) on the
// bits, which only differs from a when they are +0 and -0: max(-0,+0)=+0, min=-0.
// Written with bit masks rather than ?: because GCC will not if-convert selects that
// depend on (potentially trapping) float compares, and then does not vectorise.
template <bool kMax, typename F>
inline F floatMaxMin(F a, F b) {
  using U = typename FloatBitsOf<F>::type;
  const U ua = toBits(a), ub = toBits(b);
  const U quietNaN = toBits(a + b);  // the result whenever a or b is NaN
  const U pickA = U(0) - U(kMax ? a > b : a < b);
  const U equal = U(0) - U(a == b);
  const U unordered = U(0) - U(__builtin_isunordered(a, b));
  const U tie = kMax ? (ua & ub) : (ua | ub);
  U r = (ua & pickA) | (ub & ~pickA);
  r = (tie & equal) | (r & ~equal);
  r = (quietNaN & unordered) | (r & ~unordered);
  return fromBits<F>(r);
}

struct OpMax {
  template <typename T>
  static inline T apply(T a, T b) {
    if constexpr (std::is_integral_v<T>) {
      return a > b ? a : b;
    } else {
      return floatMaxMin<true>(a, b);
    }
  }
};

struct OpMin {
  template <typename T>
  static inline T apply(T a, T b) {
    if constexpr (std::is_integral_v<T>) {
      return a < b ? a : b;
    } else {
      return floatMaxMin<false>(a, b);
    }
  }
};

// Element policies: storage type S and S apply(S, S).
template <typename T, typename Op>
struct NativeElem {
  using S = T;
  static inline S apply(S a, S b) { return Op::template apply<T>(a, b); }
};

// float -> bf16, round to nearest-even, NaN canonical (branch-free, vectorisable).
inline uint16_t narrowBf16(float r) {
  const uint32_t x = floatBits(r);
  const uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
  return static_cast<uint16_t>(r != r ? uint32_t{kBf16CanonicalNaN} : rounded);
}

inline uint16_t narrowHalfPortable(float r) { return r != r ? kHalfCanonicalNaN : floatToHalf(r); }

template <typename Op>
struct Bf16Elem {
  using S = uint16_t;
  static inline S apply(S a, S b) {
    return narrowBf16(Op::template apply<float>(bf16ToFloat(a), bf16ToFloat(b)));
  }
};

template <typename Op>
struct HalfElemPortable {
  using S = uint16_t;
  static inline S apply(S a, S b) {
    return narrowHalfPortable(Op::template apply<float>(halfToFloat(a), halfToFloat(b)));
  }
};

// ---------------------------------------------------------------------------------
// Loop shapes. In each, the pointers actually dereferenced are distinct objects, so
// __restrict__ is truthful and GCC vectorises without run-time alias checks. They are
// always_inline so that each is compiled for the ISA of its caller: once for the
// baseline target and once for AVX2 (see runElemAvx2), picked at run time.
#define FTCCL_INLINE inline __attribute__((always_inline))

// Calls f(Sum{}), f(Prod{}), f(Max{}) or f(Min{}) for op; Avg combines like Sum.
template <typename Sum, typename Prod, typename Max, typename Min, typename F>
FTCCL_INLINE void visitOp(ftcclRedOp_t op, F&& f) {
  switch (op) {
    case ftcclSum:
    case ftcclAvg:
      f(Sum{});
      break;
    case ftcclProd:
      f(Prod{});
      break;
    case ftcclMax:
      f(Max{});
      break;
    case ftcclMin:
      f(Min{});
      break;
    default:
      break;
  }
}

template <typename E>
FTCCL_INLINE void loopDistinct(typename E::S* __restrict__ d, const typename E::S* __restrict__ a,
                               const typename E::S* __restrict__ b, size_t n) {
  for (size_t i = 0; i < n; ++i) d[i] = E::apply(a[i], b[i]);
}

template <typename E>
FTCCL_INLINE void loopDstIsA(typename E::S* __restrict__ d, const typename E::S* __restrict__ b,
                             size_t n) {
  for (size_t i = 0; i < n; ++i) d[i] = E::apply(d[i], b[i]);
}

template <typename E>
FTCCL_INLINE void loopDstIsB(typename E::S* __restrict__ d, const typename E::S* __restrict__ a,
                             size_t n) {
  for (size_t i = 0; i < n; ++i) d[i] = E::apply(a[i], d[i]);
}

template <typename E>
FTCCL_INLINE void loopAllSame(typename E::S* __restrict__ d, size_t n) {
  for (size_t i = 0; i < n; ++i) d[i] = E::apply(d[i], d[i]);
}

template <typename E>
FTCCL_INLINE void runShapes(void* dst, const void* a, const void* b, size_t n) {
  using S = typename E::S;
  S* d = static_cast<S*>(dst);
  const S* pa = static_cast<const S*>(a);
  const S* pb = static_cast<const S*>(b);
  if (d == pa && d == pb) {
    loopAllSame<E>(d, n);
  } else if (d == pa) {
    loopDstIsA<E>(d, pb, n);
  } else if (d == pb) {
    loopDstIsB<E>(d, pa, n);
  } else {
    loopDistinct<E>(d, pa, pb, n);
  }
}

// In-place p[i] = f(p[i]) for divideBy.
template <typename S, typename Fn>
FTCCL_INLINE void loopUnary(S* __restrict__ p, size_t n, Fn f) {
  for (size_t i = 0; i < n; ++i) p[i] = f(p[i]);
}

// One out-of-line function per (type, op) and ISA: readable profiles, small reduce().
template <typename E>
__attribute__((noinline)) void runElemBase(void* dst, const void* a, const void* b, size_t n) {
  runShapes<E>(dst, a, b, n);
}
template <typename S, typename Fn>
__attribute__((noinline)) void runUnaryBase(S* p, size_t n, Fn f) {
  loopUnary(p, n, f);
}

// ---------------------------------------------------------------------------------
// divideBy element functions.

template <typename T>
struct DivFloat {
  T d;
  FTCCL_INLINE T operator()(T x) const { return x / d; }
};

template <typename T>
struct NegateWrap {  // x / -1 for signed T: the one quotient that can overflow
  FTCCL_INLINE T operator()(T x) const {
    using W = WrapT<Unsigned<T>>;
    return static_cast<T>(static_cast<Unsigned<T>>(W(0) - W(Unsigned<T>(x))));
  }
};

template <typename T>
struct DivSigned {  // divisor != -1, != 0
  std::conditional_t<(sizeof(T) <= sizeof(int)), int, T> d;
  FTCCL_INLINE T operator()(T x) const { return static_cast<T>(x / d); }
};

template <typename T>
struct DivUnsigned {  // divisor > 0
  std::conditional_t<(sizeof(T) <= sizeof(unsigned)), unsigned, uint64_t> d;
  FTCCL_INLINE T operator()(T x) const { return static_cast<T>(x / d); }
};

template <typename T>
struct DivUnsignedByNegative {  // divisor < 0: -(x / |d|), wrapped
  uint64_t absD;
  FTCCL_INLINE T operator()(T x) const {
    using W = WrapT<T>;
    return static_cast<T>(W(0) - W(static_cast<T>(x / absD)));
  }
};

struct DivBf16 {
  float d;
  FTCCL_INLINE uint16_t operator()(uint16_t x) const { return narrowBf16(bf16ToFloat(x) / d); }
};

struct DivHalfPortable {
  float d;
  FTCCL_INLINE uint16_t operator()(uint16_t x) const {
    return narrowHalfPortable(halfToFloat(x) / d);
  }
};

// ---------------------------------------------------------------------------------
// AVX2 (+F16C) builds: the same loops compiled for AVX2; fp16 (F16C conversions) and
// bf16 (integer rounding) hand-vectorised 8 lanes at a time with the same float
// operations, NaN results canonical, rounding to nearest-even. Every result is fully
// determined by IEEE arithmetic on the inputs (NaN payloads of fp16/bf16 are canonical),
// so the baseline and AVX2 builds give the same bits; the unit tests check it.

#if FTCCL_REDUCE_X86
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("f16c,avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("f16c,avx2")
#endif

template <typename E>
__attribute__((noinline)) void runElemAvx2(void* dst, const void* a, const void* b, size_t n) {
  runShapes<E>(dst, a, b, n);
}
template <typename S, typename Fn>
__attribute__((noinline)) void runUnaryAvx2(S* p, size_t n, Fn f) {
  loopUnary(p, n, f);
}

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
void reduceLowp8(void* dst, const void* a, const void* b, size_t n, ftcclRedOp_t op) {
  visitOp<VSum, VProd, VMax, VMin>(op, [&](auto v) {
    lowpLoop<C, decltype(v)>(static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(a),
                             static_cast<const uint16_t*>(b), n);
  });
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

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif  // FTCCL_REDUCE_X86

// ---------------------------------------------------------------------------------
// AVX-512 (F, BW, DQ, VL) kernels for fp16/bf16: 16 lanes at a time with the same float
// operations as the AVX2 kernels (mask registers instead of blend vectors); tails use
// masked loads and stores. Their conversions make them compute-bound, so twice the
// lanes nearly double them in cache (bench/reduce_kernels). The other types keep the
// AVX2 build: they are bound by memory, and the generic loops compiled for 512-bit
// vectors were 3-7% slower on float sums (256-bit AVX-512VL code: float max 20-36%).

#if FTCCL_REDUCE_X86
#if defined(__clang__)
#pragma clang attribute push(                                              \
    __attribute__((target("f16c,avx2,avx512f,avx512bw,avx512dq,avx512vl"), \
                   min_vector_width(512))),                                \
    apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("f16c,avx2,avx512f,avx512bw,avx512dq,avx512vl")
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*(), which its
// -Wmaybe-uninitialized misreads (GCC bug 105593); the warning is off for this section.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// As VSum..VMin: mask_blend(k, x, y) is k ? y : x.
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

// 16 x 16-bit <-> 16 x float, as HalfConv and Bf16Conv.
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

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif
#endif  // FTCCL_REDUCE_X86

using reduce_detail::Isa;

// __builtin_cpu_supports also covers the OS saving the ymm/zmm state; F16C is read from
// CPUID leaf 1.
Isa detectIsa() {
#if FTCCL_REDUCE_X86
  __builtin_cpu_init();
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return Isa::kBaseline;
  if ((ecx & bit_F16C) == 0 || !__builtin_cpu_supports("avx2")) return Isa::kBaseline;
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  return avx512 ? Isa::kAvx512 : Isa::kAvx2;
#else
  return Isa::kBaseline;
#endif
}

// ---------------------------------------------------------------------------------
// Dispatch. kIsa selects the build (callers pass only one the CPU has); the generic
// loops use the AVX2 build under AVX-512 too (see the AVX-512 section).

template <Isa kIsa, typename E>
void runElem(void* dst, const void* a, const void* b, size_t n) {
#if FTCCL_REDUCE_X86
  if constexpr (kIsa != Isa::kBaseline) {
    runElemAvx2<E>(dst, a, b, n);
  } else
#endif
  {
    runElemBase<E>(dst, a, b, n);
  }
}

template <Isa kIsa, typename S, typename Fn>
void runUnary(S* p, size_t n, Fn f) {
#if FTCCL_REDUCE_X86
  if constexpr (kIsa != Isa::kBaseline) {
    runUnaryAvx2(p, n, f);
  } else
#endif
  {
    runUnaryBase(p, n, f);
  }
}

template <Isa kIsa, template <typename> class ElemOf>
void runByOp(void* dst, const void* a, const void* b, size_t n, ftcclRedOp_t op) {
  visitOp<OpSum, OpProd, OpMax, OpMin>(
      op, [&](auto o) { runElem<kIsa, ElemOf<decltype(o)>>(dst, a, b, n); });
}

template <typename T>
struct NativeOf {
  template <typename Op>
  using type = NativeElem<T, Op>;
};

template <Isa kIsa, typename T>
void runNative(void* dst, const void* a, const void* b, size_t n, ftcclRedOp_t op) {
  runByOp<kIsa, NativeOf<T>::template type>(dst, a, b, n, op);
}

// fp16 (kBf16 false) and bf16: hand-vectorised kernels for AVX2 (8 lanes) and AVX-512
// (16 lanes); the portable element policy otherwise (branchy: no gain from AVX2 codegen).
template <Isa kIsa, bool kBf16>
void reduceLowp(void* dst, const void* a, const void* b, size_t n, ftcclRedOp_t op) {
#if FTCCL_REDUCE_X86
  if constexpr (kIsa == Isa::kAvx512) {
    reduceLowp16<std::conditional_t<kBf16, Bf16Conv16, HalfConv16>>(dst, a, b, n, op);
    return;
  } else if constexpr (kIsa == Isa::kAvx2) {
    reduceLowp8<std::conditional_t<kBf16, Bf16Conv, HalfConv>>(dst, a, b, n, op);
    return;
  }
#endif
  if constexpr (kBf16) {
    runByOp<Isa::kBaseline, Bf16Elem>(dst, a, b, n, op);
  } else {
    runByOp<Isa::kBaseline, HalfElemPortable>(dst, a, b, n, op);
  }
}

template <Isa kIsa, bool kBf16>
void divideLowp(void* data, size_t n, int divisor) {
  uint16_t* p = static_cast<uint16_t*>(data);
#if FTCCL_REDUCE_X86
  if constexpr (kIsa == Isa::kAvx512) {
    divideLowp16<std::conditional_t<kBf16, Bf16Conv16, HalfConv16>>(p, n, divisor);
    return;
  } else if constexpr (kIsa == Isa::kAvx2) {
    divideLowp8<std::conditional_t<kBf16, Bf16Conv, HalfConv>>(p, n, divisor);
    return;
  }
#endif
  using Div = std::conditional_t<kBf16, DivBf16, DivHalfPortable>;
  runUnary<Isa::kBaseline>(p, n, Div{static_cast<float>(divisor)});
}

template <Isa kIsa>
void reduceImpl(void* dst, const void* a, const void* b, size_t count, ftcclDataType_t type,
                ftcclRedOp_t op) {
  if (count == 0 || !isValidRedOp(op)) return;
  switch (type) {
    case ftcclInt8:
      runNative<kIsa, int8_t>(dst, a, b, count, op);
      break;
    case ftcclUint8:
      runNative<kIsa, uint8_t>(dst, a, b, count, op);
      break;
    case ftcclInt32:
      runNative<kIsa, int32_t>(dst, a, b, count, op);
      break;
    case ftcclUint32:
      runNative<kIsa, uint32_t>(dst, a, b, count, op);
      break;
    case ftcclInt64:
      runNative<kIsa, int64_t>(dst, a, b, count, op);
      break;
    case ftcclUint64:
      runNative<kIsa, uint64_t>(dst, a, b, count, op);
      break;
    case ftcclFloat16:
      reduceLowp<kIsa, false>(dst, a, b, count, op);
      break;
    case ftcclFloat32:
      runNative<kIsa, float>(dst, a, b, count, op);
      break;
    case ftcclFloat64:
      runNative<kIsa, double>(dst, a, b, count, op);
      break;
    case ftcclBfloat16:
      reduceLowp<kIsa, true>(dst, a, b, count, op);
      break;
    default:
      break;
  }
}

// Integer division has no SIMD form: these always use the baseline build.
template <typename T>
void divideSigned(T* p, size_t n, int divisor) {
  if (divisor == 1) return;
  if (divisor == -1) {
    runUnary<Isa::kBaseline>(p, n, NegateWrap<T>{});
  } else {
    runUnary<Isa::kBaseline>(p, n, DivSigned<T>{divisor});  // no SIMD integer division
  }
}

template <typename T>
void divideUnsigned(T* p, size_t n, int divisor) {
  if (divisor == 1) return;
  if (divisor > 0) {
    runUnary<Isa::kBaseline>(p, n, DivUnsigned<T>{static_cast<unsigned>(divisor)});
  } else {
    runUnary<Isa::kBaseline>(
        p, n, DivUnsignedByNegative<T>{static_cast<uint64_t>(-static_cast<int64_t>(divisor))});
  }
}

template <Isa kIsa>
void divideImpl(void* data, size_t count, ftcclDataType_t type, int divisor) {
  if (count == 0 || divisor == 0) return;  // a zero divisor is a caller bug: leave data
  switch (type) {
    case ftcclInt8:
      divideSigned(static_cast<int8_t*>(data), count, divisor);
      break;
    case ftcclUint8:
      divideUnsigned(static_cast<uint8_t*>(data), count, divisor);
      break;
    case ftcclInt32:
      divideSigned(static_cast<int32_t*>(data), count, divisor);
      break;
    case ftcclUint32:
      divideUnsigned(static_cast<uint32_t*>(data), count, divisor);
      break;
    case ftcclInt64:
      divideSigned(static_cast<int64_t*>(data), count, divisor);
      break;
    case ftcclUint64:
      divideUnsigned(static_cast<uint64_t*>(data), count, divisor);
      break;
    case ftcclFloat16:
      divideLowp<kIsa, false>(data, count, divisor);
      break;
    case ftcclFloat32:
      runUnary<kIsa>(static_cast<float*>(data), count,
                     DivFloat<float>{static_cast<float>(divisor)});
      break;
    case ftcclFloat64:
      runUnary<kIsa>(static_cast<double*>(data), count,
                     DivFloat<double>{static_cast<double>(divisor)});
      break;
    case ftcclBfloat16:
      divideLowp<kIsa, true>(data, count, divisor);
      break;
    default:
      break;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------
// Public entry points.

namespace reduce_detail {

const char* isaName(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx2:
      return "avx2";
    default:
      return "baseline";
  }
}

bool parseIsa(const char* name, Isa* isa) {
  for (Isa candidate : {Isa::kBaseline, Isa::kAvx2, Isa::kAvx512}) {
    if (std::strcmp(name, isaName(candidate)) == 0) {
      *isa = candidate;
      return true;
    }
  }
  return false;
}

bool cpuHas(Isa isa) {
  static const Isa widest = detectIsa();
  return static_cast<int>(isa) <= static_cast<int>(widest);
}

// FTCCL_REDUCE_ISA (read once) caps the build, so that benchmarks compare builds in one
// binary; config.cc rejects a value that parseIsa does not know.
Isa bestIsa() {
  static const Isa best = [] {
    Isa isa = detectIsa();
    Isa cap;
    const char* env = std::getenv("FTCCL_REDUCE_ISA");
    if (env && parseIsa(env, &cap) && static_cast<int>(cap) < static_cast<int>(isa)) isa = cap;
    return isa;
  }();
  return best;
}

void reduceWith(Isa isa, void* dst, const void* a, const void* b, size_t count,
                ftcclDataType_t type, ftcclRedOp_t op) {
  switch (isa) {
    case Isa::kAvx512:
      reduceImpl<Isa::kAvx512>(dst, a, b, count, type, op);
      break;
    case Isa::kAvx2:
      reduceImpl<Isa::kAvx2>(dst, a, b, count, type, op);
      break;
    default:
      reduceImpl<Isa::kBaseline>(dst, a, b, count, type, op);
      break;
  }
}

void divideByWith(Isa isa, void* data, size_t count, ftcclDataType_t type, int divisor) {
  switch (isa) {
    case Isa::kAvx512:
      divideImpl<Isa::kAvx512>(data, count, type, divisor);
      break;
    case Isa::kAvx2:
      divideImpl<Isa::kAvx2>(data, count, type, divisor);
      break;
    default:
      divideImpl<Isa::kBaseline>(data, count, type, divisor);
      break;
  }
}

}  // namespace reduce_detail

size_t dataTypeSize(ftcclDataType_t type) {
  switch (type) {
    case ftcclInt8:
    case ftcclUint8:
      return 1;
    case ftcclFloat16:
    case ftcclBfloat16:
      return 2;
    case ftcclInt32:
    case ftcclUint32:
    case ftcclFloat32:
      return 4;
    case ftcclInt64:
    case ftcclUint64:
    case ftcclFloat64:
      return 8;
    default:
      return 0;
  }
}

const char* dataTypeName(ftcclDataType_t type) {
  switch (type) {
    case ftcclInt8:
      return "int8";
    case ftcclUint8:
      return "uint8";
    case ftcclInt32:
      return "int32";
    case ftcclUint32:
      return "uint32";
    case ftcclInt64:
      return "int64";
    case ftcclUint64:
      return "uint64";
    case ftcclFloat16:
      return "half";
    case ftcclFloat32:
      return "float";
    case ftcclFloat64:
      return "double";
    case ftcclBfloat16:
      return "bfloat16";
    default:
      return "invalid";
  }
}

const char* redOpName(ftcclRedOp_t op) {
  switch (op) {
    case ftcclSum:
      return "sum";
    case ftcclProd:
      return "prod";
    case ftcclMax:
      return "max";
    case ftcclMin:
      return "min";
    case ftcclAvg:
      return "avg";
    default:
      return "invalid";
  }
}

bool isValidDataType(int type) { return type >= 0 && type < ftcclNumTypes; }
bool isValidRedOp(int op) { return op >= 0 && op < ftcclNumOps; }

void reduce(void* dst, const void* a, const void* b, size_t count, ftcclDataType_t type,
            ftcclRedOp_t op) {
  reduce_detail::reduceWith(reduce_detail::bestIsa(), dst, a, b, count, type, op);
}

void divideBy(void* data, size_t count, ftcclDataType_t type, int divisor) {
  reduce_detail::divideByWith(reduce_detail::bestIsa(), data, count, type, divisor);
}

}  // namespace ftccl
