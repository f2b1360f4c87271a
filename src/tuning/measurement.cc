#include "tuning/measurement.h"

#include <algorithm>
#include <chrono>

#include "reduce/reduce.h"

namespace ftccl {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kPingRounds = 20;
constexpr int kBulkRounds = 4;
constexpr int kReduceRounds = 3;
constexpr size_t kPingBytes = 8;

// Calibration, per probe size: warm-up calls, then batches of timed calls (fewer of
// both for large messages, whose calls are long enough to time one by one).
constexpr size_t kLargeProbeBytes = 256u << 10;  // from here: fewer warm-ups and batches
constexpr size_t kMidProbeBytes = 64u << 10;     // from here: fewer calls per batch
constexpr size_t kHugeProbeBytes = 1u << 20;     // from here: fewest calls per batch
constexpr size_t kLastProbeBytes = 2u << 20;     // one call per batch and one warm-up
constexpr int kWarmupCalls = 8, kWarmupCallsLarge = 3;
constexpr int kBatches = 5, kBatchesLarge = 3;

int callsPerBatch(size_t bytes) {
  if (bytes >= kLastProbeBytes) return 1;
  return bytes >= kHugeProbeBytes ? 3 : bytes >= kMidProbeBytes ? 8 : 16;
}

int warmupCalls(size_t bytes) {
  if (bytes >= kLastProbeBytes) return 1;
  return bytes >= kLargeProbeBytes ? kWarmupCallsLarge : kWarmupCalls;
}

int batchesAt(size_t bytes) { return bytes >= kLargeProbeBytes ? kBatchesLarge : kBatches; }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double usSince(Clock::time_point start) {
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
}

}  // namespace

Status measureLinkCost(const RoundTripProbe& roundTrip, bool measurer, bool sameNode,
                       CostModel* model) {
  std::vector<double> small, bulk;
  for (int round = 0; round < kPingRounds + kBulkRounds; ++round) {
    bool isBulk = round >= kPingRounds;
    auto start = Clock::now();
    FTCCL_CHECK(roundTrip(isBulk ? kLinkProbeBytes : kPingBytes, static_cast<uint32_t>(round + 1)));
    (isBulk ? bulk : small).push_back(usSince(start) / 2);
  }
  if (!measurer) return Status::ok();
  double alpha = std::max(0.1, median(small));
  double beta = std::max(1.0, median(bulk) - alpha);  // us per MiB
  std::vector<float> a(kLinkProbeBytes / 4, 1.0f), b(kLinkProbeBytes / 4, 2.0f);
  double gamma = 1e9;
  for (int round = 0; round < kReduceRounds; ++round) {
    auto start = Clock::now();
    reduce(a.data(), a.data(), b.data(), a.size(), ftcclFloat32, ftcclSum);
    gamma = std::min(gamma, usSince(start));
  }
  if (sameNode) {
    model->alphaUs = model->interAlphaUs = alpha;
    model->betaUsPerMiB = model->interBetaUsPerMiB = beta;
  } else {
    model->interAlphaUs = alpha;
    model->interBetaUsPerMiB = beta;
  }
  model->gammaUsPerMiB = std::max(1.0, gamma);
  model->source = "measured by rank 0";
  return Status::ok();
}

// A first untimed pass pays for what only first use costs (endpoint wire-up, first
// touch): with one call per probe, the tree's 64 KiB probe still measured 2-4x its
// steady time (UCX was still wiring the tree's non-ring pairs); with 8 it came within
// 1.5x. Then each probe is a median of batches (5, or 3 from 256 KiB) of back-to-back
// calls, as an application issues them; the algorithms take turns batch by batch, in
// rotated order, so a slow spell of the machine (ranks share cores here) hits them
// alike. Each batch starts after one untimed call, since a batch timed from its first
// call includes the ranks' arrival skew (2 calls timed so took 5x the steady time of 8 B).
int calibrationCallsAt(size_t bytes) {
  return warmupCalls(bytes) + batchesAt(bytes) * (1 + callsPerBatch(bytes));
}

Status calibrateAllReduce(const std::vector<Algorithm>& candidates, const CommShape& shape,
                          const Calibration& plan, const AllReduceProbe& run, Calibration* out) {
  Calibration calibration;
  calibration.shape = shape;
  calibration.skipped = plan.skipped;
  for (Algorithm algorithm : candidates) {
    for (int p = 0; p < Calibration::kProbes; ++p) {
      size_t bytes = Calibration::kProbeBytes[p];
      if (!plan.planned(algorithm, p)) continue;
      FTCCL_CHECK(run(algorithm, bytes, warmupCalls(bytes)));
    }
  }
  for (int p = 0; p < Calibration::kProbes; ++p) {
    size_t bytes = Calibration::kProbeBytes[p];
    std::vector<Algorithm> probed;
    for (Algorithm a : candidates) {
      if (plan.planned(a, p)) probed.push_back(a);
    }
    size_t variants = probed.size();
    if (variants == 0) continue;
    int calls = callsPerBatch(bytes);
    int batches = batchesAt(bytes);
    std::vector<std::vector<double>> perCall(variants);
    for (int batch = 0; batch < batches; ++batch) {
      for (size_t k = 0; k < variants; ++k) {  // rotated: no algorithm always goes first
        size_t v = (k + static_cast<size_t>(batch)) % variants;
        FTCCL_CHECK(run(probed[v], bytes, 1));  // absorbs the ranks' skew
        auto start = Clock::now();
        FTCCL_CHECK(run(probed[v], bytes, calls));
        perCall[v].push_back(usSince(start) / calls);
      }
    }
    for (size_t v = 0; v < variants; ++v) {
      calibration.us[static_cast<int>(probed[v])][p] = std::max(0.1, median(perCall[v]));
    }
  }
  *out = calibration;
  return Status::ok();
}

}  // namespace ftccl
