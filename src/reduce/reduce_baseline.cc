// The baseline build of the kernels: compiled for the compiler's default target, so it
// runs on every CPU. The other builds use it for what has no SIMD form (integer
// division), and all builds give the same bits (reduce_test checks it).
//
// fp16/bf16 go through float one element at a time with the portable conversions of
// half.h (branchy: no gain from AVX2 codegen). Results that are NaN are written as the
// canonical quiet NaN (0x7e00 / 0x7fc0): which input NaN an IEEE operation returns is up
// to the compiler (it may swap the operands of a commutative op), so canonicalising is
// what makes the result depend only on the inputs, whichever path, compiler or CPU
// computes it. Only this build includes half.h's conversions (see reduce_kernels.h).
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "reduce/half.h"
#include "reduce/reduce_isa.h"
#include "reduce/reduce_kernels.h"

namespace ftccl {
namespace reduce_detail {
namespace baseline {
namespace {

// ---------------------------------------------------------------------------------
// fp16/bf16 element operations.

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
// Integer division: truncates toward 0, wraps.

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

// ---------------------------------------------------------------------------------
// The build (see reduce_kernels.h for its shape).

struct Build : Loops<Build> {
  template <bool kBf16>
  static void reduceLowp(void* dst, const void* a, const void* b, size_t n, ftcclRedOp_t op) {
    visitOp<OpSum, OpProd, OpMax, OpMin>(op, [&](auto o) {
      using Op = decltype(o);
      elem<std::conditional_t<kBf16, Bf16Elem<Op>, HalfElemPortable<Op>>>(dst, a, b, n);
    });
  }

  template <bool kBf16>
  static void divideLowp(uint16_t* p, size_t n, int divisor) {
    using Div = std::conditional_t<kBf16, DivBf16, DivHalfPortable>;
    unary(p, n, Div{static_cast<float>(divisor)});
  }

  template <typename T>
  static void divideSigned(T* p, size_t n, int divisor) {
    if (divisor == 1) return;
    if (divisor == -1) {
      unary(p, n, NegateWrap<T>{});
    } else {
      unary(p, n, DivSigned<T>{divisor});
    }
  }

  template <typename T>
  static void divideUnsigned(T* p, size_t n, int divisor) {
    if (divisor == 1) return;
    if (divisor > 0) {
      unary(p, n, DivUnsigned<T>{static_cast<unsigned>(divisor)});
    } else {
      unary(p, n, DivUnsignedByNegative<T>{static_cast<uint64_t>(-static_cast<int64_t>(divisor))});
    }
  }

  static void divideInteger(void* data, size_t n, ftcclDataType_t type, int divisor) {
    switch (type) {
      case ftcclInt8:
        divideSigned(static_cast<int8_t*>(data), n, divisor);
        break;
      case ftcclUint8:
        divideUnsigned(static_cast<uint8_t*>(data), n, divisor);
        break;
      case ftcclInt32:
        divideSigned(static_cast<int32_t*>(data), n, divisor);
        break;
      case ftcclUint32:
        divideUnsigned(static_cast<uint32_t*>(data), n, divisor);
        break;
      case ftcclInt64:
        divideSigned(static_cast<int64_t*>(data), n, divisor);
        break;
      case ftcclUint64:
        divideUnsigned(static_cast<uint64_t*>(data), n, divisor);
        break;
      default:
        break;
    }
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

}  // namespace baseline
}  // namespace reduce_detail
}  // namespace ftccl
