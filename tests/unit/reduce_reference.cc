// The reference of reduce_reference.h, and the builds under test.
#include "reduce_reference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "reduce/half.h"
#include "reduce/reduce.h"

namespace ftccl {
namespace reduce_test {
namespace {

template <typename T>
T refIntOp(ftcclRedOp_t op, T a, T b) {
  const uint64_t ua = static_cast<uint64_t>(a), ub = static_cast<uint64_t>(b);
  switch (op) {
    case ftcclSum:
    case ftcclAvg:
      return static_cast<T>(ua + ub);
    case ftcclProd:
      return static_cast<T>(ua * ub);
    case ftcclMax:
      return a > b ? a : b;
    case ftcclMin:
      return a < b ? a : b;
    default:
      return 0;
  }
}

template <typename F>
F refFloatOp(ftcclRedOp_t op, F a, F b) {
  switch (op) {
    case ftcclSum:
    case ftcclAvg:
      return a + b;
    case ftcclProd:
      return a * b;
    case ftcclMax:
      if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<F>::quiet_NaN();
      if (a == 0 && b == 0) return (std::signbit(a) && std::signbit(b)) ? F(-0.0) : F(0.0);
      return a > b ? a : b;
    case ftcclMin:
      if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<F>::quiet_NaN();
      if (a == 0 && b == 0) return (std::signbit(a) || std::signbit(b)) ? F(-0.0) : F(0.0);
      return a < b ? a : b;
    default:
      return 0;
  }
}

uint16_t refBf16Op(ftcclRedOp_t op, uint16_t a, uint16_t b) {
  const float r = refFloatOp<float>(op, refBf16ToFloat(a), refBf16ToFloat(b));
  return std::isnan(r) ? 0x7fc0 : refFloatToBf16(r);
}

std::string hexStr(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

template <Isa kIsa>
Impl implOf() {
  return {ftccl::reduce_detail::isaName(kIsa),
          [](void* d, const void* a, const void* b, size_t n, ftcclDataType_t t, ftcclRedOp_t o) {
            ftccl::reduce_detail::reduceWith(kIsa, d, a, b, n, t, o);
          },
          [](void* d, size_t n, ftcclDataType_t t, int divisor) {
            ftccl::reduce_detail::divideByWith(kIsa, d, n, t, divisor);
          }};
}

}  // namespace

double refHalfValue(uint32_t h) {
  if (h < 0x400) return std::ldexp(static_cast<double>(h), -24);
  return std::ldexp(static_cast<double>(1024 + (h & 0x3ff)), static_cast<int>(h >> 10) - 25);
}

float refHalfToFloat(uint16_t h) {
  const bool neg = (h & 0x8000) != 0;
  const uint32_t mag = h & 0x7fff;
  double v;
  if (mag == 0x7c00) {
    v = std::numeric_limits<double>::infinity();
  } else if (mag > 0x7c00) {
    return std::numeric_limits<float>::quiet_NaN();  // callers only check isnan
  } else {
    v = refHalfValue(mag);
  }
  return static_cast<float>(neg ? -v : v);
}

uint16_t refFloatToHalf(float f) {
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double v = std::fabs(static_cast<double>(f));
  if (v >= 65520.0) return sign | 0x7c00;
  uint32_t lo = 0, hi = 0x7bff;  // largest pattern with value <= v
  while (lo < hi) {
    const uint32_t mid = (lo + hi + 1) / 2;
    if (refHalfValue(mid) <= v)
      lo = mid;
    else
      hi = mid - 1;
  }
  if (lo == 0x7bff) return sign | 0x7bff;
  const double below = v - refHalfValue(lo);
  const double above = refHalfValue(lo + 1) - v;
  uint32_t h = lo;
  if (above < below || (above == below && (lo & 1))) h = lo + 1;
  return static_cast<uint16_t>(sign | h);
}

uint16_t refFloatToBf16(float f) {
  const uint32_t u = f32Bits(f);
  if ((u & 0x7fffffff) == 0x7f800000) return static_cast<uint16_t>(u >> 16);
  const uint32_t lo = u & 0xffff0000u;
  const double v = std::fabs(static_cast<double>(f));
  const double vlo = std::fabs(static_cast<double>(f32FromBits(lo)));
  const double vhi = (lo & 0x7fffffffu) == 0x7f7f0000u
                         ? std::ldexp(1.0, 128)
                         : std::fabs(static_cast<double>(f32FromBits(lo + 0x10000u)));
  const double below = v - vlo, above = vhi - v;
  uint32_t r = lo >> 16;
  if (above < below || (above == below && (r & 1))) r += 1;
  return static_cast<uint16_t>(r);
}

float refBf16ToFloat(uint16_t h) { return f32FromBits(static_cast<uint32_t>(h) << 16); }

uint16_t refHalfOp(ftcclRedOp_t op, uint16_t a, uint16_t b) {
  const float r = refFloatOp<float>(op, refHalfToFloat(a), refHalfToFloat(b));
  return std::isnan(r) ? 0x7e00 : refFloatToHalf(r);
}

void refElem(ftcclDataType_t type, ftcclRedOp_t op, const uint8_t* a, const uint8_t* b,
             uint8_t* out) {
  switch (type) {
#define INT_CASE(E, T)                                                  \
  case E:                                                               \
    toBytes<T>(out, refIntOp<T>(op, fromBytes<T>(a), fromBytes<T>(b))); \
    break;
    INT_CASE(ftcclInt8, int8_t)
    INT_CASE(ftcclUint8, uint8_t)
    INT_CASE(ftcclInt32, int32_t)
    INT_CASE(ftcclUint32, uint32_t)
    INT_CASE(ftcclInt64, int64_t)
    INT_CASE(ftcclUint64, uint64_t)
#undef INT_CASE
    case ftcclFloat32:
      toBytes<float>(out, refFloatOp<float>(op, fromBytes<float>(a), fromBytes<float>(b)));
      break;
    case ftcclFloat64:
      toBytes<double>(out, refFloatOp<double>(op, fromBytes<double>(a), fromBytes<double>(b)));
      break;
    case ftcclFloat16:
      toBytes<uint16_t>(out, refHalfOp(op, fromBytes<uint16_t>(a), fromBytes<uint16_t>(b)));
      break;
    case ftcclBfloat16:
      toBytes<uint16_t>(out, refBf16Op(op, fromBytes<uint16_t>(a), fromBytes<uint16_t>(b)));
      break;
    default:
      break;
  }
}

void refDivElem(ftcclDataType_t type, const uint8_t* in, int divisor, uint8_t* out) {
  switch (type) {
#define INT_CASE(E, T)                                                                         \
  case E: {                                                                                    \
    const __int128 q = static_cast<__int128>(fromBytes<T>(in)) / divisor;                      \
    toBytes<T>(out, static_cast<T>(static_cast<uint64_t>(static_cast<unsigned __int128>(q)))); \
    break;                                                                                     \
  }
    INT_CASE(ftcclInt8, int8_t)
    INT_CASE(ftcclUint8, uint8_t)
    INT_CASE(ftcclInt32, int32_t)
    INT_CASE(ftcclUint32, uint32_t)
    INT_CASE(ftcclInt64, int64_t)
    INT_CASE(ftcclUint64, uint64_t)
#undef INT_CASE
    case ftcclFloat32:
      toBytes<float>(out, fromBytes<float>(in) / static_cast<float>(divisor));
      break;
    case ftcclFloat64:
      toBytes<double>(out, fromBytes<double>(in) / static_cast<double>(divisor));
      break;
    case ftcclFloat16: {
      const float r = refHalfToFloat(fromBytes<uint16_t>(in)) / static_cast<float>(divisor);
      toBytes<uint16_t>(out, std::isnan(r) ? uint16_t{0x7e00} : refFloatToHalf(r));
      break;
    }
    case ftcclBfloat16: {
      const float r = refBf16ToFloat(fromBytes<uint16_t>(in)) / static_cast<float>(divisor);
      toBytes<uint16_t>(out, std::isnan(r) ? uint16_t{0x7fc0} : refFloatToBf16(r));
      break;
    }
    default:
      break;
  }
}

::testing::AssertionResult sameElem(ftcclDataType_t type, const uint8_t* want, const uint8_t* got) {
  const size_t size = dataTypeSize(type);
  if (type == ftcclFloat32) {
    const float w = fromBytes<float>(want), g = fromBytes<float>(got);
    if (std::isnan(w)) {
      if (std::isnan(g) && (f32Bits(g) & 0x400000u)) return ::testing::AssertionSuccess();
      return ::testing::AssertionFailure() << "want quiet NaN, got bits " << hexStr(f32Bits(g));
    }
  } else if (type == ftcclFloat64) {
    const double w = fromBytes<double>(want), g = fromBytes<double>(got);
    if (std::isnan(w)) {
      if (std::isnan(g) && (f64Bits(g) & (uint64_t{1} << 51))) return ::testing::AssertionSuccess();
      return ::testing::AssertionFailure() << "want quiet NaN, got bits " << hexStr(f64Bits(g));
    }
  }
  if (std::memcmp(want, got, size) == 0) return ::testing::AssertionSuccess();
  uint64_t w = 0, g = 0;
  std::memcpy(&w, want, size);
  std::memcpy(&g, got, size);
  return ::testing::AssertionFailure() << "want bits " << hexStr(w) << ", got " << hexStr(g);
}

std::vector<uint64_t> edgeBits(ftcclDataType_t type) {
  switch (type) {
    case ftcclInt8:
    case ftcclUint8:
      return {0, 1, 2, 0x7f, 0x80, 0x81, 0xff, 0xfe, 0x10};
    case ftcclInt32:
    case ftcclUint32:
      return {0, 1, 2, 0x7fffffff, 0x80000000, 0x80000001, 0xffffffff, 0xfffffffe, 0x10000};
    case ftcclInt64:
    case ftcclUint64:
      return {0,
              1,
              2,
              0x7fffffffffffffff,
              0x8000000000000000,
              0x8000000000000001,
              ~uint64_t{0},
              ~uint64_t{1},
              uint64_t{1} << 32};
    case ftcclFloat16:  // 0, -0, 1, -1, inf, -inf, qNaN, sNaN, -NaN, min subnormals,
                        // max subnormal, min normal, max, 2^-11, 1+ulp, 0.5, ~1/3
      return {0x0000, 0x8000, 0x3c00, 0xbc00, 0x7c00, 0xfc00, 0x7e00, 0x7c01, 0xfe01, 0x0001,
              0x8001, 0x03ff, 0x0400, 0x7bff, 0xfbff, 0x1000, 0x3c01, 0x3800, 0x3555};
    case ftcclBfloat16:
      return {0x0000, 0x8000, 0x3f80, 0xbf80, 0x7f80, 0xff80, 0x7fc0, 0x7f81, 0xffff, 0x0001,
              0x8001, 0x007f, 0x0080, 0x7f7f, 0xff7f, 0x3b80, 0x3f81, 0x3f00, 0x3eab};
    case ftcclFloat32:
      return {f32Bits(0.0f), f32Bits(-0.0f), f32Bits(1.0f), f32Bits(-1.0f), 0x7f800000,
              0xff800000,    0x7fc00000,     0x7f800001,    0xffc12345,     0x00000001,
              0x80000001,    0x007fffff,     0x00800000,    0x7f7fffff,     0xff7fffff,
              f32Bits(0.5f), f32Bits(3.0f)};
    case ftcclFloat64:
      return {f64Bits(0.0),       f64Bits(-0.0),      f64Bits(1.0),       f64Bits(-1.0),
              0x7ff0000000000000, 0xfff0000000000000, 0x7ff8000000000000, 0x7ff0000000000001,
              0xfff8000000abcdef, 0x0000000000000001, 0x8000000000000001, 0x000fffffffffffff,
              0x0010000000000000, 0x7fefffffffffffff, 0xffefffffffffffff, f64Bits(0.5),
              f64Bits(3.0)};
    default:
      return {};
  }
}

void fillValue(ftcclDataType_t type, std::mt19937_64& rng, uint8_t* out) {
  const size_t size = dataTypeSize(type);
  const unsigned kind = rng() % 8;
  uint64_t bits = rng();
  if (kind == 0) {  // edge value
    const std::vector<uint64_t> edges = edgeBits(type);
    bits = edges[rng() % edges.size()];
  } else if (kind <= 3) {  // small value: -8..8 in steps of 1/4 (floats) or 1 (ints)
    const int64_t small = static_cast<int64_t>(rng() % 33) - 16;
    switch (type) {
      case ftcclFloat16:
        bits = ftccl::floatToHalf(static_cast<float>(small) / 4.0f);
        break;
      case ftcclBfloat16:
        bits = ftccl::floatToBf16(static_cast<float>(small) / 4.0f);
        break;
      case ftcclFloat32:
        bits = f32Bits(static_cast<float>(small) / 4.0f);
        break;
      case ftcclFloat64:
        bits = f64Bits(static_cast<double>(small) / 4.0);
        break;
      default:
        bits = static_cast<uint64_t>(small);
        break;
    }
  }
  std::memcpy(out, &bits, size);  // little-endian: the low bytes
}

std::vector<Impl> impls() {
  std::vector<Impl> list{{"dispatched", ftccl::reduce, ftccl::divideBy}, implOf<Isa::kBaseline>()};
  if (ftccl::reduce_detail::cpuHas(Isa::kAvx2)) list.push_back(implOf<Isa::kAvx2>());
  if (ftccl::reduce_detail::cpuHas(Isa::kAvx512)) list.push_back(implOf<Isa::kAvx512>());
  return list;
}

}  // namespace reduce_test
}  // namespace ftccl
