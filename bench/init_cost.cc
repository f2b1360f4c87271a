// Prices init at scales this machine cannot run, from the library's own code: the
// tuner's cost model, its calibration plan and call counts, and the bootstrap table's
// layout (issue 27, docs/init-scaling.md). Per process count N (8 ranks a node):
//  - rendezvous: the table frame each process receives (bootstrap/wire.h: a 20-byte
//    header, nonce and count, a 4-byte length per blob), and through the relay
//    (bootstrap/relay.h, its own RelayTree, FTCCL_BOOTSTRAP_FANOUT's default) how many
//    frames the root sends, the most any process sends, the tree's depth and when the
//    last process has the table (each sender sends its frames one after another at the
//    link's rate, plus the latency per hop), against the root sending all N itself;
//  - tuning shared twice at init (cost model, calibration): a chain's N - 1 hops against
//    the binomial tree's ceil(log2 N) rounds, at the model's inter-node latency;
//  - calibration: the model's time for every probe call of every candidate, all probes
//    against the plan's (Calibration::plan skips what the model rules out).
// usage: init_cost [--blob B] [--model FTCCL_TUNING-string] [--link-gbps G] [--fanout F] [N ...]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bootstrap/relay.h"
#include "tuning/algorithm_choice.h"
#include "tuning/calibration.h"
#include "tuning/measurement.h"

using namespace ftccl;

namespace {

struct RelayCost {
  double rootFrames = 0, mostFrames = 0, depth = 0, lastSeconds = 0;
};

// When each process has the table: a root child the i-th of the root's sends, a child
// of p the j-th of p's sends after p has it.
RelayCost relayCost(int n, int fanout, double frameSeconds, double latencySeconds) {
  const bootstrap::RelayTree tree(std::vector<bool>(static_cast<size_t>(n), true), fanout);
  std::vector<double> at(static_cast<size_t>(n));
  std::vector<uint32_t> sent(static_cast<size_t>(n), 0);
  RelayCost cost;
  for (size_t i = 0; i < at.size(); ++i) {
    const int p = tree.parentOf(i);
    if (p < 0) {
      at[i] = ++cost.rootFrames * frameSeconds + latencySeconds;
    } else {
      const size_t q = static_cast<size_t>(p);
      at[i] = at[q] + ++sent[q] * frameSeconds + latencySeconds;
    }
    cost.mostFrames = std::max<double>(cost.mostFrames, tree.childrenOf(i));
    cost.depth = std::max<double>(cost.depth, tree.depthOf(i));
    cost.lastSeconds = std::max(cost.lastSeconds, at[i]);
  }
  return cost;
}

double calibrationUs(const Tuner& bare, const CommShape& shape, const Calibration* plan) {
  double us = 0;
  for (Algorithm a : Tuner::candidates(CollectiveKind::kAllReduce, shape)) {
    for (int p = 0; p < Calibration::kProbes; ++p) {
      if (plan ? !plan->planned(a, p) : !Calibration::probed(a, p)) continue;
      const size_t bytes = Calibration::kProbeBytes[p];
      us += calibrationCallsAt(bytes) * bare.modelUs(CollectiveKind::kAllReduce, a, bytes, shape);
    }
  }
  return us;
}

}  // namespace

