#include "health/link_quality.h"

#include <algorithm>
#include <cmath>

namespace ftccl {
namespace {

constexpr double kFirstBucketMs = 0.01;
constexpr double kBucketGrowth = 1.12;

int bucketOf(double ms) {
  if (ms <= kFirstBucketMs) return 0;
  int b = 1 + static_cast<int>(std::log(ms / kFirstBucketMs) / std::log(kBucketGrowth));
  return std::min(b, RoundTripStats::kBuckets - 1);
}

}  // namespace

void RoundTripStats::add(double ms) {
  minMs_ = samples_ == 0 ? ms : std::min(minMs_, ms);
  ++samples_;
  sumMs_ += ms;
  ++buckets_[bucketOf(ms)];
}

// The upper edge of the bucket holding the fraction-th sample.
double RoundTripStats::percentileMs(double fraction) const {
  if (samples_ == 0) return 0;
  uint64_t rank = static_cast<uint64_t>(std::ceil(fraction * static_cast<double>(samples_)));
  uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += buckets_[b];
    if (seen >= rank) return kFirstBucketMs * std::pow(kBucketGrowth, b);
  }
  return kFirstBucketMs * std::pow(kBucketGrowth, kBuckets - 1);
}

// The round trip above which a link counts as slow, against a reference one (its own
// baseline, or the median of the other links): kSlowFactor times it, and at least
// kSlowMarginMs more, so that microsecond-scale jitter on a fast link flags nothing.
double LinkQuality::slowThresholdMs(double referenceMs) {
  return std::max(kSlowFactor * referenceMs, referenceMs + kSlowMarginMs);
}

LinkQuality::Change LinkQuality::compareWithOthers(double othersMs) {
  if (!full()) return Change::kNone;
  double high = slowThresholdMs(othersMs);
  if (!slowerThanOthers_ && levelMs_ > high) {
    slowerThanOthers_ = true;
    return Change::kDegraded;
  }
  if (slowerThanOthers_ && highestMs_ < high) {
    slowerThanOthers_ = false;
    return Change::kRecovered;
  }
  return Change::kNone;
}

LinkQuality::Change LinkQuality::record(double roundTripMs) {
  stats_.add(roundTripMs);
  lastMs_ = roundTripMs;
  maxMs_ = std::max(maxMs_, roundTripMs);
  baselineMs_ = samples_ == 0 ? roundTripMs : std::min(baselineMs_, roundTripMs);
  recent_[next_] = roundTripMs;
  next_ = (next_ + 1) % kWindow;
  samples_ = std::min(samples_ + 1, kWindow);
  levelMs_ = *std::min_element(recent_.begin(), recent_.begin() + samples_);
  highestMs_ = *std::max_element(recent_.begin(), recent_.begin() + samples_);
  if (samples_ < kWindow) return Change::kNone;
  double high = slowThresholdMs(baselineMs_);
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
