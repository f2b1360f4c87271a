// Throughput of the reduction kernels, one build per column (baseline, AVX2, AVX-512:
// each the CPU has), so a kernel change is backed by a before/after figure taken in
// one run on one machine.
//
// usage: reduce_kernels [-r reps] [-t seconds per cell]
// Prints, per dtype and operand size, GB/s of one operand (dst = a + b, distinct
// buffers, as the ring's reduce-scatter step does), the best of `reps` timings.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "reduce/reduce.h"

namespace {

using ftccl::reduce_detail::Isa;

double gbPerSecond(Isa isa, ftcclDataType_t type, ftcclRedOp_t op, size_t bytes, int reps,
                   double seconds) {
  const size_t count = bytes / ftccl::dataTypeSize(type);
  std::vector<unsigned char> a(bytes), b(bytes), d(bytes);
  for (size_t i = 0; i < bytes; ++i) {  // small finite values in every type
    a[i] = static_cast<unsigned char>(i * 7 % 61);
    b[i] = static_cast<unsigned char>(i * 13 % 59);
  }
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    size_t calls = 0;
    auto t0 = std::chrono::steady_clock::now();
    double elapsed = 0;
    do {
      ftccl::reduce_detail::reduceWith(isa, d.data(), a.data(), b.data(), count, type, op);
      ++calls;
      elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } while (elapsed < seconds);
    best = std::max(best, static_cast<double>(bytes) * calls / elapsed / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 5;
  double seconds = 0.05;
  if (argc > 1 && (!std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help"))) {
    std::printf(
        "usage: reduce_kernels [-r reps] [-t seconds per cell]\n"
        "GB/s of the reduction kernels per dtype, op and size, one column per instruction "
        "set\nthe CPU has (best of reps timings).\n");
    return 0;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "-r") == 0) reps = std::max(1, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "-t") == 0) seconds = std::atof(argv[i + 1]);
  }
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kBaseline, Isa::kAvx2, Isa::kAvx512})
    if (ftccl::reduce_detail::cpuHas(isa)) isas.push_back(isa);

  std::printf("# GB/s of one operand, dst = a (op) b, best of %d\n%-9s %-4s %9s", reps, "type",
              "op", "bytes");
  for (Isa isa : isas) std::printf(" %9s", ftccl::reduce_detail::isaName(isa));
  if (isas.size() > 1) std::printf(" %9s", "last/prev");
  std::printf("\n");
  const ftcclDataType_t types[] = {ftcclFloat32, ftcclFloat16, ftcclBfloat16,
                                   ftcclFloat64, ftcclInt32,   ftcclInt8};
  for (ftcclDataType_t type : types) {
    for (ftcclRedOp_t op : {ftcclSum, ftcclMax}) {
      for (size_t bytes : {size_t{32} << 10, size_t{512} << 10, size_t{32} << 20}) {
        std::printf("%-9s %-4s %9zu", ftccl::dataTypeName(type), ftccl::redOpName(op), bytes);
        std::vector<double> rates;
        for (Isa isa : isas) {
          rates.push_back(gbPerSecond(isa, type, op, bytes, reps, seconds));
          std::printf(" %9.2f", rates.back());
        }
        if (rates.size() > 1) std::printf(" %9.2f", rates.back() / rates[rates.size() - 2]);
        std::printf("\n");
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
