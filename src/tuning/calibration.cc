#include "tuning/calibration.h"

#include <cmath>
#include <cstdio>

namespace ftccl {

bool Calibration::probed(Algorithm a, int p) {
  return a != Algorithm::kRecursiveDoubling || kProbeBytes[p] <= 256 * 1024;
}

bool Calibration::planned(Algorithm a, int p) const {
  const int k = static_cast<int>(a);
  if (k < 0 || k >= kCalibratedAlgorithms || p < 0 || p >= kProbes) return false;
  return probed(a, p) && (skipped >> (k * kProbes + p) & 1u) == 0;
}

bool Calibration::measured(Algorithm a) const {
  int k = static_cast<int>(a);
  if (k < 0 || k >= kCalibratedAlgorithms) return false;
  bool any = false;
  for (int p = 0; p < kProbes; ++p) {
    if (!planned(a, p)) continue;
    if (!(us[k][p] > 0)) return false;
    any = true;
  }
  return any;
}

bool Calibration::ruledOut(Algorithm a) const {
  bool anyProbed = false;
  for (int p = 0; p < kProbes; ++p) {
    if (planned(a, p)) return false;
    anyProbed = anyProbed || probed(a, p);
  }
  return anyProbed;
}

void Calibration::plan(const std::vector<Algorithm>& candidates,
                       const std::function<double(Algorithm, size_t)>& modelledUs) {
  skipped = 0;
  for (int p = 0; p < kProbes; ++p) {
    double best = -1;
    for (Algorithm a : candidates) {
      if (!probed(a, p)) continue;
      const double t = modelledUs(a, kProbeBytes[p]);
      if (t > 0 && (best < 0 || t < best)) best = t;
    }
    for (Algorithm a : candidates) {
      const int k = static_cast<int>(a);
      if (k < 0 || k >= kCalibratedAlgorithms || !probed(a, p) || best < 0) continue;
      if (modelledUs(a, kProbeBytes[p]) > kHopeless * best) skipped |= 1u << (k * kProbes + p);
    }
  }
}

std::vector<double> Calibration::toVector() const {
  // Every field of the shape: the corrections divide by the model of the shape measured.
  std::vector<double> v{requested ? 1.0 : 0.0,
                        static_cast<double>(shape.nranks),
                        static_cast<double>(shape.nodes),
                        static_cast<double>(shape.maxRanksPerNode),
                        shape.uniformNodes ? 1.0 : 0.0,
                        shape.sharedMemory ? 1.0 : 0.0,
                        shape.singleCopy ? 1.0 : 0.0,
                        shape.nodesShareMemory ? 1.0 : 0.0,
                        static_cast<double>(skipped)};
  for (const auto& algorithm : us) v.insert(v.end(), std::begin(algorithm), std::end(algorithm));
  return v;
}

Status Calibration::fromVector(const std::vector<double>& v, Calibration* out) {
  if (v.size() != kVectorSize) return internalError("calibration: wrong number of values");
  for (double x : v) {
    if (!std::isfinite(x) || x < 0) return internalError("calibration: a value is negative");
  }
  Calibration c;
  c.requested = v[0] != 0;
  c.shape = CommShape{static_cast<int>(v[1]),
                      static_cast<int>(v[2]),
                      static_cast<int>(v[3]),
                      v[4] != 0,
                      v[5] != 0,
                      v[6] != 0,
                      v[7] != 0};
  constexpr double kAllSkipped = double(1u << (kCalibratedAlgorithms * kProbes));
  if (v[8] >= kAllSkipped || v[8] != std::floor(v[8])) {
    return internalError("calibration: the skipped probes are not a mask");
  }
  c.skipped = static_cast<uint32_t>(v[8]);
  for (int a = 0; a < kCalibratedAlgorithms; ++a) {
    for (int p = 0; p < kProbes; ++p) c.us[a][p] = v[kShapeValues + a * kProbes + p];
  }
  *out = c;
  return Status::ok();
}

std::string describe(const Calibration& c) {
  std::string text;
  for (int a = 0; a < kCalibratedAlgorithms; ++a) {
    if (!c.measured(static_cast<Algorithm>(a))) continue;
    text += std::string(text.empty() ? "" : ", ") + algorithmName(static_cast<Algorithm>(a));
    for (int p = 0; p < Calibration::kProbes; ++p) {
      char value[32];
      std::snprintf(value, sizeof value, "%s%.0f", p == 0 ? " " : "/", c.us[a][p]);
      text += c.planned(static_cast<Algorithm>(a), p) ? value : (p == 0 ? " -" : "/-");
    }
    text += " us";
  }
  if (text.empty()) return "not calibrated";
  return text + " at 8 B/64 KiB/256 KiB/1 MiB/2 MiB on " + std::to_string(c.shape.nranks) +
         " ranks, " + std::to_string(c.shape.nodes) + " node(s)";
}

}  // namespace ftccl
