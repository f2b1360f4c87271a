// What counting adds to one operation, timed in isolation: the bookkeeping of an
// all-reduce on a ring (its clock reads, the progress board, the counters of its kind)
// and of its 2(n-1) sends and receives, small (untimed) and bulk (each an idle -> busy
// -> idle transition, a clock read at both ends: the worst case). Compare with an op's
// own time (all_reduce_perf).
// usage: stats_overhead [NRANKS] [OPS]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "stats/op_counters.h"
#include "stats/progress_board.h"
#include "transports/link_counters.h"

using namespace ftccl;
using Clock = std::chrono::steady_clock;

// Per op: the op's two clock reads (one of them drive() made before counting existed),
// the board and the kind's counters; per transfer of `bytes`, post and completion.
double nsPerOp(int nranks, long ops, uint64_t bytes) {
  OpCounters counters;
  ProgressBoard board(1);
  LinkCounters left, right;
  int transfers = 2 * (nranks - 1);
  auto start = Clock::now();
  for (long i = 0; i < ops; ++i) {
    int64_t t0 = LinkCounters::nowNs();
    board.begin(0, 1, t0);
    for (int t = 0; t < transfers; ++t) {
      right.send.posted(bytes, false);
      left.recv.posted(bytes, false);
      right.send.finished(bytes, true);
      left.recv.finished(bytes, true);
    }
    int64_t t1 = LinkCounters::nowNs();
    board.end(true, static_cast<uint64_t>(t1 - t0), t1);
    counters.record(0, bytes, bytes, static_cast<uint64_t>(t1 - t0));
  }
  if (counters.read(0).ops != static_cast<uint64_t>(ops)) std::abort();
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count() / ops;
}

int main(int argc, char** argv) {
  if (argc > 1 && (!std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help"))) {
    std::printf(
        "usage: stats_overhead [NRANKS (8)] [OPS (2000000)]\n"
        "The time counting adds to one all-reduce and to each of its transfers.\n");
    return 0;
  }
  int nranks = argc > 1 ? std::atoi(argv[1]) : 8;
  long ops = argc > 2 ? std::atol(argv[2]) : 2000000;
  int transfers = 2 * (nranks - 1);
  for (uint64_t bytes : {uint64_t{4096}, LinkCounters::kTimedBytes}) {
    double ns = nsPerOp(nranks, ops, bytes);
    std::printf(
        "counting: %.0f ns per all-reduce of %d ranks, %d transfers of %llu B each way "
        "(%s): %.1f ns per transfer\n",
        ns, nranks, transfers, static_cast<unsigned long long>(bytes),
        bytes >= LinkCounters::kTimedBytes ? "timed, each a busy transition: the worst case"
                                           : "untimed",
        ns / (2.0 * transfers));
  }
  return 0;
}
