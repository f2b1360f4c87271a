// The data of the perf tools' buffers; see perf_types.h.
#include "perf_types.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace ftperf {

// =================================================================================
// fp16 / bf16
// =================================================================================
uint16_t floatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) {  // NaN: quiet, keep the top payload bits
    return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x03ffu));
  }
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520: Inf
  if (a >= 0x38800000u) {                                              // normal half (>= 2^-14)
    uint32_t h = (a - 0x38000000u) >> 13;  // rebias 127 -> 15, drop 13 mantissa bits
    const uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // may carry into exponent
    return static_cast<uint16_t>(sign | h);
  }
  if (a <= 0x33000000u) return sign;  // <= 2^-25: rounds (ties to even) to 0
  // Subnormal half: units of 2^-24. value = m * 2^(e-150), so m >> (126 - e).
  const uint32_t e = a >> 23;
  const uint32_t m = (a & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - e;  // 14..24
  uint32_t h = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1u);
  const uint32_t halfway = 1u << (shift - 1u);
  if (rem > halfway || (rem == halfway && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

float halfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  uint32_t x;
  if (exp == 0) {
    if (man == 0) {
      x = sign;
    } else {  // subnormal: man * 2^-24, exact in float
      float f = std::ldexp(static_cast<float>(man), -24);
      std::memcpy(&x, &f, sizeof x);
      x |= sign;
    }
  } else if (exp == 0x1f) {
    x = sign | 0x7f800000u | (man << 13);
  } else {
    x = sign | ((exp + 112u) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &x, sizeof f);
  return f;
}

uint16_t floatToBf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x0040u);
  const uint32_t bias = 0x7fffu + ((x >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>((x + bias) >> 16);
}

float bf16ToFloat(uint16_t b) {
  const uint32_t x = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &x, sizeof f);
  return f;
}
// =================================================================================
// Types and ops
// =================================================================================
size_t typeSize(ftcclDataType_t type) {
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

const char* typeName(ftcclDataType_t type) {
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
      return "?";
  }
}

const char* opName(ftcclRedOp_t op) {
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
      return "?";
  }
}
// =================================================================================
// Patterns, fill and check
// =================================================================================
ReducePattern::ReducePattern(ftcclRedOp_t op, int rank, int nranks)
    : op_(op),
      rank_(rank),
      intKey_(patternKey(kStreamInt, static_cast<uint64_t>(rank))),
      sumVKey_(patternKey(kStreamSumV, 0)),
      sumDKey_(patternKey(kStreamSumD, static_cast<uint64_t>(rank / 2))),
      twoKey_(patternKey(kStreamProdTwo, 0)),
      signKey_(patternKey(kStreamProdSign, static_cast<uint64_t>(rank))),
      maxMinKey_(patternKey(kStreamMaxMin, static_cast<uint64_t>(rank))) {
  const int n = std::max(nranks, 1);
  k_ = static_cast<uint64_t>(std::min(8, std::max(1, 100 / n)));
  paired_ = !(n % 2 == 1 && rank == n - 1);
  twoPeriod_ = static_cast<uint64_t>(std::max(3, (n + 7) / 8));
}

void fillReduceInput(void* buf, size_t count, ftcclDataType_t type, ftcclRedOp_t op, int rank,
                     int nranks) {
  const ReducePattern p(op, rank, nranks);
  withType(type, [&](auto tag) {
    using T = decltype(tag);
    T* out = static_cast<T*>(buf);
    for (size_t i = 0; i < count; ++i) out[i] = reduceInput<T>(p, i);
  });
}

void fillReduceExpected(void* buf, size_t count, size_t offset, ftcclDataType_t type,
                        ftcclRedOp_t op, int nranks) {
  withType(type, [&](auto tag) {
    using T = decltype(tag);
    T* out = static_cast<T*>(buf);
    const ReducePattern first(op, 0, nranks);
    for (size_t i = 0; i < count; ++i) out[i] = reduceInput<T>(first, offset + i);
    for (int r = 1; r < nranks; ++r) {
      const ReducePattern p(op, r, nranks);
      for (size_t i = 0; i < count; ++i) {
        out[i] = refCombine<T>(op, out[i], reduceInput<T>(p, offset + i));
      }
    }
    if (op == ftcclAvg) {
      for (size_t i = 0; i < count; ++i) out[i] = refAvgFinish<T>(out[i], nranks);
    }
  });
}

void fillRawInput(void* buf, size_t count, ftcclDataType_t type, int rank) {
  const uint64_t key = patternKey(kStreamRaw, static_cast<uint64_t>(rank));
  withType(type, [&](auto tag) {
    using T = decltype(tag);
    T* out = static_cast<T*>(buf);
    for (size_t i = 0; i < count; ++i) out[i] = fromRawBits<T>(patternAt(key, i));
  });
}

namespace {
template <class W>
size_t countMismatchesAs(const void* got, const void* want, size_t count, size_t* first) {
  const W* g = static_cast<const W*>(got);
  const W* w = static_cast<const W*>(want);
  size_t wrong = 0;
  *first = count;
  for (size_t i = 0; i < count; ++i) {
    if (g[i] != w[i]) {
      if (wrong == 0) *first = i;
      ++wrong;
    }
  }
  return wrong;
}
}  // namespace

size_t countMismatches(const void* got, const void* want, size_t count, ftcclDataType_t type,
                       size_t* first) {
  switch (typeSize(type)) {
    case 1:
      return countMismatchesAs<uint8_t>(got, want, count, first);
    case 2:
      return countMismatchesAs<uint16_t>(got, want, count, first);
    case 4:
      return countMismatchesAs<uint32_t>(got, want, count, first);
    case 8:
      return countMismatchesAs<uint64_t>(got, want, count, first);
    default:
      *first = count;
      return 0;
  }
}

std::string elementHex(const void* buf, size_t i, ftcclDataType_t type) {
  const size_t size = typeSize(type);
  const unsigned char* p = static_cast<const unsigned char*>(buf) + i * size;
  uint64_t v = 0;
  for (size_t b = 0; b < size; ++b) v |= static_cast<uint64_t>(p[b]) << (8 * b);  // little endian
  char text[32];
  std::snprintf(text, sizeof text, "%0*llx", static_cast<int>(2 * size),
                static_cast<unsigned long long>(v));
  return text;
}

}  // namespace ftperf
