// What the data path moved to and from one peer: bytes, and the time during which a
// transfer to (or from) it was outstanding ("busy"), so bytes / busy time is the rate
// the link delivered while it was in use. Written by the one thread that drives the
// communicator (relaxed atomics, no lock, no allocation); read by any thread.
//
// Busy time is the union of the intervals with at least one transfer outstanding:
// a pipelined op keeps several chunks in flight, and summing their durations would
// count the same wall time several times. Only the 0 -> 1 and 1 -> 0 transitions
// read the clock.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace ftccl {

struct LinkCounters {
  struct Direction {
    std::atomic<uint64_t> bytes{0};
    std::atomic<uint64_t> transfers{0};
    std::atomic<uint64_t> busyNs{0};
    int outstanding = 0;      // writer only
    int64_t busySinceNs = 0;  // writer only

    // A transfer completed at once (no time outstanding) counts at once; another
    // counts when it completes, and not at all when cancelled.
    void posted(uint64_t size, bool completedAtOnce) {
      if (completedAtOnce) {
        count(size);
      } else if (outstanding++ == 0) {
        busySinceNs = nowNs();
      }
    }
    void finished(uint64_t size, bool completed) {
      if (completed) count(size);
      if (outstanding <= 0 || --outstanding > 0) return;
      busyNs.store(busyNs.load(std::memory_order_relaxed) + (nowNs() - busySinceNs),
                   std::memory_order_relaxed);
    }
    void count(uint64_t size) {
      bytes.store(bytes.load(std::memory_order_relaxed) + size, std::memory_order_relaxed);
      transfers.store(transfers.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
  };
  Direction send, recv;

  static int64_t nowNs() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace ftccl
