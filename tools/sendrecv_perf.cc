// sendrecv_perf: nccl-tests' sendrecv_perf for ftccl.
//
//   mpirun -np 4 sendrecv_perf -b 8 -e 64M -f 2 [-d all] [-J results.json]
//
// Every rank sends its buffer to the next rank and receives the previous rank's, in one
// group, so the whole ring moves at once. Only the SendRecv-specific parts live here; see
// perf_common.h for the rest.
#include "perf_common.h"

namespace {

// nccl-tests: every link carries the buffer once.
double busBwFactor(int /*nranks*/) { return 1.0; }

// The peers come from the communicator on every call, as in nccl-tests: after a rebuild
// the ranks are numbered anew.
ftcclResult_t runSendRecv(const void* sendbuff, void* recvbuff, size_t count, ftcclDataType_t type,
                          ftcclRedOp_t /*op*/, int /*root*/, ftcclComm_t comm,
                          ftcclStream_t stream) {
  int rank = 0;
  int nranks = 1;
  ftcclResult_t res = ftcclCommUserRank(comm, &rank);
  if (res == ftcclSuccess) res = ftcclCommCount(comm, &nranks);
  if (res != ftcclSuccess) return res;
  const int sendPeer = (rank + 1) % nranks;
  const int recvPeer = (rank - 1 + nranks) % nranks;
  res = ftcclGroupStart();
  if (res != ftcclSuccess) return res;
  res = ftcclSend(sendbuff, count, type, sendPeer, comm, stream);
  if (res == ftcclSuccess) res = ftcclRecv(recvbuff, count, type, recvPeer, comm, stream);
  // Close the group even after a failed call: an open group would swallow later calls.
  const ftcclResult_t end = ftcclGroupEnd();
  return res != ftcclSuccess ? res : end;
}

// Raw bits, different on every rank: data from the wrong peer is caught.
void fillInput(void* buf, size_t count, ftcclDataType_t type, ftcclRedOp_t /*op*/, int /*root*/,
               int rank, int /*nranks*/) {
  ftperf::fillRawInput(buf, count, type, rank);
}

void fillExpected(void* buf, size_t count, ftcclDataType_t type, ftcclRedOp_t /*op*/, int /*root*/,
                  int rank, int nranks) {
  ftperf::fillRawInput(buf, count, type, (rank - 1 + nranks) % nranks);
}

}  // namespace

int main(int argc, char** argv) {
  ftperf::CollTool tool{};
  tool.name = "sendrecv_perf";
  tool.collName = "ftcclSend/ftcclRecv";
  tool.usesOps = false;
  tool.usesRoot = false;
  tool.busBwFactor = busBwFactor;
  tool.run = runSendRecv;
  tool.fillInput = fillInput;
  tool.fillExpected = fillExpected;
  return ftperf::perfMain(argc, argv, tool);
}
