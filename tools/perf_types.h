// The data of the perf tools' buffers: the element types (our own fp16 / bf16 conversions,
// the nccl-tests type and op names), the reference semantics of the reductions, the
// deterministic input patterns every rank can compute for every other rank, and the
// bitwise checks of a result against what was expected.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "ftccl.h"

namespace ftperf {

// ---------------------------------------------------------------------------------
// fp16 / bf16, our own conversions (round to nearest even; NaN stays NaN).
// ---------------------------------------------------------------------------------
uint16_t floatToHalf(float f);
float halfToFloat(uint16_t h);
uint16_t floatToBf16(float f);
float bf16ToFloat(uint16_t b);

struct Half {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

// Float-like element types: widen to the type the library computes in, narrow back.
template <class T>
struct FloatOps;
template <>
struct FloatOps<float> {
  using Wide = float;
  static float widen(float x) { return x; }
  static float narrow(float x) { return x; }
};
template <>
struct FloatOps<double> {
  using Wide = double;
  static double widen(double x) { return x; }
  static double narrow(double x) { return x; }
};
template <>
struct FloatOps<Half> {
  using Wide = float;
  static float widen(Half x) { return halfToFloat(x.bits); }
  static Half narrow(float x) { return Half{floatToHalf(x)}; }
};
template <>
struct FloatOps<BFloat16> {
  using Wide = float;
  static float widen(BFloat16 x) { return bf16ToFloat(x.bits); }
  static BFloat16 narrow(float x) { return BFloat16{floatToBf16(x)}; }
};

// ---------------------------------------------------------------------------------
// Types and ops: nccl-tests names.
// ---------------------------------------------------------------------------------
size_t typeSize(ftcclDataType_t type);       // 0 for an invalid type
const char* typeName(ftcclDataType_t type);  // "int8", ..., "half", "float", "bfloat16"
const char* opName(ftcclRedOp_t op);         // "sum", "prod", "max", "min", "avg"

// Calls f(T{}) with T the C++ element type of `type` (Half/BFloat16 for 16-bit floats).
template <class F>
void withType(ftcclDataType_t type, F&& f) {
  switch (type) {
    case ftcclInt8:
      f(int8_t{});
      break;
    case ftcclUint8:
      f(uint8_t{});
      break;
    case ftcclInt32:
      f(int32_t{});
      break;
    case ftcclUint32:
      f(uint32_t{});
      break;
    case ftcclInt64:
      f(int64_t{});
      break;
    case ftcclUint64:
      f(uint64_t{});
      break;
    case ftcclFloat16:
      f(Half{});
      break;
    case ftcclFloat32:
      f(float{});
      break;
    case ftcclFloat64:
      f(double{});
      break;
    case ftcclBfloat16:
      f(BFloat16{});
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------------------------
// Reference semantics of the reductions (ftccl.h): integers wrap; integer Avg is the
// wrapped sum divided by nranks truncated toward 0; fp16/bf16 are combined in float
// and rounded once per step; float Avg is sum / nranks in the type's precision.
// ---------------------------------------------------------------------------------
template <class T>
T refCombine(ftcclRedOp_t op, T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    switch (op) {
      case ftcclProd:
        return static_cast<T>(static_cast<U>(static_cast<U>(a) * static_cast<U>(b)));
      case ftcclMax:
        return a < b ? b : a;
      case ftcclMin:
        return b < a ? b : a;
      default:
        return static_cast<T>(static_cast<U>(static_cast<U>(a) + static_cast<U>(b)));
    }
  } else {
    using F = FloatOps<T>;
    const auto x = F::widen(a);
    const auto y = F::widen(b);
    switch (op) {
      case ftcclProd:
        return F::narrow(x * y);
      case ftcclMax:
        return F::narrow(x < y ? y : x);
      case ftcclMin:
        return F::narrow(y < x ? y : x);
      default:
        return F::narrow(x + y);
    }
  }
}

// Finishes ftcclAvg: `sum` is the (wrapped / rounded) sum over nranks.
template <class T>
T refAvgFinish(T sum, int nranks) {
  if constexpr (std::is_integral_v<T>) {
    if constexpr (std::is_signed_v<T>) {
      return static_cast<T>(static_cast<int64_t>(sum) / static_cast<int64_t>(nranks));
    } else {
      return static_cast<T>(static_cast<uint64_t>(sum) / static_cast<uint64_t>(nranks));
    }
  } else {
    using F = FloatOps<T>;
    using W = typename F::Wide;
    return F::narrow(F::widen(sum) / static_cast<W>(nranks));
  }
}

// ---------------------------------------------------------------------------------
// Deterministic input patterns. Every rank can generate every rank's input, so the
// expected result is computed locally, with no communication.
//
// Integer types: full-width pseudo-random bits. Wrapping sum/prod and max/min are
//   exact in any order, so the expected value is exact whatever the algorithm.
// Float types: small integers chosen so that every partial result, in any order and
//   any grouping, is exactly representable even in bf16 (8 significant bits):
//   - sum/avg: v(i) + d(r,i); v in [-k, k] with k = clamp(100 / nranks, 1, 8), the same
//     on all ranks; d in [-2, 2] cancels within rank pairs (2p, 2p+1), 0 on an unpaired
//     last rank. So sum = nranks * v(i) exactly and avg = v(i) exactly, and any partial
//     sum is bounded by nranks*k + 2*ceil(nranks/2) <= 256 up to 127 ranks (bf16 limit;
//     fp16 is exact far beyond). Above 127 ranks bf16 sum/avg checks may be inexact.
//   - prod: 1, -1 or 2, with at most 8 twos per element over all ranks (|prod| <= 256).
//   - max/min: integers in [-100, 100] (never -0).
// Broadcast: raw pseudo-random bits of the whole element; for float types the top
//   exponent bit is cleared so that the value is finite (no NaN/Inf payload games).
// ---------------------------------------------------------------------------------
inline uint64_t mix64(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
inline uint64_t patternKey(uint64_t stream, uint64_t id) { return mix64(mix64(stream) ^ id); }
inline uint64_t patternAt(uint64_t key, size_t i) { return mix64(key ^ static_cast<uint64_t>(i)); }

enum PatternStream : uint64_t {
  kStreamInt = 1,       // integer types, all ops (per rank)
  kStreamSumV = 2,      // float sum/avg: common part v(i)
  kStreamSumD = 3,      // float sum/avg: per rank pair deviation
  kStreamProdTwo = 4,   // float prod: where the twos are
  kStreamProdSign = 5,  // float prod: signs (per rank)
  kStreamMaxMin = 6,    // float max/min (per rank)
  kStreamRaw = 7,       // broadcast (per rank)
};

// Element generator of one rank's allreduce input.
class ReducePattern {
 public:
  ReducePattern(ftcclRedOp_t op, int rank, int nranks);
  // Integer types: the element is these bits truncated to the type's width.
  uint64_t intBits(size_t i) const { return patternAt(intKey_, i); }
  // Float types: the element is this exactly representable small integer.
  int64_t smallInt(size_t i) const {
    switch (op_) {
      case ftcclProd: {
        if ((patternAt(twoKey_, i) % twoPeriod_ + static_cast<uint64_t>(rank_)) % twoPeriod_ == 0)
          return 2;
        return patternAt(signKey_, i) % 4 == 0 ? -1 : 1;
      }
      case ftcclMax:
      case ftcclMin:
        return static_cast<int64_t>(patternAt(maxMinKey_, i) % 201) - 100;
      default: {  // sum, avg
        const int64_t v =
            static_cast<int64_t>(patternAt(sumVKey_, i) % (2 * k_ + 1)) - static_cast<int64_t>(k_);
        if (!paired_) return v;
        const int64_t d = static_cast<int64_t>(patternAt(sumDKey_, i) % 5) - 2;
        return (rank_ % 2 == 0) ? v + d : v - d;
      }
    }
  }

 private:
  ftcclRedOp_t op_;
  int rank_;
  uint64_t intKey_, sumVKey_, sumDKey_, twoKey_, signKey_, maxMinKey_;
  uint64_t k_;          // sum/avg: |v| <= k
  bool paired_;         // sum/avg: this rank has a partner that cancels d
  uint64_t twoPeriod_;  // prod: one rank in twoPeriod_ contributes 2 at each element
};

template <class T>
T fromSmallInt(int64_t v) {
  if constexpr (std::is_same_v<T, Half>) {
    return Half{floatToHalf(static_cast<float>(v))};
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    return BFloat16{floatToBf16(static_cast<float>(v))};
  } else {
    return static_cast<T>(v);
  }
}

// Raw bits truncated to T; float types get their top exponent bit cleared (finite).
template <class T>
T fromRawBits(uint64_t bits) {
  if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(bits);
  } else if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
    return T{static_cast<uint16_t>(bits & 0xbfffu)};
  } else if constexpr (std::is_same_v<T, float>) {
    const uint32_t b = static_cast<uint32_t>(bits) & 0xbfffffffu;
    float f;
    std::memcpy(&f, &b, sizeof f);
    return f;
  } else {
    const uint64_t b = bits & 0xbfffffffffffffffull;
    double d;
    std::memcpy(&d, &b, sizeof d);
    return d;
  }
}

template <class T>
T reduceInput(const ReducePattern& p, size_t i) {
  if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(p.intBits(i));
  } else {
    return fromSmallInt<T>(p.smallInt(i));
  }
}

// buf[0..count) = rank's allreduce input for op (prefix-consistent: depends on i only).
void fillReduceInput(void* buf, size_t count, ftcclDataType_t type, ftcclRedOp_t op, int rank,
                     int nranks);
// buf[i] = op over every rank's fillReduceInput pattern at element offset + i, for i in
// [0, count): what AllReduce / Reduce produce (offset 0) and a ReduceScatter block
// (offset = rank * recvcount). Folded in rank order with refCombine / refAvgFinish.
void fillReduceExpected(void* buf, size_t count, size_t offset, ftcclDataType_t type,
                        ftcclRedOp_t op, int nranks);
// buf[0..count) = rank's broadcast pattern.
void fillRawInput(void* buf, size_t count, ftcclDataType_t type, int rank);
// Number of elements of got[0..count) that differ bitwise from want; *first = the
// index of the first one (count when none).
size_t countMismatches(const void* got, const void* want, size_t count, ftcclDataType_t type,
                       size_t* first);
// Hex of element i's bits, most significant first ("3c00").
std::string elementHex(const void* buf, size_t i, ftcclDataType_t type);

}  // namespace ftperf
