// all_gather_perf: nccl-tests' all_gather_perf for ftccl.
//
//   mpirun -np 4 all_gather_perf -b 8 -e 64M -f 2 [-d all] [-J results.json]
//
// As in nccl-tests, the size is the gathered (receive) buffer: each rank sends
// size / nranks bytes, rounded down to a multiple of kAlign elements. Only the
// AllGather-specific parts live here; see perf_common.h for the rest.
#include "perf_common.h"

namespace {

// nccl-tests' ALIGN: per-rank counts are multiples of 4 elements, so the size column of a
// given -b/-e/-f matches nccl-tests' row for row.
constexpr size_t kAlign = 4;

// nccl-tests: each rank receives the (n-1)/n of the buffer it does not hold.
double busBwFactor(int nranks) {
  return nranks > 0 ? (nranks - 1) / static_cast<double>(nranks) : 0.0;
}

// In place, a rank's contribution already sits in its block of the gathered buffer.
void counts(size_t count, int nranks, ftperf::CollCounts* out) {
  const size_t n = static_cast<size_t>(nranks);
  const size_t base = count / (kAlign * n) * kAlign;
  out->send = base;
  out->recv = base * n;
  out->param = base;
  out->sendInPlaceOffset = base;
  out->recvInPlaceOffset = 0;
}

ftcclResult_t runAllGather(const void* sendbuff, void* recvbuff, size_t count, ftcclDataType_t type,
                           ftcclRedOp_t /*op*/, int /*root*/, ftcclComm_t comm,
                           ftcclStream_t stream) {
  return ftcclAllGather(sendbuff, recvbuff, count, type, comm, stream);
}

// Raw bits, different on every rank: a block landing at the wrong offset is caught.
void fillInput(void* buf, size_t count, ftcclDataType_t type, ftcclRedOp_t /*op*/, int /*root*/,
               int rank, int /*nranks*/) {
  ftperf::fillRawInput(buf, count, type, rank);
}

// Block r of the count = nranks * sendcount elements is rank r's input.
void fillExpected(void* buf, size_t count, ftcclDataType_t type, ftcclRedOp_t /*op*/, int /*root*/,
                  int /*rank*/, int nranks) {
  const size_t block = count / static_cast<size_t>(nranks);
  unsigned char* out = static_cast<unsigned char*>(buf);
  for (int r = 0; r < nranks; ++r) {
    ftperf::fillRawInput(out + static_cast<size_t>(r) * block * ftperf::typeSize(type), block, type,
                         r);
  }
}

}  // namespace

int main(int argc, char** argv) {
  ftperf::CollTool tool{};
  tool.name = "all_gather_perf";
  tool.collName = "ftcclAllGather";
  tool.usesOps = false;
  tool.usesRoot = false;
  tool.busBwFactor = busBwFactor;
  tool.run = runAllGather;
  tool.fillInput = fillInput;
  tool.fillExpected = fillExpected;
  tool.counts = counts;
  tool.expectedPerSize = true;
  return ftperf::perfMain(argc, argv, tool);
}
