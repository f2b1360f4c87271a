// The fault-tolerance protocol at 64-1,024 virtual ranks (tools/ftccl_sim): every
// scenario and many random fault schedules keep the invariants; runs are a function of
// their seed. Times here are virtual, so bounds on them are exact, not flaky.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "scenarios.h"

namespace ftccl {
namespace simtool {
namespace {

// One log line per survivor and failure is too many (FTCCL_DEBUG, if set, wins).
const bool kQuiet = [] { return setenv("FTCCL_DEBUG", "off", 0) == 0; }();

ClusterConfig configFor(int ranks, int spares, uint64_t seed) {
  ClusterConfig c;
  c.ranks = ranks;
  c.spares = spares;
  c.hostsPerRack = ranks <= 64 ? 2 : 4;  // racks of 16 or 32 processes: a minority (and
                                         // a short walk when it holds the coordinator)
  c.seed = seed;
  return c;
}

std::string describe(const ScenarioResult& r) {
  std::string text = r.scenario + " at " + std::to_string(r.ranks) + " ranks, " +
                     std::to_string(r.spares) + " spares, seed " + std::to_string(r.seed) + " (" +
                     r.faults + "):";
  for (const std::string& v : r.violations) text += "\n  " + v;
  return text;
}

TEST(SimScale, EveryScenarioKeepsTheInvariants) {
  for (int ranks : {64, 256}) {
    for (const std::string& scenario : scenarioNames()) {
      for (uint64_t seed = 1; seed <= 2; ++seed) {
        ScenarioResult r = runScenario(scenario, configFor(ranks, 4, seed));
        EXPECT_TRUE(r.violations.empty()) << describe(r);
        if (scenario == "healthy" || scenario == "slowlink") {
          EXPECT_EQ(r.finalEpoch, 0u) << describe(r);
          EXPECT_LT(r.detectionMs, 0) << describe(r) << " declared a failure";
        } else {
          EXPECT_GE(r.finalEpoch, 1u) << describe(r);
          EXPECT_GE(r.rebuiltMs, 0) << describe(r) << " never rebuilt";
        }
      }
    }
  }
}

// Random schedules: 1-3 faults, and in one of two a second failure tied to the rebuild
// (the coordinator while it decides; 0-5 ms after the first process entered the new
// epoch, that epoch's coordinator or the spare just activated). Each kind must occur.
TEST(SimScale, RandomFaultSchedulesKeepTheInvariants) {
  std::map<std::string, int> followUps;
  auto check = [&](const ScenarioResult& r) {
    EXPECT_TRUE(r.violations.empty()) << describe(r);
    for (const char* kind : {"the coordinator, while deciding", "the new epoch's coordinator",
                             "the activated spare"}) {
      if (r.faults.find(kind) != std::string::npos) ++followUps[kind];
    }
  };
  for (uint64_t seed = 1; seed <= 120; ++seed) {
    const int spares = static_cast<int>(seed % 3) * 2;  // 0 (shrink), 2 or 4 spares
    check(runScenario("random", configFor(64, spares, seed)));
  }
  for (uint64_t seed = 1; seed <= 8; ++seed) check(runScenario("random", configFor(256, 4, seed)));
  for (uint64_t seed = 1; seed <= 3; ++seed) check(runScenario("random", configFor(1024, 8, seed)));
  for (const char* kind :
       {"the coordinator, while deciding", "the new epoch's coordinator", "the activated spare"}) {
    EXPECT_GT(followUps[kind], 0) << "no schedule killed " << kind;
    std::printf("[ measure  ] %d schedule(s) killed %s\n", followUps[kind], kind);
  }
}

TEST(SimScale, ARunIsAFunctionOfItsSeed) {
  ScenarioResult a = runScenario("random", configFor(64, 2, 11));
  ScenarioResult b = runScenario("random", configFor(64, 2, 11));
  EXPECT_EQ(a.events, b.events);
  EXPECT_EQ(a.rebuiltMs, b.rebuiltMs);
  EXPECT_EQ(a.finalEpoch, b.finalEpoch);
  ScenarioResult c = runScenario("random", configFor(64, 2, 12));
  EXPECT_NE(a.events, c.events);
}

// A crash closes connections: detected within a few latencies. A hang is silence:
// detected one failure timeout (plus at most one probe interval) after it began.
TEST(SimScale, DetectionAndAgreementBounds) {
  ClusterConfig c = configFor(256, 4, 5);
  ScenarioResult crash = runScenario("crash", c);
  EXPECT_LT(crash.detectionMs, 0.1) << describe(crash);
  EXPECT_LT(crash.rebuiltMs - crash.detectionMs, 5.0) << describe(crash);
  EXPECT_EQ(crash.finalRanks, 256);
  ScenarioResult hang = runScenario("hang", c);
  EXPECT_GE(hang.detectionMs, c.failureTimeoutMs);
  EXPECT_LE(hang.detectionMs, c.failureTimeoutMs + 2 * c.probeIntervalMs + 1);
}

// A host's eight processes die at once. Some are watched only from outside and found in
// an order that sends most detectors' news to the host's own (dead) relay; the relay
// above waited on a dead child until the coordinator's next tick spread what it knew
// (a probe interval: 10.4 ms at 1,000 ranks for some hosts). The coordinator now tells
// those waiting at once.
TEST(SimScale, AHostOrRackIsAgreedOnWithinAProbeInterval) {
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    ClusterConfig c = configFor(1000, 16, seed);
    c.hostsPerRack = 32;
    ScenarioResult host = runScenario("host", c);
    EXPECT_TRUE(host.violations.empty()) << describe(host);
    EXPECT_LT(host.rebuiltMs - host.detectionMs, c.probeIntervalMs / 2.0) << describe(host);
  }
  // A rack of 256 at 10,000 ranks where the last failure the coordinator heard of came in
  // a relay's vote, not a detector's news: it must tell those waiting on it too (10.4 ms
  // before; seconds of wall time, the one run here at that size).
  ClusterConfig c = configFor(10000, 16, 1);
  c.hostsPerRack = 32;
  c.healthyMs = 100;
  ScenarioResult rack = runScenario("rack", c);
  EXPECT_TRUE(rack.violations.empty()) << describe(rack);
  EXPECT_LT(rack.rebuiltMs - rack.detectionMs, c.probeIntervalMs / 2.0) << describe(rack);
}

// The rack holding rank 0, the first coordinator candidate, cut off: the next candidate
// (coordinator order) is outside it, so the survivors settle as fast as for any other
// rack (it used to walk the 256 dead candidates one by one, never settling in time).
TEST(SimScale, LosingTheCoordinatorsRackCostsNoMoreThanAnotherRack) {
  ClusterConfig c = configFor(1024, 8, 2);
  c.hostsPerRack = 32;  // racks of 256
  ScenarioResult coordRack = runScenario("coordrack", c);
  EXPECT_TRUE(coordRack.violations.empty()) << describe(coordRack);
  EXPECT_EQ(coordRack.finalRanks, 1024 - 256 + 8);
  ScenarioResult rack = runScenario("rack", c);
  EXPECT_TRUE(rack.violations.empty()) << describe(rack);
  // Detection (one failure timeout), the coordinator's two stalls on the silent
  // members, and a few milliseconds of messages.
  EXPECT_LE(coordRack.rebuiltMs, 4 * c.failureTimeoutMs + 15) << describe(coordRack);
  EXPECT_LE(coordRack.rebuiltMs, rack.rebuiltMs + 5) << describe(coordRack);
}

TEST(SimScale, WithoutSparesTheSurvivorsShrink) {
  ScenarioResult r = runScenario("host", configFor(64, 0, 3));
  EXPECT_TRUE(r.violations.empty()) << describe(r);
  EXPECT_EQ(r.finalRanks, 56);  // one host of 8 gone
  EXPECT_EQ(r.finalSpares, 0);
}

}  // namespace
}  // namespace simtool
}  // namespace ftccl
