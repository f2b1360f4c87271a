// Unit tests for the typed reduction kernels (src/reduce).
//
// Every dtype x op is compared bit for bit with a straightforward reference written
// independently of the kernels (its own fp16/bf16 rounding by nearest-value search),
// on random and edge values, for every aliasing shape, odd counts and unaligned
// pointers. Hand-written expectations pin down the edge semantics (wrap-around,
// INT_MIN/-1, rounding ties, NaN, -0), and on CPUs with F16C the vector fp16 path is
// checked against the portable one and against the hardware conversions.
#include "reduce/reduce.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "reduce/half.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define REDUCE_TEST_X86 1
#else
#define REDUCE_TEST_X86 0
#endif

namespace {

using ftccl::dataTypeSize;

const ftcclDataType_t kAllTypes[] = {ftcclInt8,    ftcclUint8,   ftcclInt32,   ftcclUint32,
                                     ftcclInt64,   ftcclUint64,  ftcclFloat16, ftcclFloat32,
                                     ftcclFloat64, ftcclBfloat16};
const ftcclRedOp_t kAllOps[] = {ftcclSum, ftcclProd, ftcclMax, ftcclMin, ftcclAvg};

template <typename T>
T fromBytes(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename T>
void toBytes(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof v);
}
uint32_t f32Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float f32FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint64_t f64Bits(double f) {
  uint64_t u;
  std::memcpy(&u, &f, 8);
  return u;
}

// ---------------------------------------------------------------------------------
// Reference fp16 / bf16 conversions, by definition (value search), not bit tricks.

// Value of a finite non-negative half bit pattern (0..0x7bff).
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

// Round to nearest, ties to the even pattern; |v| >= 65520 overflows to inf. Not NaN.
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

// Round to nearest-even among the two bf16 neighbours, measured in double. Not NaN.
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

// ---------------------------------------------------------------------------------
// Reference element operations.

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

uint16_t refHalfOp(ftcclRedOp_t op, uint16_t a, uint16_t b) {
  const float r = refFloatOp<float>(op, refHalfToFloat(a), refHalfToFloat(b));
  return std::isnan(r) ? 0x7e00 : refFloatToHalf(r);
}

uint16_t refBf16Op(ftcclRedOp_t op, uint16_t a, uint16_t b) {
  const float r = refFloatOp<float>(op, refBf16ToFloat(a), refBf16ToFloat(b));
  return std::isnan(r) ? 0x7fc0 : refFloatToBf16(r);
}

// out = a (op) b for one element of `type`, raw bytes.
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

// data / divisor for one element: integers truncate toward 0 then wrap.
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

std::string hexStr(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// Bitwise equality, except that float32/64 NaNs match any quiet NaN (which NaN an
// IEEE op returns is not specified); fp16/bf16 NaNs must be the canonical pattern.
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

// ---------------------------------------------------------------------------------
// Value generation: random bit patterns, small "nice" values (so that ties, equal
// values and exact results are frequent), and per-type edge values.

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

// An aligned buffer with room for an offset and guard elements on both sides.
struct Buffer {
  static constexpr size_t kGuard = 4;
  Buffer(size_t count, size_t elemSize, size_t offsetElems)
      : size(elemSize), storage((count + 2 * kGuard + offsetElems) * elemSize + 64, 0xa5) {
    uintptr_t base = reinterpret_cast<uintptr_t>(storage.data());
    base = (base + 63) & ~uintptr_t{63};
    data = reinterpret_cast<uint8_t*>(base) + (kGuard + offsetElems) * elemSize;
    n = count;
  }
  uint8_t* at(size_t i) { return data + i * size; }
  bool guardsIntact() const {
    for (size_t i = 0; i < kGuard * size; ++i) {
      if (data[-1 - static_cast<ptrdiff_t>(i)] != 0xa5) return false;
      if (data[n * size + i] != 0xa5) return false;
    }
    return true;
  }
  size_t size;
  std::vector<uint8_t> storage;
  uint8_t* data;
  size_t n;
};

const size_t kCounts[] = {1,  2,  3,  7,  8,  9,   15,   16,   17,  31,
                          32, 33, 63, 64, 65, 127, 1000, 1001, 4099};

enum class Alias { kNone, kDstIsA, kDstIsB, kAll };
const char* aliasName(Alias a) {
  switch (a) {
    case Alias::kNone:
      return "distinct";
    case Alias::kDstIsA:
      return "dst==a";
    case Alias::kDstIsB:
      return "dst==b";
    case Alias::kAll:
      return "dst==a==b";
  }
  return "?";
}

using ReduceFn = void (*)(void*, const void*, const void*, size_t, ftcclDataType_t, ftcclRedOp_t);
using DivideFn = void (*)(void*, size_t, ftcclDataType_t, int);

// ftccl::reduce (the widest build the CPU has) and every build the CPU can run.
using ftccl::reduce_detail::Isa;
struct Impl {
  const char* name;
  ReduceFn reduce;
  DivideFn divide;
};

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

std::vector<Impl> impls() {
  std::vector<Impl> list{{"dispatched", ftccl::reduce, ftccl::divideBy}, implOf<Isa::kBaseline>()};
  if (ftccl::reduce_detail::cpuHas(Isa::kAvx2)) list.push_back(implOf<Isa::kAvx2>());
  if (ftccl::reduce_detail::cpuHas(Isa::kAvx512)) list.push_back(implOf<Isa::kAvx512>());
  return list;
}

// Runs `impl` in every aliasing shape and compares each element with refElem.
void checkReduce(const Impl& impl, ftcclDataType_t type, ftcclRedOp_t op, size_t count,
                 size_t offset, std::mt19937_64& rng) {
  const size_t size = dataTypeSize(type);
  Buffer a(count, size, offset), b(count, size, offset);
  for (size_t i = 0; i < count; ++i) {
    fillValue(type, rng, a.at(i));
    fillValue(type, rng, b.at(i));
  }
  for (Alias alias : {Alias::kNone, Alias::kDstIsA, Alias::kDstIsB, Alias::kAll}) {
    Buffer d(count, size, offset);
    const uint8_t* pa = a.data;
    const uint8_t* pb = b.data;
    switch (alias) {
      case Alias::kNone:
        std::memset(d.data, 0x5a, count * size);
        break;
      case Alias::kDstIsA:
        std::memcpy(d.data, a.data, count * size);
        pa = d.data;
        break;
      case Alias::kDstIsB:
        std::memcpy(d.data, b.data, count * size);
        pb = d.data;
        break;
      case Alias::kAll:
        std::memcpy(d.data, a.data, count * size);
        pa = pb = d.data;
        break;
    }
    impl.reduce(d.data, pa, pb, count, type, op);
    ASSERT_TRUE(d.guardsIntact()) << impl.name << " " << aliasName(alias) << " count " << count;
    std::vector<uint8_t> want(size);
    for (size_t i = 0; i < count; ++i) {
      refElem(type, op, a.at(i), alias == Alias::kAll ? a.at(i) : b.at(i), want.data());
      ASSERT_TRUE(sameElem(type, want.data(), d.at(i)))
          << impl.name << " " << ftccl::dataTypeName(type) << " " << ftccl::redOpName(op) << " "
          << aliasName(alias) << " count " << count << " offset " << offset << " at " << i;
    }
  }
}

// ---------------------------------------------------------------------------------
// Every dtype x op against the reference.

class ReduceTypeOp : public ::testing::TestWithParam<std::tuple<ftcclDataType_t, ftcclRedOp_t>> {};

TEST_P(ReduceTypeOp, MatchesReferenceForAllShapes) {
  const ftcclDataType_t type = std::get<0>(GetParam());
  const ftcclRedOp_t op = std::get<1>(GetParam());
  for (const Impl& impl : impls()) {
    std::mt19937_64 rng(1234 + 17 * type + op);
    for (size_t count : kCounts) {
      for (size_t offset : {0, 1}) {
        checkReduce(impl, type, op, count, offset, rng);
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST_P(ReduceTypeOp, EdgeValuesAllPairs) {
  const ftcclDataType_t type = std::get<0>(GetParam());
  const ftcclRedOp_t op = std::get<1>(GetParam());
  const size_t size = dataTypeSize(type);
  const std::vector<uint64_t> edges = edgeBits(type);
  const size_t n = edges.size() * edges.size();
  std::vector<uint8_t> a(n * size), b(n * size), d(n * size), want(size);
  for (size_t i = 0; i < edges.size(); ++i) {
    for (size_t j = 0; j < edges.size(); ++j) {
      std::memcpy(&a[(i * edges.size() + j) * size], &edges[i], size);
      std::memcpy(&b[(i * edges.size() + j) * size], &edges[j], size);
    }
  }
  for (const Impl& impl : impls()) {
    impl.reduce(d.data(), a.data(), b.data(), n, type, op);
    for (size_t k = 0; k < n; ++k) {
      refElem(type, op, &a[k * size], &b[k * size], want.data());
      ASSERT_TRUE(sameElem(type, want.data(), &d[k * size]))
          << impl.name << " " << ftccl::dataTypeName(type) << " " << ftccl::redOpName(op)
          << " pair " << k;
    }
  }
}

TEST_P(ReduceTypeOp, CountZeroTouchesNothing) {
  const ftcclDataType_t type = std::get<0>(GetParam());
  const ftcclRedOp_t op = std::get<1>(GetParam());
  uint8_t buf[16];
  std::memset(buf, 0x77, sizeof buf);
  for (const Impl& impl : impls()) {
    impl.reduce(buf, buf, buf, 0, type, op);
    impl.reduce(nullptr, nullptr, nullptr, 0, type, op);
  }
  for (uint8_t c : buf) EXPECT_EQ(c, 0x77);
}

INSTANTIATE_TEST_SUITE_P(AllTypesOps, ReduceTypeOp,
                         ::testing::Combine(::testing::ValuesIn(kAllTypes),
                                            ::testing::ValuesIn(kAllOps)),
                         [](const ::testing::TestParamInfo<ReduceTypeOp::ParamType>& info) {
                           return std::string(ftccl::dataTypeName(std::get<0>(info.param))) + "_" +
                                  ftccl::redOpName(std::get<1>(info.param));
                         });

// ---------------------------------------------------------------------------------
// divideBy for every dtype against the reference.

class DivideType : public ::testing::TestWithParam<ftcclDataType_t> {};

TEST_P(DivideType, MatchesReference) {
  const ftcclDataType_t type = GetParam();
  const size_t size = dataTypeSize(type);
  std::mt19937_64 rng(99 + type);
  const int divisors[] = {1, 2, 3, 4, 7, 8, 255, 256, 1000, -1, -2, -3, INT_MAX, INT_MIN};
  for (const Impl& impl : impls()) {
    for (int divisor : divisors) {
      for (size_t count : {size_t{1}, size_t{7}, size_t{16}, size_t{33}, size_t{1001}}) {
        for (size_t offset : {0, 1}) {
          Buffer in(count, size, offset), d(count, size, offset);
          for (size_t i = 0; i < count; ++i) fillValue(type, rng, in.at(i));
          std::memcpy(d.data, in.data, count * size);
          impl.divide(d.data, count, type, divisor);
          ASSERT_TRUE(d.guardsIntact());
          std::vector<uint8_t> want(size);
          for (size_t i = 0; i < count; ++i) {
            refDivElem(type, in.at(i), divisor, want.data());
            ASSERT_TRUE(sameElem(type, want.data(), d.at(i)))
                << impl.name << " " << ftccl::dataTypeName(type) << " / " << divisor << " count "
                << count << " offset " << offset << " at " << i;
          }
        }
      }
    }
  }
}

TEST_P(DivideType, EdgeValues) {
  const ftcclDataType_t type = GetParam();
  const size_t size = dataTypeSize(type);
  const std::vector<uint64_t> edges = edgeBits(type);
  for (const Impl& impl : impls()) {
    for (int divisor : {1, 2, 3, -1, -2, 6, INT_MIN, INT_MAX}) {
      std::vector<uint8_t> d(edges.size() * size), want(size);
      for (size_t i = 0; i < edges.size(); ++i) std::memcpy(&d[i * size], &edges[i], size);
      impl.divide(d.data(), edges.size(), type, divisor);
      for (size_t i = 0; i < edges.size(); ++i) {
        refDivElem(type, reinterpret_cast<const uint8_t*>(&edges[i]), divisor, want.data());
        ASSERT_TRUE(sameElem(type, want.data(), &d[i * size]))
            << impl.name << " " << ftccl::dataTypeName(type) << " edge " << i << " / " << divisor;
      }
    }
  }
}

TEST_P(DivideType, CountZeroAndDivisorZeroAreNoOps) {
  const ftcclDataType_t type = GetParam();
  uint8_t buf[32];
  std::memset(buf, 0x3c, sizeof buf);
  for (const Impl& impl : impls()) {
    impl.divide(buf, 0, type, 3);
    impl.divide(nullptr, 0, type, 3);
    impl.divide(buf, 2, type, 0);
  }
  for (uint8_t c : buf) EXPECT_EQ(c, 0x3c);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, DivideType, ::testing::ValuesIn(kAllTypes),
                         [](const ::testing::TestParamInfo<ftcclDataType_t>& info) {
                           return std::string(ftccl::dataTypeName(info.param));
                         });

// ---------------------------------------------------------------------------------
// Hand-written expectations: these do not go through the reference.

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

// Each vector build against the baseline build on arbitrary bit patterns (NaN payloads,
// infinities, subnormals included), every dtype and op, every aliasing shape and tail
// length (8/16 lanes, blocks of 16/32). Bit-identical except float32/64 NaN payloads.
class VectorBuild : public ::testing::TestWithParam<Isa> {};

TEST_P(VectorBuild, MatchesBaselineBuildBitForBit) {
  const Isa isa = GetParam();
  if (!ftccl::reduce_detail::cpuHas(isa))
    GTEST_SKIP() << "no " << ftccl::reduce_detail::isaName(isa) << " on this CPU";
  std::mt19937_64 rng(31337);
  for (ftcclDataType_t type : kAllTypes) {
    const size_t size = dataTypeSize(type);
    for (ftcclRedOp_t op : kAllOps) {
      for (size_t n :
           {size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{15}, size_t{16}, size_t{17},
            size_t{23}, size_t{24}, size_t{25}, size_t{31}, size_t{32}, size_t{33}, size_t{47},
            size_t{48}, size_t{49}, size_t{1000}, size_t{65537}}) {
        // Element 0 is never passed: pointers are offset by one element.
        std::vector<uint8_t> a((n + 1) * size), b((n + 1) * size);
        for (size_t i = 0; i <= n; ++i) {
          uint8_t* pa = &a[i * size];
          uint8_t* pb = &b[i * size];
          const unsigned kind = rng() % 8;
          if (kind < 4) {  // raw bits
            const uint64_t x = rng(), y = rng();
            std::memcpy(pa, &x, size);
            std::memcpy(pb, &y, size);
          } else {
            fillValue(type, rng, pa);
            fillValue(type, rng, pb);
          }
          if (kind == 7) std::memcpy(pb, pa, size);  // equal pairs
          if (kind == 6) {                           // +-x pairs, -0/+0 for floats
            std::memcpy(pb, pa, size);
            pb[size - 1] ^= 0x80;
          }
        }
        for (int alias = 0; alias < 3; ++alias) {
          std::vector<uint8_t> vec(alias == 2 ? b : a), base(vec);
          const uint8_t* va = alias == 1 ? vec.data() : a.data();
          const uint8_t* vb = alias == 2 ? vec.data() : b.data();
          const uint8_t* sa = alias == 1 ? base.data() : a.data();
          const uint8_t* sb = alias == 2 ? base.data() : b.data();
          ftccl::reduce_detail::reduceWith(isa, vec.data() + size, va + size, vb + size, n, type,
                                           op);
          ftccl::reduce_detail::reduceWith(Isa::kBaseline, base.data() + size, sa + size, sb + size,
                                           n, type, op);
          ASSERT_EQ(std::memcmp(base.data(), vec.data(), size), 0);  // element 0 untouched
          for (size_t i = 1; i <= n; ++i)
            ASSERT_TRUE(sameElem(type, &base[i * size], &vec[i * size]))
                << ftccl::dataTypeName(type) << " " << ftccl::redOpName(op) << " n " << n
                << " alias " << alias << " at " << i;
        }
      }
    }
    for (int divisor : {1, 2, 3, 7, -5, 1000, INT_MAX}) {
      for (size_t n : {size_t{1}, size_t{8}, size_t{13}, size_t{16}, size_t{29}, size_t{4097}}) {
        std::vector<uint8_t> vec(n * size), base;
        for (size_t i = 0; i < n; ++i) fillValue(type, rng, &vec[i * size]);
        base = vec;
        ftccl::reduce_detail::divideByWith(isa, vec.data(), n, type, divisor);
        ftccl::reduce_detail::divideByWith(Isa::kBaseline, base.data(), n, type, divisor);
        for (size_t i = 0; i < n; ++i)
          ASSERT_TRUE(sameElem(type, &base[i * size], &vec[i * size]))
              << ftccl::dataTypeName(type) << " / " << divisor << " n " << n << " at " << i;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, VectorBuild, ::testing::Values(Isa::kAvx2, Isa::kAvx512),
                         [](const ::testing::TestParamInfo<Isa>& info) {
                           return std::string(ftccl::reduce_detail::isaName(info.param));
                         });

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
