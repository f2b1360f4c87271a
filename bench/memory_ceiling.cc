// The memory-traffic ceiling of an all-reduce over shared memory on this machine (issue
// 26): what a rank's copies and reductions cost per byte when every rank of the node does
// them at once, and the busbw that leaves at most.
//
// Measures, with P processes running the same loop at once (P = the ranks, pinned to
// nothing, as the benchmarks run), over a buffer of `bytes` walked in 256 KiB chunks (the
// slot size) as the pipelined all-reduce walks its user buffers, with one 256 KiB slot
// that stays in cache:
//   copy in   memcpy from the buffer into the slot (GB/s of bytes copied)
//   copy out  memcpy from the slot into the buffer
//   reduce    buffer chunk = slot + slot, float, src/reduce's kernel (GB/s of output)
// The model of the pipelined all-reduce per rank and byte of the buffer (n ranks): copy
// the chunk in, reduce a slice 1/n from n slots into the output ((n - 1)/n passes), copy
// the slice back into the slot (in cache: at the copy-in rate), copy the others' slices
// out ((n - 1)/n):
//   t = (1 + 1/n) / in + (n - 1) / n / reduce + (n - 1) / n / out   (per byte)
// and the ceiling busbw = (1 / t) * 2 (n - 1) / n, with every rate as measured with n
// processes sharing the cores (on 2 cores, 4 ranks get half a core each). It leaves out
// the flags and the cache lines that cross between cores, so it is an upper bound.
//
// usage: memory_ceiling [-n ranks] [-b bytes] [-t seconds]
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "reduce/reduce.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kChunk = 256 * 1024;

// GB/s of one process's loop while `procs` run it at once (a pipe carries each result).
template <typename Loop>
double concurrentRate(int procs, double seconds, size_t bytes, Loop loop) {
  int fds[2];
  if (pipe(fds) != 0) return 0;
  std::vector<pid_t> children;
  for (int p = 0; p < procs; ++p) {
    pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      std::vector<unsigned char> buffer(bytes, 1), slot(kChunk, 2), other(kChunk, 3);
      loop(buffer.data(), slot.data(), other.data());  // warm: pages faulted, caches primed
      size_t rounds = 0;
      auto start = Clock::now();
      double elapsed = 0;
      while (elapsed < seconds) {
        loop(buffer.data(), slot.data(), other.data());
        ++rounds;
        elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      }
      double rate = static_cast<double>(rounds * bytes) / elapsed / 1e9;
      ssize_t unused = write(fds[1], &rate, sizeof(rate));
      (void)unused;
      _exit(0);
    }
    children.push_back(pid);
  }
  close(fds[1]);
  double sum = 0, rate = 0;
  while (read(fds[0], &rate, sizeof(rate)) == static_cast<ssize_t>(sizeof(rate))) sum += rate;
  close(fds[0]);
  for (pid_t pid : children) waitpid(pid, nullptr, 0);
  return sum / procs;
}

}  // namespace

int main(int argc, char** argv) {
  int ranks = 2;
  size_t bytes = size_t{16} << 20;
  double seconds = 1.0;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      std::printf(
          "usage: memory_ceiling [-n ranks] [-b bytes] [-t seconds]\n"
          "The memory-traffic ceiling of the shared-memory all-reduce: copy and\n"
          "reduction rates with n processes at once, and the busbw they allow.\n");
      return 0;
    }
    if (i + 1 >= argc) break;
    if (flag == "-n")
      ranks = std::atoi(argv[++i]);
    else if (flag == "-b")
      bytes = std::strtoull(argv[++i], nullptr, 10);
    else if (flag == "-t")
      seconds = std::atof(argv[++i]);
  }
  bytes = (bytes + kChunk - 1) / kChunk * kChunk;
  auto copyIn = [bytes](unsigned char* buffer, unsigned char* slot, unsigned char*) {
    for (size_t at = 0; at < bytes; at += kChunk) std::memcpy(slot, buffer + at, kChunk);
  };
  auto copyOut = [bytes](unsigned char* buffer, unsigned char* slot, unsigned char*) {
    for (size_t at = 0; at < bytes; at += kChunk) std::memcpy(buffer + at, slot, kChunk);
  };
  auto reduce = [bytes](unsigned char* buffer, unsigned char* slot, unsigned char* other) {
    for (size_t at = 0; at < bytes; at += kChunk) {
      ftccl::reduce(buffer + at, slot, other, kChunk / sizeof(float), ftcclFloat32, ftcclSum);
    }
  };
  const double in = concurrentRate(ranks, seconds, bytes, copyIn);
  const double out = concurrentRate(ranks, seconds, bytes, copyOut);
  const double red = concurrentRate(ranks, seconds, bytes, reduce);
  const double n = ranks;
  const double perByte = (1 + 1 / n) / in + (n - 1) / n / red + (n - 1) / n / out;
  const double busbw = n > 1 ? (1 / perByte) * 2 * (n - 1) / n : 0;
  std::printf("ranks %d, a %zu B buffer in 256 KiB chunks, %d processes at once:\n", ranks, bytes,
              ranks);
  std::printf("  copy in %.2f GB/s, copy out %.2f GB/s, reduce (float sum) %.2f GB/s\n", in, out,
              red);
  std::printf("  pipelined shm all-reduce ceiling: %.2f GB/s busbw (algbw %.2f)\n", busbw,
              1 / perByte);
  return 0;
}
