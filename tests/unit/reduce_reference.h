// Shared by the tests of the typed reduction kernels (src/reduce), reduce_*_test.cc, one
// gtest binary: a reference for every dtype x op written independently of the kernels
// (its own fp16/bf16 rounding by nearest-value search), the values to feed both, and the
// builds to compare (reduce_reference.cc).
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "reduce/reduce.h"

namespace ftccl {
namespace reduce_test {

inline constexpr ftcclDataType_t kAllTypes[] = {
    ftcclInt8,   ftcclUint8,   ftcclInt32,   ftcclUint32,  ftcclInt64,
    ftcclUint64, ftcclFloat16, ftcclFloat32, ftcclFloat64, ftcclBfloat16};
inline constexpr ftcclRedOp_t kAllOps[] = {ftcclSum, ftcclProd, ftcclMax, ftcclMin, ftcclAvg};

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
inline uint32_t f32Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float f32FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint64_t f64Bits(double f) {
  uint64_t u;
  std::memcpy(&u, &f, 8);
  return u;
}

// ---------------------------------------------------------------------------------
// Reference fp16 / bf16 conversions, by definition (value search), not bit tricks.

// Value of a finite non-negative half bit pattern (0..0x7bff).
double refHalfValue(uint32_t h);
float refHalfToFloat(uint16_t h);  // a NaN comes back as a quiet NaN, sign not kept
// Round to nearest, ties to the even pattern; |v| >= 65520 overflows to inf. Not NaN.
uint16_t refFloatToHalf(float f);
// Round to nearest-even among the two bf16 neighbours, measured in double. Not NaN.
uint16_t refFloatToBf16(float f);
float refBf16ToFloat(uint16_t h);

// ---------------------------------------------------------------------------------
// Reference element operations.

// a (op) b in fp16, through float; a NaN result is the canonical 0x7e00.
uint16_t refHalfOp(ftcclRedOp_t op, uint16_t a, uint16_t b);
// out = a (op) b for one element of `type`, raw bytes.
void refElem(ftcclDataType_t type, ftcclRedOp_t op, const uint8_t* a, const uint8_t* b,
             uint8_t* out);
// data / divisor for one element: integers truncate toward 0 then wrap.
void refDivElem(ftcclDataType_t type, const uint8_t* in, int divisor, uint8_t* out);

// Bitwise equality, except that float32/64 NaNs match any quiet NaN (which NaN an
// IEEE op returns is not specified); fp16/bf16 NaNs must be the canonical pattern.
::testing::AssertionResult sameElem(ftcclDataType_t type, const uint8_t* want, const uint8_t* got);

// ---------------------------------------------------------------------------------
// Value generation: random bit patterns, small "nice" values (so that ties, equal
// values and exact results are frequent), and per-type edge values.

std::vector<uint64_t> edgeBits(ftcclDataType_t type);
void fillValue(ftcclDataType_t type, std::mt19937_64& rng, uint8_t* out);

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

using ReduceFn = void (*)(void*, const void*, const void*, size_t, ftcclDataType_t, ftcclRedOp_t);
using DivideFn = void (*)(void*, size_t, ftcclDataType_t, int);

// ftccl::reduce (the widest build the CPU has) and every build the CPU can run.
using reduce_detail::Isa;
struct Impl {
  const char* name;
  ReduceFn reduce;
  DivideFn divide;
};

std::vector<Impl> impls();

}  // namespace reduce_test
}  // namespace ftccl
