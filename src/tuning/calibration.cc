#include "tuning/calibration.h"

#include <cmath>
#include <cstdio>

namespace ftccl {

bool Calibration::probed(Algorithm a, int p) {
  return a != Algorithm::kRecursiveDoubling || kProbeBytes[p] <= 256 * 1024;
}

bool Calibration::measured(Algorithm a) const {
  int k = static_cast<int>(a);
  if (k < 0 || k >= kCalibratedAlgorithms) return false;
  for (int p = 0; p < kProbes; ++p) {
    if (probed(a, p) && !(us[k][p] > 0)) return false;
  }
  return true;
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
                        shape.nodesShareMemory ? 1.0 : 0.0};
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
      text += Calibration::probed(static_cast<Algorithm>(a), p) ? value : (p == 0 ? " -" : "/-");
    }
    text += " us";
  }
  if (text.empty()) return "not calibrated";
  return text + " at 8 B/64 KiB/256 KiB/1 MiB/2 MiB on " + std::to_string(c.shape.nranks) +
         " ranks, " + std::to_string(c.shape.nodes) + " node(s)";
}

}  // namespace ftccl
