#include "health/link_quality.h"

#include <algorithm>

namespace ftccl {

LinkQuality::Change LinkQuality::record(double roundTripMs) {
  lastMs_ = roundTripMs;
  maxMs_ = std::max(maxMs_, roundTripMs);
  baselineMs_ = samples_ == 0 ? roundTripMs : std::min(baselineMs_, roundTripMs);
  levelMs_ = samples_ == 0 ? roundTripMs : levelMs_ + (roundTripMs - levelMs_) / 4;
  if (++samples_ < kWarmupSamples) return Change::kNone;
  double high = std::max(4 * baselineMs_, baselineMs_ + 5);
  double low = std::max(2 * baselineMs_, baselineMs_ + 2);
  if (!degraded_ && levelMs_ > high) {
    degraded_ = true;
    return Change::kDegraded;
  }
  if (degraded_ && levelMs_ < low) {
    degraded_ = false;
    return Change::kRecovered;
  }
  return Change::kNone;
}

}  // namespace ftccl
