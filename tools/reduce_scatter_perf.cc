// reduce_scatter_perf: nccl-tests' reduce_scatter_perf for ftccl.
//
//   mpirun -np 4 reduce_scatter_perf -b 8 -e 64M -f 2 [-o all] [-d all] [-J results.json]
//
// As in nccl-tests, the size is the send buffer: each rank receives size / nranks bytes,
// rounded down to a multiple of kAlign elements. Only the ReduceScatter-specific parts
// live here; see perf_common.h for the rest.
#include "perf_common.h"

namespace {

// nccl-tests' ALIGN: per-rank counts are multiples of 4 elements, so the size column of a
// given -b/-e/-f matches nccl-tests' row for row.
constexpr size_t kAlign = 4;

// nccl-tests: each rank sends the (n-1)/n of the buffer reduced elsewhere.
double busBwFactor(int nranks) {
  return nranks > 0 ? (nranks - 1) / static_cast<double>(nranks) : 0.0;
}

// In place, a rank's result is left in its own block of the send buffer.
void counts(size_t count, int nranks, ftperf::CollCounts* out) {
  const size_t n = static_cast<size_t>(nranks);
  const size_t base = count / (kAlign * n) * kAlign;
  out->send = base * n;
  out->recv = base;
  out->param = base;
  out->sendInPlaceOffset = 0;
  out->recvInPlaceOffset = base;
}

ftcclResult_t runReduceScatter(const void* sendbuff, void* recvbuff, size_t count,
                               ftcclDataType_t type, ftcclRedOp_t op, int /*root*/,
                               ftcclComm_t comm, ftcclStream_t stream) {
  return ftcclReduceScatter(sendbuff, recvbuff, count, type, op, comm, stream);
}

// The all-reduce inputs over the whole send buffer: their reduction is exact in any order,
// and every block differs, so a block reduced into the wrong rank is caught.
void fillInput(void* buf, size_t count, ftcclDataType_t type, ftcclRedOp_t op, int /*root*/,
               int rank, int nranks) {
  ftperf::fillReduceInput(buf, count, type, op, rank, nranks);
}

// This rank's block (count = recvcount elements, at rank * recvcount) of the all-reduce.
void fillExpected(void* buf, size_t count, ftcclDataType_t type, ftcclRedOp_t op, int /*root*/,
                  int rank, int nranks) {
  ftperf::fillReduceExpected(buf, count, static_cast<size_t>(rank) * count, type, op, nranks);
}

}  // namespace

int main(int argc, char** argv) {
  ftperf::CollTool tool{};
  tool.name = "reduce_scatter_perf";
  tool.collName = "ftcclReduceScatter";
  tool.usesOps = true;
  tool.usesRoot = false;
  tool.busBwFactor = busBwFactor;
  tool.run = runReduceScatter;
  tool.fillInput = fillInput;
  tool.fillExpected = fillExpected;
  tool.counts = counts;
  tool.expectedPerSize = true;
  return ftperf::perfMain(argc, argv, tool);
}
