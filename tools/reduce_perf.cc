// reduce_perf: nccl-tests' reduce_perf for ftccl.
//
//   mpirun -np 4 reduce_perf -b 8 -e 64M -f 2 [-o all] [-r 0 | -r all] [-d all] [-J results.json]
//
// Only the Reduce-specific parts live here; see perf_common.h for the rest.
#include "perf_common.h"

namespace {

// nccl-tests: a pipelined reduce moves the buffer once over every link, as a broadcast.
double busBwFactor(int /*nranks*/) { return 1.0; }

ftcclResult_t runReduce(const void* sendbuff, void* recvbuff, size_t count, ftcclDataType_t type,
                        ftcclRedOp_t op, int root, ftcclComm_t comm, ftcclStream_t stream) {
  return ftcclReduce(sendbuff, recvbuff, count, type, op, root, comm, stream);
}

// The all-reduce inputs: chosen so that the result does not depend on the order or the
// grouping of the reduction, whichever tree or chain the library picks.
void fillInput(void* buf, size_t count, ftcclDataType_t type, ftcclRedOp_t op, int /*root*/,
               int rank, int nranks) {
  ftperf::fillReduceInput(buf, count, type, op, rank, nranks);
}

// The root expects the all-reduce result; the other ranks check nothing (rootOnlyResult),
// since their receive buffers are theirs to keep or the library's to leave alone.
void fillExpected(void* buf, size_t count, ftcclDataType_t type, ftcclRedOp_t op, int /*root*/,
                  int /*rank*/, int nranks) {
  ftperf::fillReduceExpected(buf, count, 0, type, op, nranks);
}

}  // namespace

int main(int argc, char** argv) {
  ftperf::CollTool tool{};
  tool.name = "reduce_perf";
  tool.collName = "ftcclReduce";
  tool.usesOps = true;
  tool.usesRoot = true;
  tool.busBwFactor = busBwFactor;
  tool.run = runReduce;
  tool.fillInput = fillInput;
  tool.fillExpected = fillExpected;
  tool.rootOnlyResult = true;
  return ftperf::perfMain(argc, argv, tool);
}
