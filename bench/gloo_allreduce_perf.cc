// The Gloo baseline: Gloo's ring, halving-doubling and bcube all-reduce (float sum, in
// place) over its TCP transport, with mpi_allreduce_perf's sizes, timing and columns,
// so that bench/compare.py runs it beside ftccl and Open MPI.
//
// Ranks come from mpirun's environment (OMPI_COMM_WORLD_RANK/SIZE); they meet through a
// Gloo FileStore in --store DIR, which the caller creates empty and removes afterwards.
// usage: mpirun -np 4 gloo_allreduce_perf --store DIR [-a ring|hd|bcube] [-b 8]
//        [-e 64M] [-f 2] [-n 20] [-w 5] [--host 127.0.0.1]
#include <gloo/allreduce_bcube.h>
#include <gloo/allreduce_halving_doubling.h>
#include <gloo/allreduce_ring.h>
#include <gloo/barrier_all_to_one.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/transport/tcp/device.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

struct Options {
  std::string store, algorithm = "ring", host = "127.0.0.1";
  size_t minBytes = 8, maxBytes = 64u << 20;
  int factor = 2, iters = 20, warmup = 5;
};

int envInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

std::unique_ptr<gloo::Algorithm> makeAllreduce(const std::string& name,
                                               const std::shared_ptr<gloo::Context>& context,
                                               float* data, int count) {
  std::vector<float*> ptrs{data};
  if (name == "ring") return std::make_unique<gloo::AllreduceRing<float>>(context, ptrs, count);
  if (name == "hd") {
    return std::make_unique<gloo::AllreduceHalvingDoubling<float>>(context, ptrs, count);
  }
  if (name == "bcube") return std::make_unique<gloo::AllreduceBcube<float>>(context, ptrs, count);
  return nullptr;
}

}  // namespace

constexpr const char* kUsage =
    "usage: mpirun -np N gloo_allreduce_perf --store DIR [-a ring|hd|bcube] [-b 8] [-e 64M]\n"
    "         [-f 2] [-n 20] [-w 5] [--host 127.0.0.1]\n"
    "Gloo's all-reduce (float sum, in place) over TCP with mpi_allreduce_perf's columns;\n"
    "ranks meet through a Gloo FileStore in DIR, which the caller creates empty.\n";

namespace {

int run(const Options& o, int rank, int nranks);

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && (!std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help"))) {
    std::printf("%s", kUsage);
    return 0;
  }
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    const char* v = argv[i + 1];
    if (flag == "--store")
      o.store = v;
    else if (flag == "-a")
      o.algorithm = v;
    else if (flag == "--host")
      o.host = v;
    else if (flag == "-b")
      o.minBytes = std::strtoull(v, nullptr, 10);
    else if (flag == "-e")
      o.maxBytes = std::strtoull(v, nullptr, 10);
    else if (flag == "-f")
      o.factor = std::atoi(v);
    else if (flag == "-n")
      o.iters = std::atoi(v);
    else if (flag == "-w")
      o.warmup = std::atoi(v);
  }
  int rank = envInt("OMPI_COMM_WORLD_RANK", 0), nranks = envInt("OMPI_COMM_WORLD_SIZE", 1);
  if (o.store.empty() || o.iters < 1 || o.factor < 1) {
    std::fprintf(stderr, "%s", kUsage);
    return 2;
  }
  try {
    return run(o, rank, nranks);
  } catch (const std::exception& e) {
    // Named per rank: when Gloo fails, the rank that failed first says what it saw,
    // rather than only the one whose uncaught exception mpirun reports.
    std::fprintf(stderr, "gloo_allreduce_perf: rank %d of %d: %s\n", rank, nranks, e.what());
    return 3;
  }
}

namespace {

int run(const Options& o, int rank, int nranks) {
  gloo::transport::tcp::attr attr;
  attr.hostname = o.host;
  auto device = gloo::transport::tcp::CreateDevice(attr);
  gloo::rendezvous::FileStore store(o.store);
  auto context = std::make_shared<gloo::rendezvous::Context>(rank, nranks);
  context->connectFullMesh(store, device);

  if (o.algorithm == "bcube" && nranks % context->base != 0) {
    // Gloo's bcube needs the ranks to divide into groups of `base`; otherwise its sums
    // are wrong (seen with 3 ranks), so there is nothing to measure.
    if (rank == 0) {
      std::printf("# Gloo bcube needs a multiple of %d ranks, not %d: not run\n", context->base,
                  nranks);
    }
    return 0;
  }
  std::vector<float> data(o.maxBytes / sizeof(float) + 1);
  double worst = 0, anyWrong = 0;  // each reduced to its maximum over the ranks
  std::vector<double*> worstPtr{&worst}, wrongPtr{&anyWrong};
  gloo::AllreduceRing<double> slowestRank(context, worstPtr, 1,
                                          gloo::ReductionFunction<double>::max);
  gloo::AllreduceRing<double> anyRankWrong(context, wrongPtr, 1,
                                           gloo::ReductionFunction<double>::max);
  gloo::BarrierAllToOne barrier(context);
  if (rank == 0) {
    std::printf("# Gloo %s all-reduce float sum in place, TCP, %d ranks\n", o.algorithm.c_str(),
                nranks);
    std::printf("#%12s %13s %9s %8s %8s\n", "size(B)", "count", "time(us)", "algbw", "busbw");
  }
  for (size_t bytes = o.minBytes; bytes <= o.maxBytes; bytes *= o.factor) {
    int count = static_cast<int>(bytes / sizeof(float));
    if (count == 0) {
      if (o.factor <= 1) break;
      continue;  // Gloo's algorithms need at least one element
    }
    std::unique_ptr<gloo::Algorithm> allreduce =
        makeAllreduce(o.algorithm, context, data.data(), count);
    if (!allreduce) {
      std::fprintf(stderr, "gloo_allreduce_perf: unknown algorithm '%s' (ring, hd, bcube)\n",
                   o.algorithm.c_str());
      return 2;
    }
    std::fill(data.begin(), data.begin() + count, 0.0f);  // sums of zeros stay finite
    for (int i = 0; i < o.warmup; ++i) allreduce->run();
    barrier.run();
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < o.iters; ++i) allreduce->run();
    worst =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / o.iters;
    slowestRank.run();
    // The check, on every rank: ones summed once give nranks.
    std::fill(data.begin(), data.begin() + count, 1.0f);
    allreduce->run();
    anyWrong =
        data[0] != static_cast<float>(nranks) || data[count - 1] != static_cast<float>(nranks);
    anyRankWrong.run();
    bool wrong = anyWrong != 0;
    double algbw = worst > 0 ? bytes / worst / 1e9 : 0;
    if (rank == 0) {
      std::printf(" %12zu %13d %9.2f %8.2f %8.2f%s\n", bytes, count, worst * 1e6, algbw,
                  algbw * 2.0 * (nranks - 1) / nranks, wrong ? " WRONG" : "");
      std::fflush(stdout);
    }
    if (o.factor <= 1) break;
  }
  // Ranks leave the last operation at different times, and a rank's exit closes its
  // sockets: meeting at the root first keeps a late peer from reading that as a fault.
  barrier.run();
  return 0;
}

}  // namespace
