#include "tuning/cost_model.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace ftccl {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;

// GB/s (10^9 bytes) to us per MiB.
double usPerMiB(double gbps) { return kMiB / (gbps * 1e3); }

}  // namespace

std::vector<double> CostModel::toVector() const {
  return {alphaUs, betaUsPerMiB, gammaUsPerMiB, interAlphaUs, interBetaUsPerMiB};
}

Status CostModel::fromVector(const std::vector<double>& v, CostModel* out) {
  if (v.size() != 5) return internalError("cost model: expected 5 constants");
  for (double x : v) {
    if (!std::isfinite(x) || x <= 0) return internalError("cost model: a constant is not positive");
  }
  out->alphaUs = v[0];
  out->betaUsPerMiB = v[1];
  out->gammaUsPerMiB = v[2];
  out->interAlphaUs = v[3];
  out->interBetaUsPerMiB = v[4];
  return Status::ok();
}

Status parseCostModel(const std::string& text, CostModel* out) {
  CostModel model = *out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    size_t eq = item.find('=');
    std::string key = item.substr(0, eq);
    std::string value = eq == std::string::npos ? "" : item.substr(eq + 1);
    char* end = nullptr;
    double x = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || !std::isfinite(x) || x <= 0) {
      return invalidArgument("FTCCL_TUNING: '" + item + "' needs a positive number");
    }
    if (key == "alpha_us") {
      model.alphaUs = x;
    } else if (key == "beta_gbps") {
      model.betaUsPerMiB = usPerMiB(x);
    } else if (key == "gamma_gbps") {
      model.gammaUsPerMiB = usPerMiB(x);
    } else if (key == "inter_alpha_us") {
      model.interAlphaUs = x;
    } else if (key == "inter_gbps") {
      model.interBetaUsPerMiB = usPerMiB(x);
    } else {
      return invalidArgument("FTCCL_TUNING: unknown key '" + key +
                             "' (alpha_us, beta_gbps, gamma_gbps, inter_alpha_us, inter_gbps)");
    }
  }
  model.source = "FTCCL_TUNING";
  *out = model;
  return Status::ok();
}

std::string describe(const CostModel& m) {
  char text[256];
  std::snprintf(text, sizeof(text),
                "alpha %.1f us, link %.2f GB/s, reduce %.2f GB/s, inter-node alpha %.1f us, "
                "inter-node link %.2f GB/s (%s)",
                m.alphaUs, kMiB / m.betaUsPerMiB / 1e3, kMiB / m.gammaUsPerMiB / 1e3,
                m.interAlphaUs, kMiB / m.interBetaUsPerMiB / 1e3, m.source.c_str());
  return text;
}

}  // namespace ftccl
