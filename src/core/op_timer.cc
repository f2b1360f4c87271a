#include "core/op_timer.h"

#include <time.h>

namespace ftccl {
namespace {

int64_t coarseNowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);  // CLOCK_MONOTONIC's time, one tick late
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace

OpTimer::Start OpTimer::begin(int kind, bool quick) {
  Start start;
  start.kind = kind >= 0 && kind < kStatKinds ? kind : 0;
  start.quick = quick;
  if (quick && quickOps_[start.kind]++ % kSampleEvery != 0) {
    start.boardNs = coarseNowNs();
    return start;
  }
  start.at = Clock::now();
  start.boardNs = steadyNs(start.at);
  return start;
}

OpTimer::End OpTimer::end(const Start& start, Clock::time_point firstRead) {
  End end;
  uint64_t& mean = meanQuickNs_[start.kind];
  if (start.at != Clock::time_point{}) {
    const auto now = Clock::now();
    end.elapsedNs = static_cast<uint64_t>(steadyNs(now) - start.boardNs);
    end.boardNs = steadyNs(now);
    if (start.quick) {
      const uint64_t sample = firstRead == Clock::time_point{}
                                  ? end.elapsedNs
                                  : static_cast<uint64_t>(steadyNs(firstRead) - start.boardNs);
      mean = mean == 0 ? sample : mean - mean / 8 + sample / 8;  // an eighth of each sample
    }
  } else if (firstRead != Clock::time_point{}) {
    const auto now = Clock::now();
    end.elapsedNs = mean + static_cast<uint64_t>(steadyNs(now) - steadyNs(firstRead));
    end.boardNs = steadyNs(now);
  } else {
    end.elapsedNs = mean;
    end.boardNs = start.boardNs + static_cast<int64_t>(mean);
  }
  return end;
}

}  // namespace ftccl
