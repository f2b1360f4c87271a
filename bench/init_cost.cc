// Prices init at scales this machine cannot run, from the library's own code: the
// tuner's cost model, its calibration plan and call counts, and the bootstrap table's
// layout (issue 27, docs/init-scaling.md). Per process count N (8 ranks a node):
//  - rendezvous: the table each process receives and what the root sends in all (every
//    process a table of N blobs: bootstrap/wire.h's 20-byte frame header, nonce and
//    count, a 4-byte length per blob, a 16-byte proof), and the root's send time on a
//    given link;
//  - tuning shared twice at init (cost model, calibration): a chain's N - 1 hops against
//    the binomial tree's ceil(log2 N) rounds, at the model's inter-node latency;
//  - calibration: the model's time for every probe call of every candidate, all probes
//    against the plan's (Calibration::plan skips what the model rules out).
// usage: init_cost [--blob B] [--model FTCCL_TUNING-string] [--link-gbps G] [N ...]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tuning/algorithm_choice.h"
#include "tuning/calibration.h"
#include "tuning/measurement.h"

using namespace ftccl;

namespace {

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
      "between, 12.5 GB/s); --link-gbps: the root's link (12.5).\n";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::printf("%s", usage);
      return 0;
    }
    if (!std::strcmp(argv[i], "--blob") && i + 1 < argc) {
      blob = std::atof(argv[++i]);
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
  std::printf("# %s; blob %.0f B; root link %.1f GB/s; 8 ranks a node\n", describe(model).c_str(),
              blob, linkGbps);
  std::printf(
      "| processes | table per process | root sends | root send time | tuning shared twice: "
      "chain / binomial | calibration: all probes / planned | skipped |\n|---|---|---|---|---|---|"
      "---|\n");
  for (int n : counts) {
    const int perNode = std::min(n, 8);
    const CommShape shape{
        n, (n + perNode - 1) / perNode, perNode, n % perNode == 0, n <= 8, false, n > 8};
    const double table = 20 + 12 + n * (4 + blob) + 16;
    const double root = n * table;
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
    std::printf("| %d | %.3g B | %.3g B | %.3g s | %.3g / %.3g ms | %.3g / %.3g s | %s |\n", n,
                table, root, root / (linkGbps * 1e9), chainMs, treeMs,
                calibrationUs(bare, shape, nullptr) / 1e6, calibrationUs(bare, shape, &plan) / 1e6,
                skipped.empty() ? "none" : skipped.c_str());
  }
  return 0;
}
