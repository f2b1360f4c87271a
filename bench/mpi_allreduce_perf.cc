// The Open MPI baseline: MPI_Allreduce (float sum), or with -c another collective, with
// the ftccl perf tools' sizes, timing and columns, so that the two can be run side by
// side (bench/compare.py --coll). Sizes as nccl-tests (and ftccl's tools) count them:
// all-gather the gathered buffer, reduce-scatter the scattered one, each rank's part a
// multiple of 4 elements; busbw with the same factors. Buffers are allocated and
// pre-faulted once.
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

enum class Coll { kAllReduce, kBroadcast, kReduce, kAllGather, kReduceScatter };

bool parseColl(const char* name, Coll* out) {
  const std::string n = name;
  if (n == "allreduce")
    *out = Coll::kAllReduce;
  else if (n == "broadcast")
    *out = Coll::kBroadcast;
  else if (n == "reduce")
    *out = Coll::kReduce;
  else if (n == "allgather")
    *out = Coll::kAllGather;
  else if (n == "reducescatter")
    *out = Coll::kReduceScatter;
  else
    return false;
  return true;
}

// Elements of each rank's part (all-gather, reduce-scatter) or of the buffer (the others),
// and the size column, for `bytes`.
void countsFor(Coll coll, size_t bytes, int nranks, int* count, size_t* size) {
  size_t elems = bytes / sizeof(float), n = static_cast<size_t>(nranks);
  if (coll == Coll::kAllGather || coll == Coll::kReduceScatter) {
    size_t part = elems / (4 * n) * 4;
    *count = static_cast<int>(part);
    *size = part * n * sizeof(float);
  } else {
    *count = static_cast<int>(elems);
    *size = elems * sizeof(float);
  }
}

double busBwFactor(Coll coll, int nranks) {
  double n = nranks;
  switch (coll) {
    case Coll::kAllReduce:
      return 2 * (n - 1) / n;
    case Coll::kAllGather:
    case Coll::kReduceScatter:
      return (n - 1) / n;
    default:
      return 1;
  }
}

void runOnce(Coll coll, float* send, float* recv, int count, std::vector<int>& counts) {
  switch (coll) {
    case Coll::kAllReduce:
      MPI_Allreduce(send, recv, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      break;
    case Coll::kBroadcast:
      MPI_Bcast(send, count, MPI_FLOAT, 0, MPI_COMM_WORLD);
      break;
    case Coll::kReduce:
      MPI_Reduce(send, recv, count, MPI_FLOAT, MPI_SUM, 0, MPI_COMM_WORLD);
      break;
    case Coll::kAllGather:
      MPI_Allgather(send, count, MPI_FLOAT, recv, count, MPI_FLOAT, MPI_COMM_WORLD);
      break;
    case Coll::kReduceScatter:
      counts.assign(counts.size(), count);
      MPI_Reduce_scatter(send, recv, counts.data(), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      break;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && (!std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help"))) {
    std::printf(
        "usage: mpirun -np N mpi_allreduce_perf [-b min bytes] [-e max bytes] [-f factor] "
        "[-n iters] [-w warmup] [-c allreduce|broadcast|reduce|allgather|reducescatter]\n"
        "MPI_Allreduce (float sum), or the collective of -c, with the ftccl perf tools'\n"
        "sizes, timing and columns.\n");
    return 0;
  }
  MPI_Init(&argc, &argv);
  int rank = 0, nranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  size_t minBytes = 8, maxBytes = 64u << 20;
  int factor = 2, iters = 20, warmup = 5;
  Coll coll = Coll::kAllReduce;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "-c") && !parseColl(argv[i + 1], &coll)) {
      if (rank == 0)
        std::fprintf(stderr, "mpi_allreduce_perf: unknown collective %s\n", argv[i + 1]);
      MPI_Finalize();
      return 2;
    }
    if (!std::strcmp(argv[i], "-b")) minBytes = std::strtoull(argv[i + 1], nullptr, 10);
    if (!std::strcmp(argv[i], "-e")) maxBytes = std::strtoull(argv[i + 1], nullptr, 10);
    if (!std::strcmp(argv[i], "-f")) factor = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "-n")) iters = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "-w")) warmup = std::atoi(argv[i + 1]);
  }
  std::vector<float> send(maxBytes / sizeof(float) + 1, 1.0f), recv(send.size(), 0.0f);
  if (rank == 0) {
    std::printf("# MPI collective %d (float, sum where it reduces), %d ranks\n",
                static_cast<int>(coll), nranks);
    std::printf("#%12s %13s %9s %8s %8s\n", "size(B)", "count", "time(us)", "algbw", "busbw");
  }
  std::vector<int> counts(static_cast<size_t>(nranks));
  for (size_t bytes = minBytes; bytes <= maxBytes; bytes *= factor) {
    int count = 0;
    size_t size = 0;
    countsFor(coll, bytes, nranks, &count, &size);
    std::fill(send.begin(), send.end(), 1.0f);
    for (int i = 0; i < warmup; ++i) runOnce(coll, send.data(), recv.data(), count, counts);
    MPI_Barrier(MPI_COMM_WORLD);
    double start = MPI_Wtime();
    for (int i = 0; i < iters; ++i) runOnce(coll, send.data(), recv.data(), count, counts);
    double local = (MPI_Wtime() - start) / iters, worst = 0;
    MPI_Allreduce(&local, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    // A value every rank can check: sums of ones are nranks (all-reduce, reduce-scatter),
    // the others move ones.
    bool reducesHere = coll == Coll::kAllReduce || coll == Coll::kReduceScatter;
    float want = reducesHere ? static_cast<float>(nranks) : 1.0f;
    const float* got = coll == Coll::kBroadcast ? send.data() : recv.data();
    bool checked = count > 0 && (coll != Coll::kReduce || rank == 0);
    bool wrong = checked && got[count - 1] != (coll == Coll::kReduce ? nranks : want);
    double algbw = worst > 0 ? size / worst / 1e9 : 0;
    if (rank == 0) {
      std::printf(" %12zu %13d %9.2f %8.2f %8.2f%s\n", size, count, worst * 1e6, algbw,
                  algbw * busBwFactor(coll, nranks), wrong ? " WRONG" : "");
    }
    if (factor <= 1) break;
  }
  MPI_Finalize();
  return 0;
}
