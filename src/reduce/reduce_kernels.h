// The portable reduction kernels, shared by every instruction-set build of src/reduce:
// element operations (Sum/Prod/Max/Min per C++ type), the four loop shapes, and the
// type/op switches. Internal to src/reduce (see reduce.h for the contract).
//
// reduce_baseline.cc, reduce_avx2.cc and reduce_avx512.cc each include this header and
// are compiled with their own target flags (CMakeLists.txt), so the same loops become
// baseline or AVX2 code. Everything here is therefore in an unnamed namespace: each
// translation unit gets its own internal copy. As ordinary inline functions and
// templates they would be weak symbols in every object that used them, the linker would
// keep one copy for the whole library, and that could be the AVX2 or AVX-512 one, run
// on the baseline path of a CPU without them (SIGILL). For the same reason the ISA builds call
// no inline function with external linkage (half.h's conversions, std:: templates);
// unit.reduce_isa_objects checks that their objects define nothing else that the linker
// could share.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "ftccl.h"

namespace ftccl {
namespace reduce_detail {
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

// ---------------------------------------------------------------------------------
// Loop shapes. In each, the pointers actually dereferenced are distinct objects, so
// __restrict__ is truthful and GCC vectorises without run-time alias checks. They are
// always_inline so that each (type, op) becomes one flat out-of-line function of its
// build (Loops::elem below), compiled for that build's ISA.
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

template <typename T>
struct DivFloat {
  T d;
  FTCCL_INLINE T operator()(T x) const { return x / d; }
};

// ---------------------------------------------------------------------------------
// Type/op switches over a build: a struct of static functions, defined in the build's
// own translation unit as `struct Build : Loops<Build>`, with
//   template <bool kBf16> reduceLowp(dst, a, b, n, op) and divideLowp(uint16_t*, n, int):
//       fp16 (kBf16 false) and bf16;
//   divideInteger(data, n, type, divisor): the integer types.

// The loops out of line, one function per (type, op) and build: small reduce(), and
// readable profiles, the build's name being in each function's.
template <typename Build>
struct Loops {
  template <typename E>
  __attribute__((noinline)) static void elem(void* dst, const void* a, const void* b, size_t n) {
    runShapes<E>(dst, a, b, n);
  }

  template <typename S, typename Fn>
  __attribute__((noinline)) static void unary(S* p, size_t n, Fn f) {
    loopUnary(p, n, f);
  }
};

template <typename Build, typename T>
FTCCL_INLINE void reduceNative(void* dst, const void* a, const void* b, size_t n, ftcclRedOp_t op) {
  visitOp<OpSum, OpProd, OpMax, OpMin>(
      op, [&](auto o) { Build::template elem<NativeElem<T, decltype(o)>>(dst, a, b, n); });
}

template <typename Build>
FTCCL_INLINE void reduceByType(void* dst, const void* a, const void* b, size_t n,
                               ftcclDataType_t type, ftcclRedOp_t op) {
  switch (type) {
    case ftcclInt8:
      reduceNative<Build, int8_t>(dst, a, b, n, op);
      break;
    case ftcclUint8:
      reduceNative<Build, uint8_t>(dst, a, b, n, op);
      break;
    case ftcclInt32:
      reduceNative<Build, int32_t>(dst, a, b, n, op);
      break;
    case ftcclUint32:
      reduceNative<Build, uint32_t>(dst, a, b, n, op);
      break;
    case ftcclInt64:
      reduceNative<Build, int64_t>(dst, a, b, n, op);
      break;
    case ftcclUint64:
      reduceNative<Build, uint64_t>(dst, a, b, n, op);
      break;
    case ftcclFloat16:
      Build::template reduceLowp<false>(dst, a, b, n, op);
      break;
    case ftcclFloat32:
      reduceNative<Build, float>(dst, a, b, n, op);
      break;
    case ftcclFloat64:
      reduceNative<Build, double>(dst, a, b, n, op);
      break;
    case ftcclBfloat16:
      Build::template reduceLowp<true>(dst, a, b, n, op);
      break;
    default:
      break;
  }
}

template <typename Build>
FTCCL_INLINE void divideByType(void* data, size_t n, ftcclDataType_t type, int divisor) {
  switch (type) {
    case ftcclInt8:
    case ftcclUint8:
    case ftcclInt32:
    case ftcclUint32:
    case ftcclInt64:
    case ftcclUint64:
      Build::divideInteger(data, n, type, divisor);
      break;
    case ftcclFloat16:
      Build::template divideLowp<false>(static_cast<uint16_t*>(data), n, divisor);
      break;
    case ftcclFloat32:
      Build::unary(static_cast<float*>(data), n, DivFloat<float>{static_cast<float>(divisor)});
      break;
    case ftcclFloat64:
      Build::unary(static_cast<double*>(data), n, DivFloat<double>{static_cast<double>(divisor)});
      break;
    case ftcclBfloat16:
      Build::template divideLowp<true>(static_cast<uint16_t*>(data), n, divisor);
      break;
    default:
      break;
  }
}

}  // namespace
}  // namespace reduce_detail
}  // namespace ftccl
