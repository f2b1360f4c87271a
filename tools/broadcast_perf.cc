// broadcast_perf: nccl-tests' broadcast_perf for ftccl.
//
//   mpirun -np 4 broadcast_perf -b 8 -e 64M -f 2 [-r 0 | -r all] [-d all] [-J results.json]
//
// Only the Broadcast-specific parts live here; see perf_common.h for the rest.
#include "perf_common.h"

namespace {

// nccl-tests: a pipelined broadcast moves the buffer once over every link.
double busBwFactor(int /*nranks*/) { return 1.0; }

ftcclResult_t runBroadcast(const void* sendbuff, void* recvbuff, size_t count, ftcclDataType_t type,
                           ftcclRedOp_t /*op*/, int root, ftcclComm_t comm, ftcclStream_t stream) {
  return ftcclBroadcast(sendbuff, recvbuff, count, type, root, comm, stream);
}

// Every rank holds its own pattern (only the root's is sent); non-roots' in-place buffers
// thus start different from the expected result.
void fillInput(void* buf, size_t count, ftcclDataType_t type, ftcclRedOp_t /*op*/, int /*root*/,
               int rank, int /*nranks*/) {
  ftperf::fillRawInput(buf, count, type, rank);
}

// Every rank expects the root's pattern, bit for bit.
void fillExpected(void* buf, size_t count, ftcclDataType_t type, ftcclRedOp_t /*op*/, int root,
                  int /*rank*/, int /*nranks*/) {
  ftperf::fillRawInput(buf, count, type, root);
}

}  // namespace

int main(int argc, char** argv) {
  ftperf::CollTool tool{};
  tool.name = "broadcast_perf";
  tool.collName = "ftcclBroadcast";
  tool.usesOps = false;
  tool.usesRoot = true;
  tool.busBwFactor = busBwFactor;
  tool.run = runBroadcast;
  tool.fillInput = fillInput;
  tool.fillExpected = fillExpected;
  return ftperf::perfMain(argc, argv, tool);
}
