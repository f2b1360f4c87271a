// The entry points of each instruction-set build of the kernels, internal to src/reduce.
//
// Each namespace is one translation unit, reduce_<isa>.cc, compiled with that ISA's
// target flags (CMakeLists.txt): call one only on a CPU that has the ISA (cpuHas). The
// dispatch (reduce.cc) has already returned for count 0, an invalid op and divisor 0.
// The AVX builds exist on x86 only (FTCCL_REDUCE_X86).
#pragma once

#include <cstddef>

#include "ftccl.h"

namespace ftccl {
namespace reduce_detail {

namespace baseline {
void reduce(void* dst, const void* a, const void* b, size_t count, ftcclDataType_t type,
            ftcclRedOp_t op);
void divideBy(void* data, size_t count, ftcclDataType_t type, int divisor);
}  // namespace baseline

namespace avx2 {
void reduce(void* dst, const void* a, const void* b, size_t count, ftcclDataType_t type,
            ftcclRedOp_t op);
void divideBy(void* data, size_t count, ftcclDataType_t type, int divisor);
}  // namespace avx2

namespace avx512 {
void reduce(void* dst, const void* a, const void* b, size_t count, ftcclDataType_t type,
            ftcclRedOp_t op);
void divideBy(void* data, size_t count, ftcclDataType_t type, int divisor);
}  // namespace avx512

}  // namespace reduce_detail
}  // namespace ftccl
