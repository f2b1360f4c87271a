// all_reduce_perf: nccl-tests' all_reduce_perf for ftccl.
//
//   mpirun -np 4 all_reduce_perf -b 8 -e 64M -f 2 [-d all] [-o all] [-J results.json]
//
// Only the AllReduce-specific parts live here; see perf_common.h for the rest.
#include "perf_common.h"

namespace {

// nccl-tests: every rank sends and receives 2*(n-1)/n of the buffer over its links.
double busBwFactor(int nranks) {
  return nranks > 0 ? 2.0 * (nranks - 1) / static_cast<double>(nranks) : 0.0;
}

ftcclResult_t runAllReduce(const void* sendbuff, void* recvbuff, size_t count, ftcclDataType_t type,
                           ftcclRedOp_t op, int /*root*/, ftcclComm_t comm, ftcclStream_t stream) {
  return ftcclAllReduce(sendbuff, recvbuff, count, type, op, comm, stream);
}

void fillInput(void* buf, size_t count, ftcclDataType_t type, ftcclRedOp_t op, int /*root*/,
               int rank, int nranks) {
  ftperf::fillReduceInput(buf, count, type, op, rank, nranks);
}

// out[i] = op over every rank's input, folded in rank order with the library's
// documented semantics (ftperf::refCombine / refAvgFinish). The inputs are chosen so that
// the result does not depend on the order or grouping of the reduction.
template <class T>
void expectedAllReduce(T* out, size_t count, ftcclRedOp_t op, int nranks) {
  const ftperf::ReducePattern first(op, 0, nranks);
  for (size_t i = 0; i < count; ++i) out[i] = ftperf::reduceInput<T>(first, i);
  for (int r = 1; r < nranks; ++r) {
    const ftperf::ReducePattern p(op, r, nranks);
    for (size_t i = 0; i < count; ++i) {
      out[i] = ftperf::refCombine<T>(op, out[i], ftperf::reduceInput<T>(p, i));
    }
  }
  if (op == ftcclAvg) {
    for (size_t i = 0; i < count; ++i) out[i] = ftperf::refAvgFinish<T>(out[i], nranks);
  }
}

void fillExpected(void* buf, size_t count, ftcclDataType_t type, ftcclRedOp_t op, int /*root*/,
                  int /*rank*/, int nranks) {
  ftperf::withType(type, [&](auto tag) {
    using T = decltype(tag);
    expectedAllReduce<T>(static_cast<T*>(buf), count, op, nranks);
  });
}

}  // namespace

int main(int argc, char** argv) {
  ftperf::CollTool tool{};
  tool.name = "all_reduce_perf";
  tool.collName = "ftcclAllReduce";
  tool.usesOps = true;
  tool.usesRoot = false;
  tool.busBwFactor = busBwFactor;
  tool.run = runAllReduce;
  tool.fillInput = fillInput;
  tool.fillExpected = fillExpected;
  return ftperf::perfMain(argc, argv, tool);
}
