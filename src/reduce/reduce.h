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

size_t dataTypeSize(ftcclDataType_t type);  // 0 for an invalid type
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

}  // namespace ftccl
