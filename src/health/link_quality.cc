#include "health/link_quality.h"

#include <algorithm>

namespace ftccl {

LinkQuality::Change LinkQuality::record(double roundTripMs) {
  lastMs_ = roundTripMs;
  maxMs_ = std::max(maxMs_, roundTripMs);
  baselineMs_ = samples_ == 0 ? roundTripMs : std::min(baselineMs_, roundTripMs);
  recent_[next_] = roundTripMs;
  next_ = (next_ + 1) % kWindow;
  samples_ = std::min(samples_ + 1, kWindow);
  levelMs_ = *std::min_element(recent_.begin(), recent_.begin() + samples_);
  highestMs_ = *std::max_element(recent_.begin(), recent_.begin() + samples_);
  if (samples_ < kWindow) return Change::kNone;
  double high = std::max(4 * baselineMs_, baselineMs_ + 5);
  if (!degraded_ && levelMs_ > high) {
    degraded_ = true;
    return Change::kDegraded;
  }
  if (degraded_ && highestMs_ < high) {
    degraded_ = false;
    return Change::kRecovered;
  }
  return Change::kNone;
}

}  // namespace ftccl
