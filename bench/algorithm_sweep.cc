// All-reduce time per algorithm, and Open MPI's, interleaved inside one mpirun.
//
// Separate runs per algorithm differ more by where the scheduler put the processes than
// by algorithm (4+ ranks on 2 cores). Here every process opens one communicator per
// variant (ring, tree, hier, rd forced by config.algorithm; auto; MPI_COMM_WORLD) and, per
// size and repetition, times each variant in turn, rotating the order so none always
// goes first. Each cell is the median over repetitions of the slowest rank's average.
//
// usage: mpirun -np 4 algorithm_sweep [-b 8] [-e 16M] [-f 8] [-n 200] [-w 20] [-r 7]
//                                     [-N nodes] [-a ring,tree,hier,rd,auto,mpi]
// -N K gives rank i FTCCL_NODE_ID=vnode<i*K/np>: K virtual nodes on one machine.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "ftccl.h"

namespace {

struct Options {
  size_t minBytes = 8, maxBytes = 16u << 20;
  int factor = 8, iters = 200, warmup = 20, reps = 7, nodes = 0;
  std::string variants = "ring,tree,hier,rd,auto,mpi";
};

struct Variant {
  std::string name;
  ftcclComm_t comm = nullptr;  // null: Open MPI
  std::vector<double> us;      // per repetition, for the current size
};

size_t parseBytes(const char* text) {
  char* end = nullptr;
  size_t v = std::strtoull(text, &end, 10);
  if (*end == 'K') v <<= 10;
  if (*end == 'M') v <<= 20;
  if (*end == 'G') v <<= 30;
  return v;
}

Options parseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    const char* v = argv[i + 1];
    if (flag == "-b")
      o.minBytes = parseBytes(v);
    else if (flag == "-e")
      o.maxBytes = parseBytes(v);
    else if (flag == "-f")
      o.factor = std::max(2, std::atoi(v));
    else if (flag == "-n")
      o.iters = std::max(1, std::atoi(v));
    else if (flag == "-w")
      o.warmup = std::max(0, std::atoi(v));
    else if (flag == "-r")
      o.reps = std::max(1, std::atoi(v));
    else if (flag == "-N")
      o.nodes = std::atoi(v);
    else if (flag == "-a")
      o.variants = v;
  }
  return o;
}

void die(const char* what, ftcclResult_t r, ftcclComm_t comm) {
  std::fprintf(stderr, "algorithm_sweep: %s: %s %s\n", what, ftcclGetErrorString(r),
               ftcclGetLastError(comm));
  MPI_Abort(MPI_COMM_WORLD, 1);
}

ftcclComm_t openComm(const std::string& algorithm, int rank, int nranks) {
  ftcclUniqueId id;
  if (rank == 0) {
    ftcclResult_t r = ftcclGetUniqueId(&id);
    if (r != ftcclSuccess) die("ftcclGetUniqueId", r, nullptr);
  }
  MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
  ftcclConfig_t config = FTCCL_CONFIG_INITIALIZER;
  std::string spec = "allreduce:" + algorithm;
  if (algorithm != "auto") config.algorithm = spec.c_str();
  ftcclComm_t comm = nullptr;
  ftcclResult_t r = ftcclCommInitRankConfig(&comm, nranks, id, rank, &config);
  if (r != ftcclSuccess) die(("init " + algorithm).c_str(), r, comm);
  return comm;
}

