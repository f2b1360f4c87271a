// Typed element-wise reduction kernels (see reduce.h for the contract): the names and
// the dispatch to the instruction-set builds.
//
// The kernels are built once per instruction set, each in its own translation unit
// compiled with its own target flags (CMakeLists.txt): reduce_baseline.cc for every
// CPU, reduce_avx2.cc (AVX2 + F16C) and reduce_avx512.cc (F, BW, DQ, VL) on x86, over
// the portable loops of reduce_kernels.h. The widest build the CPU has is chosen here
// at run time; all builds are bit-identical. divideBy with divisor 0 leaves the data
// unchanged.
#include "reduce/reduce.h"

#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "reduce/reduce_isa.h"

// Set by CMakeLists.txt where it builds reduce_avx2.cc and reduce_avx512.cc.
#ifndef FTCCL_REDUCE_X86
#define FTCCL_REDUCE_X86 0
#endif
#if FTCCL_REDUCE_X86
#include <cpuid.h>
#endif

namespace ftccl {
namespace reduce_detail {

namespace {

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

}  // namespace

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

// Off x86 every isa is the baseline build (cpuHas is false for the others there).
void reduceWith(Isa isa, void* dst, const void* a, const void* b, size_t count,
                ftcclDataType_t type, ftcclRedOp_t op) {
  if (count == 0 || !isValidRedOp(op)) return;
  switch (isa) {
#if FTCCL_REDUCE_X86
    case Isa::kAvx512:
      avx512::reduce(dst, a, b, count, type, op);
      break;
    case Isa::kAvx2:
      avx2::reduce(dst, a, b, count, type, op);
      break;
#endif
    default:
      baseline::reduce(dst, a, b, count, type, op);
      break;
  }
}

void divideByWith(Isa isa, void* data, size_t count, ftcclDataType_t type, int divisor) {
  if (count == 0 || divisor == 0) return;  // a zero divisor is a caller bug: leave data
  switch (isa) {
#if FTCCL_REDUCE_X86
    case Isa::kAvx512:
      avx512::divideBy(data, count, type, divisor);
      break;
    case Isa::kAvx2:
      avx2::divideBy(data, count, type, divisor);
      break;
#endif
    default:
      baseline::divideBy(data, count, type, divisor);
      break;
  }
}

}  // namespace reduce_detail

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
