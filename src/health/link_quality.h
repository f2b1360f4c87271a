// Flags a link whose round trips grew: the health thread's acks sample the round trip
// to each watched peer; a link that got slower or congested (a degraded NIC, a shaped
// or shared uplink) shows as round trips well above the best one seen, long before
// anything fails. Pure logic, fed by HealthProtocol, tested on its own.
//
// The baseline is the smallest round trip seen (the unloaded link). The level is the
// smallest of the last kWindow samples: a health thread that ran late (its host's
// cores busy with the ranks' work) delays some samples by milliseconds, but a slower
// or queueing link delays every one, so only the latter lifts the window's minimum.
// The link is flagged when the level exceeds slowThresholdMs(baseline) (4x, and at
// least 5 ms more), that is when every sample in the window did; the flag drops only
// when every sample in the window is below that again: congestion comes in bursts (a ring step
// fills a shaped link's queue, the next drains it), and clearing at the first fast sample made the
// flag flap every second.
#pragma once

#include <array>
#include <cstdint>

namespace ftccl {

// Every round trip of a link, summarised for the stats: count, min, mean and a p99 read
// from a log-scale histogram (buckets 12% apart from 10 us: the p99 is within 12%).
// Fixed size, no allocation per sample.
class RoundTripStats {
 public:
  void add(double ms);
  uint64_t samples() const { return samples_; }
  double minMs() const { return minMs_; }
  double avgMs() const { return samples_ ? sumMs_ / static_cast<double>(samples_) : 0; }
  double percentileMs(double fraction) const;

  static constexpr int kBuckets = 128;

 private:
  uint64_t samples_ = 0;
  double sumMs_ = 0, minMs_ = 0;
  std::array<uint32_t, kBuckets> buckets_{};
};

class LinkQuality {
 public:
  enum class Change { kNone, kDegraded, kRecovered };

  Change record(double roundTripMs);
  // Against this process's other links (the median of their levels): a link slow from
  // the start has no better past of its own. The same rule and hysteresis as record(),
  // with the others' level as the baseline.
  Change compareWithOthers(double othersMs);

  bool full() const { return samples_ == kWindow; }
  bool degraded() const { return degraded_; }
  bool slowerThanOthers() const { return slowerThanOthers_; }
  double baselineMs() const { return baselineMs_; }
  double levelMs() const { return levelMs_; }      // the window's smallest
  double highestMs() const { return highestMs_; }  // the window's largest
  double lastMs() const { return lastMs_; }
  double maxMs() const { return maxMs_; }
  const RoundTripStats& stats() const { return stats_; }

  static constexpr int kWindow = 8;  // also the warm-up: no verdict before a full window
  static constexpr double kSlowFactor = 4;
  static constexpr double kSlowMarginMs = 5;
  static double slowThresholdMs(double referenceMs);

 private:
  int samples_ = 0;  // saturates at kWindow
  int next_ = 0;     // where the next sample goes in recent_
  std::array<double, kWindow> recent_{};
  double baselineMs_ = 0, levelMs_ = 0, highestMs_ = 0, lastMs_ = 0, maxMs_ = 0;
  bool degraded_ = false;
  bool slowerThanOthers_ = false;
  RoundTripStats stats_;
};

}  // namespace ftccl
