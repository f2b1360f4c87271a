// The Open MPI baseline: MPI_Allreduce (float sum) with all_reduce_perf's sizes,
// timing and columns, so that the two can be run side by side (bench/compare_ompi.sh).
// Buffers are allocated and pre-faulted once, as in all_reduce_perf.
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

int main(int argc, char** argv) {
  if (argc > 1 && (!std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help"))) {
    std::printf(
        "usage: mpirun -np N mpi_allreduce_perf [-b min bytes] [-e max bytes] [-f factor] "
        "[-n iters] [-w warmup]\n"
        "MPI_Allreduce (float sum) with all_reduce_perf's sizes, timing and columns.\n");
    return 0;
  }
  MPI_Init(&argc, &argv);
  int rank = 0, nranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  size_t minBytes = 8, maxBytes = 64u << 20;
  int factor = 2, iters = 20, warmup = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "-b")) minBytes = std::strtoull(argv[i + 1], nullptr, 10);
    if (!std::strcmp(argv[i], "-e")) maxBytes = std::strtoull(argv[i + 1], nullptr, 10);
    if (!std::strcmp(argv[i], "-f")) factor = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "-n")) iters = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "-w")) warmup = std::atoi(argv[i + 1]);
  }
  std::vector<float> send(maxBytes / sizeof(float) + 1, 1.0f), recv(send.size(), 0.0f);
  if (rank == 0) {
    std::printf("# MPI_Allreduce float sum, %d ranks\n", nranks);
    std::printf("#%12s %13s %9s %8s %8s\n", "size(B)", "count", "time(us)", "algbw", "busbw");
  }
  for (size_t bytes = minBytes; bytes <= maxBytes; bytes *= factor) {
    int count = static_cast<int>(bytes / sizeof(float));
    for (int i = 0; i < warmup; ++i) {
      MPI_Allreduce(send.data(), recv.data(), count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    double start = MPI_Wtime();
    for (int i = 0; i < iters; ++i) {
      MPI_Allreduce(send.data(), recv.data(), count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
    double local = (MPI_Wtime() - start) / iters, worst = 0;
    MPI_Allreduce(&local, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    bool wrong = count > 0 && recv[count - 1] != static_cast<float>(nranks);
    double algbw = worst > 0 ? bytes / worst / 1e9 : 0;
    if (rank == 0) {
      std::printf(" %12zu %13d %9.2f %8.2f %8.2f%s\n", bytes, count, worst * 1e6, algbw,
                  algbw * 2.0 * (nranks - 1) / nranks, wrong ? " WRONG" : "");
    }
    if (factor <= 1) break;
  }
  MPI_Finalize();
  return 0;
}
