#include "tensor_types.h"

#include <string>

namespace ftccl_torch {

ftcclDataType_t dataTypeOf(const at::Tensor& tensor) {
  switch (tensor.scalar_type()) {
    case at::kFloat:
      return ftcclFloat32;
    case at::kDouble:
      return ftcclFloat64;
    case at::kHalf:
      return ftcclFloat16;
    case at::kBFloat16:
      return ftcclBfloat16;
    case at::kChar:
      return ftcclInt8;
    case at::kByte:
      return ftcclUint8;
    case at::kBool:
      return ftcclUint8;
    case at::kInt:
      return ftcclInt32;
    case at::kLong:
      return ftcclInt64;
    default:
      TORCH_CHECK(false, "ftccl: unsupported tensor dtype ", tensor.scalar_type(),
                  " (float, double, half, bfloat16, int8, uint8, bool, int32, int64)");
  }
}

bool isBitwise(const c10d::ReduceOp& op) {
  return op.op_ == c10d::ReduceOp::BAND || op.op_ == c10d::ReduceOp::BOR ||
         op.op_ == c10d::ReduceOp::BXOR;
}

ftcclRedOp_t redOpOf(const c10d::ReduceOp& op, const at::Tensor& tensor) {
  const bool boolean = tensor.scalar_type() == at::kBool;
  switch (op.op_) {
    case c10d::ReduceOp::SUM:
      return boolean ? ftcclMax : ftcclSum;
    case c10d::ReduceOp::AVG:
      TORCH_CHECK(!boolean, "ftccl: AVG of a bool tensor");
      return ftcclAvg;
    case c10d::ReduceOp::PRODUCT:
      return boolean ? ftcclMin : ftcclProd;
    case c10d::ReduceOp::MIN:
      return ftcclMin;
    case c10d::ReduceOp::MAX:
      return ftcclMax;
    default:
      TORCH_CHECK(false, "ftccl: reduce op ", static_cast<int>(op.op_),
                  " is not supported (PREMUL_SUM is NCCL's)");
  }
}

void checkBitwise(const at::Tensor& tensor) {
  TORCH_CHECK(!at::isFloatingType(tensor.scalar_type()), "ftccl: bitwise reduce op on a ",
              tensor.scalar_type(), " tensor (integers and bool only)");
}

void combineBitwise(const c10d::ReduceOp& op, const at::Tensor& gathered, int ranks,
                    at::Tensor& out) {
  at::Tensor parts = gathered.view({ranks, -1});
  at::Tensor acc = parts[0].clone();
  for (int r = 1; r < ranks; ++r) {
    if (op.op_ == c10d::ReduceOp::BAND) acc.bitwise_and_(parts[r]);
    if (op.op_ == c10d::ReduceOp::BOR) acc.bitwise_or_(parts[r]);
    if (op.op_ == c10d::ReduceOp::BXOR) acc.bitwise_xor_(parts[r]);
  }
  out.copy_(acc.view_as(out));
}

void checkTensor(const at::Tensor& tensor, const char* what) {
  TORCH_CHECK(tensor.device().is_cpu(), "ftccl: ", what, ": CPU tensors only, got ",
              tensor.device());
  TORCH_CHECK(tensor.layout() == at::kStrided, "ftccl: ", what, ": dense tensors only");
  TORCH_CHECK(tensor.is_contiguous(), "ftccl: ", what, ": the tensor must be contiguous");
  dataTypeOf(tensor);
}

void checkSingle(const std::vector<at::Tensor>& tensors, const char* what) {
  TORCH_CHECK(tensors.size() == 1, "ftccl: ", what, " takes one tensor per call, got ",
              tensors.size());
  checkTensor(tensors[0], what);
}

}  // namespace ftccl_torch