int main(int argc, char** argv) {
  double blob = 661;  // this VM's PeerInfo over loopback (bench/init_scale.sh)
  double linkGbps = 12.5;
  int fanout = bootstrap::kDefaultRelayFanout;
  CostModel model;
  // A cluster, not this VM: 2 us inside a node and 5 us between nodes, 12.5 GB/s.
  if (!parseCostModel("alpha_us=2,beta_gbps=12.5,inter_alpha_us=5,inter_gbps=12.5", &model)
           .isOk()) {
    return 2;
  }
  std::vector<int> counts;
  const char* usage =
      "usage: init_cost [--blob B] [--model FTCCL_TUNING-string] [--link-gbps G] [N ...]\n"
      "Prices init at N processes (default 64 1000 10000 100000, 8 a node) from the tuner's\n"
      "model and calibration plan and the bootstrap table's layout: the table per process,\n"
      "what the root sends, tuning shared as a chain and as a binomial tree, calibration\n"
      "with every probe and with the plan. --blob: one process's PeerInfo (bytes; 661 on\n"
      "this VM over loopback); --model: the cluster (default 2 us inside a node, 5 us\n"
      "between, 12.5 GB/s); --link-gbps: every process's link (12.5); --fanout: the\n"
      "relay's (8).\n";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::printf("%s", usage);
      return 0;
    }
    if (!std::strcmp(argv[i], "--blob") && i + 1 < argc) {
      blob = std::atof(argv[++i]);
    } else if (!std::strcmp(argv[i], "--fanout") && i + 1 < argc) {
      fanout = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--link-gbps") && i + 1 < argc) {
      linkGbps = std::atof(argv[++i]);
    } else if (!std::strcmp(argv[i], "--model") && i + 1 < argc) {
      Status st = parseCostModel(argv[++i], &model);
      if (!st.isOk()) {
        std::fprintf(stderr, "%s\n", st.message().c_str());
        return 2;
      }
    } else if (argv[i][0] != '-') {
      counts.push_back(std::atoi(argv[i]));
    } else {
      std::fprintf(stderr, "%s", usage);
      return 2;
    }
  }
  if (counts.empty()) counts = {64, 1000, 10000, 100000};
  const Tuner bare(model, AlgorithmOverrides{}, PipelineConfig{});
  const double sharedBytes = 8.0 * (bare.toVector().size());
  std::printf("# %s; blob %.0f B; links %.1f GB/s; fanout %d; 8 ranks a node\n",
              describe(model).c_str(), blob, linkGbps, fanout);
  std::printf(
      "| processes | table frame | root sends (frames) | most a process sends | depth | all have "
      "it: relay / root alone | tuning shared twice: chain / binomial | calibration: all probes "
      "/ planned | skipped |\n|---|---|---|---|---|---|---|---|---|\n");
  for (int n : counts) {
    const int perNode = std::min(n, 8);
    const CommShape shape{
        n, (n + perNode - 1) / perNode, perNode, n % perNode == 0, n <= 8, false, n > 8};
    const double table = 20 + 12 + n * (4 + blob);
    const double frameSeconds = table / (linkGbps * 1e9);
    const double latencySeconds = model.interAlphaUs / 1e6;
    const RelayCost relay = relayCost(n, fanout, frameSeconds, latencySeconds);
    const double hopUs =
        bare.modelUs(CollectiveKind::kBroadcast, Algorithm::kRing, static_cast<size_t>(sharedBytes),
                     CommShape{2, 2, 1, true, false, false, false});
    const double chainMs = 2 * (n - 1) * hopUs / 1e3;
    const double treeMs = 2 * std::ceil(std::log2(std::max(n, 2))) * hopUs / 1e3;
    Calibration plan;
    plan.plan(Tuner::candidates(CollectiveKind::kAllReduce, shape), [&](Algorithm a, size_t b) {
      return bare.modelUs(CollectiveKind::kAllReduce, a, b, shape);
    });
    std::string skipped;
    for (Algorithm a : Tuner::candidates(CollectiveKind::kAllReduce, shape)) {
      int k = 0;
      for (int p = 0; p < Calibration::kProbes; ++p) {
        k += Calibration::probed(a, p) && !plan.planned(a, p);
      }
      if (k)
        skipped +=
            std::string(skipped.empty() ? "" : ", ") + algorithmName(a) + " x" + std::to_string(k);
    }
    std::printf(
        "| %d | %.3g B | %.3g B (%.0f) | %.3g B | %.0f | %.3g / %.3g s | %.3g / %.3g ms | "
        "%.3g / %.3g s | %s |\n",
        n, table, relay.rootFrames * table, relay.rootFrames, relay.mostFrames * table, relay.depth,
        relay.lastSeconds, n * frameSeconds + latencySeconds, chainMs, treeMs,
        calibrationUs(bare, shape, nullptr) / 1e6, calibrationUs(bare, shape, &plan) / 1e6,
        skipped.empty() ? "none" : skipped.c_str());
  }
  return 0;
}
