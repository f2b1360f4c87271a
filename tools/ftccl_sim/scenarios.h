// Fault scenarios run on a SimCluster, what they measure, and the invariants checked
// after every run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sim_cluster.h"

namespace ftccl {
namespace simtool {

// healthy: no fault; crash: a rank dies; hang: a rank stops (SIGSTOP); host: every
// process of one host dies; rack: one rack is cut off from the rest; double: a rank
// dies, then the agreement's coordinator dies once the news is out; slowlink: one
// ring link gets a 5 ms latency (nothing may be declared failed); random: 1-3 crashes,
// hangs or host losses at random moments, some during the agreement on the one before.
const std::vector<std::string>& scenarioNames();

struct ScenarioResult {
  std::string scenario;
  int ranks = 0, spares = 0;
  uint64_t seed = 0;
  // From the fault: the first survivor's news (detection), the last survivor's news,
  // the last survivor's re-registration in the new epoch; -1 when it did not happen.
  double detectionMs = -1, informedMs = -1, rebuiltMs = -1;
  // Healthy state, per rank and second of virtual time: frames and bytes sent.
  double framesPerRankPerSec = 0, bytesPerRankPerSec = 0;
  uint64_t finalEpoch = 0;
  int finalRanks = 0, finalSpares = 0, expelled = 0;
  uint64_t events = 0;
  double wallSeconds = 0;
  std::string faults;  // what was injected, when
  // slowlink: whether either end's round-trip statistics flagged the link, and the
  // largest round trip they measured on it.
  bool slowLinkFlagged = false;
  double slowLinkRoundTripMs = 0;
  std::vector<std::string> violations;  // broken invariants; empty is a pass
};

ScenarioResult runScenario(const std::string& scenario, const ClusterConfig& config);

}  // namespace simtool
}  // namespace ftccl
