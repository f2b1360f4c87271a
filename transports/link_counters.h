// What the data path moved to and from one peer: bytes, and the time during which a
// bulk transfer to (or from) it was outstanding ("busy"), so timed bytes / busy time is
// the rate the link delivered while in use. Written by the one thread that drives the
// communicator (relaxed atomics, no lock, no allocation); read by any thread.
//
// Busy time is the union of the intervals with at least one bulk transfer outstanding:
// a pipelined op keeps several chunks in flight, and summing their durations would
// count the same wall time several times. Only the 0 -> 1 and 1 -> 0 transitions read
// the clock, and only transfers of kTimedBytes or more are timed: a clock read costs
// about 24 ns here, a tenth of a small message's whole round (bench/stats_overhead),
// and a small message's time is latency, not bandwidth.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace ftccl {

struct LinkCounters {
  static constexpr uint64_t kTimedBytes = 16384;

  struct Direction {
    std::atomic<uint64_t> bytes{0};  // every completed transfer
    std::atomic<uint64_t> transfers{0};
    std::atomic<uint64_t> timedBytes{0};  // those of kTimedBytes or more that were timed
    std::atomic<uint64_t> busyNs{0};
    int outstanding = 0;      // writer only: timed transfers in flight
    int64_t busySinceNs = 0;  // writer only

    // A transfer completed at once counts at once, untimed; another counts when it
    // completes, and not at all when cancelled.
    void posted(uint64_t size, bool completedAtOnce) {
      if (completedAtOnce) {
        add(bytes, size);
        add(transfers, 1);
      } else if (size >= kTimedBytes && outstanding++ == 0) {
        busySinceNs = nowNs();
      }
    }
    void finished(uint64_t size, bool completed) {
      if (completed) {
        add(bytes, size);
        add(transfers, 1);
      }
      if (size < kTimedBytes || outstanding <= 0) return;
      if (completed) add(timedBytes, size);
      if (--outstanding == 0) add(busyNs, static_cast<uint64_t>(nowNs() - busySinceNs));
    }
    static void add(std::atomic<uint64_t>& field, uint64_t value) {
      field.store(field.load(std::memory_order_relaxed) + value, std::memory_order_relaxed);
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
