// Typed element-wise reduction kernels: every ftcclDataType_t x ftcclRedOp_t.
//
// Semantics (DESIGN.md section 2): integers wrap (two's complement), integer Avg is
// the wrapped sum divided by nranks truncated toward 0; fp16/bf16 are widened to
// float, combined, and rounded to nearest-even once per call; NaN in -> NaN out;
// Max/Min order -0 below +0. Results depend only on the inputs (no run-to-run drift).
#pragma once

#include <cstddef>

#include "ftccl.h"

namespace ftccl {

// 0 for an invalid type. Inline: every op asks it several times.
inline size_t dataTypeSize(ftcclDataType_t type) {
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
const char* dataTypeName(ftcclDataType_t type);  // nccl-tests names: "float", "half", ...
const char* redOpName(ftcclRedOp_t op);          // "sum", "prod", "max", "min", "avg"
bool isValidDataType(int type);
bool isValidRedOp(int op);

// dst[i] = a[i] (op) b[i] for i < count. dst may alias a or b (exactly, not partially).
// ftcclAvg combines like ftcclSum; finish it with divideBy() once all ranks are in.
void reduce(void* dst, const void* a, const void* b, size_t count, ftcclDataType_t type,
            ftcclRedOp_t op);

// data[i] = data[i] / divisor (integers truncate toward 0; fp16/bf16 in float, rounded once).
void divideBy(void* data, size_t count, ftcclDataType_t type, int divisor);

// dst = src (`bytes`, not overlapping) with stores that bypass the cache, for outputs
// far larger than the cache that the caller will not read back soon: a plain copy's
// stores first read every destination line into the cache. Ordered before any later
// store (a flag may follow at once).
void copyStreaming(void* dst, const void* src, size_t bytes);

// Instruction-set builds of every kernel, for tests and benchmarks. reduce()/divideBy()
// use the widest build the CPU supports: AVX-512 (F, BW, DQ, VL with F16C), else AVX2
// with F16C, else the baseline (portable fp16 conversions). All builds give the same
// bits, and each is callable directly so that every build present is tested.
namespace reduce_detail {
enum class Isa { kBaseline, kAvx2, kAvx512 };
const char* isaName(Isa isa);  // "baseline", "avx2", "avx512"
bool parseIsa(const char* name, Isa* isa);
bool cpuHas(Isa isa);
Isa bestIsa();  // what reduce()/divideBy() use: the widest the CPU has, FTCCL_REDUCE_ISA caps it
// Callers must pass an isa the CPU has (cpuHas); the baseline always is.
void reduceWith(Isa isa, void* dst, const void* a, const void* b, size_t count,
                ftcclDataType_t type, ftcclRedOp_t op);
void divideByWith(Isa isa, void* data, size_t count, ftcclDataType_t type, int divisor);
}  // namespace reduce_detail

}  // namespace ftccl
