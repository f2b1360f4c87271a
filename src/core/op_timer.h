// Times a communicator's ops for its stats and progress board without two clock reads
// around every small one: steady_clock costs ~20 ns a read in a VM, and the two around
// a 0.5 us shared-memory all-reduce cost it 10-12% of its time (2 ranks, 8 B, 15 runs
// each: 0.53 against 0.47 us without them). So an op of up to kQuickBytes is timed one
// in kSampleEvery of its kind; the others count the running mean of the timed ones, and
// where the driver read the clock during a wait, the time from that read on (so an op
// that waited is timed to within a mean, about a microsecond). The board's timestamps of
// an untimed op come from the coarse monotonic clock (one tick, a few ms: what a hang
// diagnosis measures in is seconds). Used by the thread whose turn it is to run ops.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>

#include "stats/op_counters.h"

namespace ftccl {

class OpTimer {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr uint64_t kQuickBytes = 4096;
  static constexpr uint64_t kSampleEvery = 16;

  struct Start {
    Clock::time_point at;  // {} where the op is not timed from its start
    int64_t boardNs = 0;   // for the board: when it began
    int kind = 0;
    bool quick = false;
  };
  struct End {
    uint64_t elapsedNs = 0;
    int64_t boardNs = 0;  // for the board: when it ended
  };

  // `quick`: one op of at most kQuickBytes per rank.
  Start begin(int kind, bool quick);
  // `firstRead`: the driver's first clock read during the op, {} if it read none.
  End end(const Start& start, Clock::time_point firstRead);

  static int64_t steadyNs(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }

 private:
  std::array<uint64_t, kStatKinds> quickOps_{};
  // Per kind, the running mean of the timed quick ops' time before their first wait (all
  // of it, where they did not wait).
  std::array<uint64_t, kStatKinds> meanQuickNs_{};
};

}  // namespace ftccl
