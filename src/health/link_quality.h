// Flags a link whose round trips grew: the health thread's acks sample the round trip
// to each watched peer; a link that got slower or congested (a degraded NIC, a shaped
// or shared uplink) shows as round trips well above the best one seen, long before
// anything fails. Pure logic, fed by HealthProtocol, tested on its own.
//
// The baseline is the smallest round trip seen (the unloaded link). The level is an
// exponential average (weight 1/4 per sample), so one late ack (a preempted thread on
// an oversubscribed host) does not flag; a level above max(4 x baseline, baseline +
// 5 ms) for a sample does, and the flag drops below max(2 x baseline, baseline + 2 ms).
#pragma once

namespace ftccl {

class LinkQuality {
 public:
  enum class Change { kNone, kDegraded, kRecovered };

  Change record(double roundTripMs);

  bool degraded() const { return degraded_; }
  double baselineMs() const { return baselineMs_; }
  double levelMs() const { return levelMs_; }
  double lastMs() const { return lastMs_; }
  double maxMs() const { return maxMs_; }

  static constexpr int kWarmupSamples = 5;  // no verdict before this many

 private:
  int samples_ = 0;
  double baselineMs_ = 0, levelMs_ = 0, lastMs_ = 0, maxMs_ = 0;
  bool degraded_ = false;
};

}  // namespace ftccl