// Average us per all-reduce over `iters` back-to-back calls, slowest rank.
double timeVariant(const Variant& v, ftcclStream_t stream, float* send, float* recv, size_t count,
                   const Options& o) {
  auto once = [&] {
    if (v.comm == nullptr) {
      MPI_Allreduce(send, recv, static_cast<int>(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      return;
    }
    ftcclResult_t r = ftcclAllReduce(send, recv, count, ftcclFloat32, ftcclSum, v.comm, stream);
    if (r != ftcclSuccess) die(v.name.c_str(), r, v.comm);
  };
  auto sync = [&] {
    if (v.comm == nullptr) return;
    ftcclResult_t r = ftcclStreamSynchronize(stream);
    if (r != ftcclSuccess) die(v.name.c_str(), r, v.comm);
  };
  for (int i = 0; i < o.warmup; ++i) once();
  sync();
  MPI_Barrier(MPI_COMM_WORLD);
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < o.iters; ++i) once();
  sync();
  double local =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
      o.iters;
  double worst = 0;
  MPI_Allreduce(&local, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  int nranks = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  int wrong = count > 0 && recv[count - 1] != static_cast<float>(nranks), anyWrong = 0;
  MPI_Allreduce(&wrong, &anyWrong, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (anyWrong) {
    std::fprintf(stderr, "algorithm_sweep: %s gave a wrong sum at %zu floats\n", v.name.c_str(),
                 count);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  return worst;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && (!std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help"))) {
    std::printf(
        "usage: mpirun -np N algorithm_sweep [-b 8] [-e 16M] [-f 8] [-n 200] [-w 20] [-r 7]\n"
        "         [-N nodes] [-a ring,tree,hier,rd,auto,mpi]\n"
        "All-reduce time per algorithm and Open MPI's, interleaved in one run; -N K puts\n"
        "the ranks on K virtual nodes.\n");
    return 0;
  }
  MPI_Init(&argc, &argv);
  int rank = 0, nranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  Options o = parseOptions(argc, argv);
  if (o.nodes > 0) {
    std::string node = "vnode" + std::to_string(rank * o.nodes / nranks);
    setenv("FTCCL_NODE_ID", node.c_str(), 1);
  }
  std::vector<Variant> variants;
  std::stringstream names(o.variants);
  for (std::string name; std::getline(names, name, ',');) {
    Variant v{name, nullptr, {}};
    if (name != "mpi") v.comm = openComm(name, rank, nranks);
    variants.push_back(v);
  }
  ftcclStream_t stream = nullptr;
  ftcclStreamCreate(&stream);
  std::vector<float> send(o.maxBytes / sizeof(float) + 1, 1.0f), recv(send.size(), 0.0f);

  if (rank == 0) {
    std::printf(
        "# all-reduce float sum, %d ranks, %d node(s); us per call, median of %d "
        "interleaved repetitions of %d calls (busbw GB/s from 64 KiB)\n",
        nranks, std::max(1, o.nodes), o.reps, o.iters);
    std::printf("| size |");
    for (const Variant& v : variants) std::printf(" %s |", v.name.c_str());
    std::printf(" auto/best | ring/tree | best/mpi |\n|---|");
    for (size_t i = 0; i < variants.size() + 3; ++i) std::printf("---|");
    std::printf("\n");
  }
  for (size_t bytes = o.minBytes; bytes <= o.maxBytes; bytes *= o.factor) {
    size_t count = bytes / sizeof(float);
    for (Variant& v : variants) v.us.clear();
    for (int rep = 0; rep < o.reps; ++rep) {
      for (size_t k = 0; k < variants.size(); ++k) {
        Variant& v = variants[(k + rep) % variants.size()];
        v.us.push_back(timeVariant(v, stream, send.data(), recv.data(), count, o));
      }
    }
    if (rank != 0) continue;
    std::printf("| %zu |", bytes);
    double best = 0, autoUs = 0, ring = 0, tree = 0, mpi = 0;
    for (const Variant& v : variants) {
      double us = median(v.us);
      double busbw = bytes / us / 1e3 * 2.0 * (nranks - 1) / nranks;
      if (bytes >= 65536)
        std::printf(" %.1f (%.2f) |", us, busbw);
      else
        std::printf(" %.1f |", us);
      if (v.name == "auto")
        autoUs = us;
      else if (v.name == "mpi")
        mpi = us;
      else if (best == 0 || us < best)
        best = us;
      if (v.name == "ring") ring = us;
      if (v.name == "tree") tree = us;
    }
    auto ratio = [](double a, double b) {
      char text[16] = "n/a";
      if (a > 0 && b > 0) std::snprintf(text, sizeof text, "%.2f", a / b);
      return std::string(text);
    };
    std::printf(" %s | %s | %s |\n", ratio(best, autoUs).c_str(), ratio(ring, tree).c_str(),
                ratio(mpi, best).c_str());
    std::fflush(stdout);
  }
  if (rank == 0) {
    std::printf(
        "# auto/best: best forced time / auto time (>= 0.90 is the target); "
        "ring/tree > 1: tree faster; best/mpi > 1: ftccl's best faster than Open MPI\n");
  }
  ftcclStreamDestroy(stream);
  for (Variant& v : variants) {
    if (v.comm) ftcclCommDestroy(v.comm);
  }
  MPI_Finalize();
  return 0;
}
