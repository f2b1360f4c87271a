// Portable IEEE binary16 (fp16) and bfloat16 conversions, bit-exact with x86 F16C.
//
// halfToFloat/floatToHalf give the same bits as VCVTPH2PS / VCVTPS2PH with
// _MM_FROUND_TO_NEAREST_INT for every input, NaNs included (a NaN becomes quiet and
// keeps the top of its payload). bf16 rounds to nearest-even and never turns a NaN
// into an infinity. None of these depend on MXCSR (rounding mode, FTZ, DAZ).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "ftccl.h"

namespace ftccl {

inline uint32_t floatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float bitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// fp16 -> float, exact. A NaN comes back quiet (as F16C does).
inline float halfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return bitsToFloat(sign | 0x7f800000u | (mant << 13) | (mant ? 0x400000u : 0u));
  if (exp != 0) return bitsToFloat(sign | ((exp + 112u) << 23) | (mant << 13));
  if (mant == 0) return bitsToFloat(sign);
  // Subnormal: mant * 2^-24. Normalise with integer shifts (no FPU, so DAZ cannot bite).
  uint32_t e = 113;  // exponent of 2^-14 is 127-14
  uint32_t m = mant;
  while ((m & 0x400u) == 0) {
    m <<= 1;
    --e;
  }
  return bitsToFloat(sign | (e << 23) | ((m & 0x3ffu) << 13));
}

// float -> fp16, round to nearest-even; overflow gives +-inf; a NaN stays a quiet NaN.
inline uint16_t floatToHalf(float f) {
  const uint32_t x = floatBits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520: inf
  if (ax >= 0x38800000u) {                                              // >= 2^-14: normal
    const uint32_t r = ax + 0xfffu + ((ax >> 13) & 1u);
    return static_cast<uint16_t>(sign | ((r - (112u << 23)) >> 13));
  }
  const uint32_t e = ax >> 23;
  if (e < 102) return static_cast<uint16_t>(sign);  // < 2^-25: rounds to 0
  // Subnormal result in units of 2^-24: m * 2^(e-126), shift in [14, 24].
  const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - e;
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1u);
  const uint32_t halfway = 1u << (shift - 1u);
  if (rem > halfway || (rem == halfway && (q & 1u))) ++q;
  return static_cast<uint16_t>(sign | q);
}

// bf16 -> float, exact (NaNs keep their bits).
inline float bf16ToFloat(uint16_t h) { return bitsToFloat(static_cast<uint32_t>(h) << 16); }

// float -> bf16, round to nearest-even; a NaN stays a NaN (made quiet, sign and top
// payload kept) instead of carrying into the exponent.
inline uint16_t floatToBf16(float f) {
  const uint32_t x = floatBits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x0040u);
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

// Canonical quiet NaNs that the fp16/bf16 kernels produce for every NaN result, so that
// the F16C and portable paths (and any compiler's choice of NaN operand) agree.
constexpr uint16_t kHalfCanonicalNaN = 0x7e00;
constexpr uint16_t kBf16CanonicalNaN = 0x7fc0;

}  // namespace ftccl
