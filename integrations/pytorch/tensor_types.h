// Mapping torch tensors and reduce ops onto ftccl's types, with clear errors for what
// ftccl cannot take (a CUDA or sparse tensor, an unsupported dtype or op).
#pragma once

#include <ATen/ATen.h>

#include <torch/csrc/distributed/c10d/Types.hpp>

#include "ftccl.h"

namespace ftccl_torch {

ftcclDataType_t dataTypeOf(const at::Tensor& tensor);
// SUM, AVG, PRODUCT, MIN, MAX directly; BAND, BOR, BXOR are not ftccl ops: the caller
// gathers and combines them locally (isBitwise). bool takes MAX for SUM and BOR, MIN
// for PRODUCT and BAND.
ftcclRedOp_t redOpOf(const c10d::ReduceOp& op, const at::Tensor& tensor);
bool isBitwise(const c10d::ReduceOp& op);
// Throws unless `tensor` can take a bitwise op (integers and bool).
void checkBitwise(const at::Tensor& tensor);
// `gathered` holds every rank's contribution, rank after rank: `out` = their bitwise
// combination.
void combineBitwise(const c10d::ReduceOp& op, const at::Tensor& gathered, int ranks,
                    at::Tensor& out);
// Throws unless `tensor` is a dense CPU tensor ftccl can take in place.
void checkTensor(const at::Tensor& tensor, const char* what);
void checkSingle(const std::vector<at::Tensor>& tensors, const char* what);

}  // namespace ftccl_torch
