/* The smallest ftccl program: one process, one rank, one all-reduce. Under mpirun,
 * rank 0 would create the id and MPI_Bcast it (see tools/perf_bootstrap.cc). */
#include <ftccl.h>
#include <stdio.h>

int main(void) {
  ftcclUniqueId id;
  ftcclComm_t comm;
  float x[4] = {1, 2, 3, 4};
  if (ftcclGetUniqueId(&id) != ftcclSuccess || ftcclCommInitRank(&comm, 1, id, 0) != ftcclSuccess ||
      ftcclAllReduce(x, x, 4, ftcclFloat32, ftcclSum, comm, NULL) != ftcclSuccess) {
    fprintf(stderr, "ftccl: %s\n", ftcclGetLastError(NULL));
    return 1;
  }
  printf("all-reduce ok: %g %g %g %g\n", x[0], x[1], x[2], x[3]);
  return ftcclCommDestroy(comm) == ftcclSuccess ? 0 : 1;
}
