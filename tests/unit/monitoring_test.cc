// The health wiring of an epoch (health/epoch_wiring.h), which the library and the
// simulator share: whom each member probes (ring neighbours and the rank across the
// ring; node leaders also probe neighbouring leaders; spares and ranks watch each
// other), and former members.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "health/epoch_wiring.h"

namespace ftccl {
namespace {

ProcessKey keyOf(int process) { return "p" + std::to_string(process); }

// Processes 0..n-1 are ranks, n..n+spares-1 spares; process p runs on node nodeOf[p].
EpochTable table(const std::vector<int>& nodeOfRank, int spares = 0,
                 const std::vector<ProcessKey>& alsoKnown = {}) {
  auto membership = std::make_shared<Membership>();
  const int n = static_cast<int>(nodeOfRank.size());
  for (int p = 0; p < n + spares; ++p) {
    (p < n ? membership->ranks : membership->spares).push_back(keyOf(p));
  }
  std::vector<ProcessKey> known = alsoKnown;
  for (int p = 0; p < n + spares; ++p) known.push_back(keyOf(p));
  return buildEpochTable(
      membership,
      [&](const ProcessKey& key) {
        int p = std::stoi(key.substr(1));
        int node = p < n ? nodeOfRank[p] : 1000 + p;
        return ProcessPlace{"host" + std::to_string(node), 100 + p, ""};
      },
      known);
}

std::vector<int> monitoredBy(const EpochTable& t, int member) {
  return registrationFor(t, keyOf(member), 1, HealthPolicy{}, nullptr, nullptr).monitored;
}

TEST(Monitoring, RingNeighboursForEveryRankCount) {
  for (int n = 1; n <= 64; ++n) {
    EpochTable one = table(std::vector<int>(n, 0));
    std::vector<std::set<int>> watchedBy(n);
    for (int r = 0; r < n; ++r) {
      std::vector<int> m = monitoredBy(one, r);
      for (int p : m) {
        EXPECT_NE(p, r);
        watchedBy[p].insert(r);
      }
      EXPECT_LE(m.size(), 3u);
      // From 4 ranks, the rank across the ring too.
      if (n >= 4) {
        EXPECT_NE(std::find(m.begin(), m.end(), (r + n / 2) % n), m.end()) << n;
      }
    }
    // Every rank is watched by someone (when there is someone), so any death is seen.
    for (int r = 0; r < n && n > 1; ++r) EXPECT_FALSE(watchedBy[r].empty()) << n << " " << r;
  }
}

// Hosts and racks are runs of consecutive ranks: every rank of a run of fewer than half
// of them is watched by a rank outside the run, so a host or rack that fails together is
// seen through outside watchers (issue 27), not only at its two ends.
TEST(Monitoring, EveryRunOfFewerThanHalfIsWatchedFromOutside) {
  for (int n : {4, 5, 9, 16, 33, 64}) {
    EpochTable one = table(std::vector<int>(n, 0));
    std::vector<std::vector<int>> watches(n);
    for (int r = 0; r < n; ++r) watches[r] = monitoredBy(one, r);
    for (int length = 1; 2 * length < n; ++length) {
      for (int first = 0; first < n; ++first) {
        auto inRun = [&](int r) { return (r - first + n) % n < length; };
        for (int victim = 0; victim < n; ++victim) {
          if (!inRun(victim)) continue;
          bool seen = false;
          for (int w = 0; w < n && !seen; ++w) {
            seen = !inRun(w) &&
                   std::find(watches[w].begin(), watches[w].end(), victim) != watches[w].end();
          }
          EXPECT_TRUE(seen) << n << " ranks, run of " << length << " from " << first << ": rank "
                            << victim << " is watched only inside it";
        }
      }
    }
  }
}

TEST(Monitoring, NodeLeadersWatchNeighbouringLeaders) {
  // Nodes: {0,1,2} {3,4} {5,6,7}: leaders 0, 3, 5.
  EpochTable t = table({0, 0, 0, 1, 1, 2, 2, 2});
  auto has = [&](int r, int p) {
    std::vector<int> m = monitoredBy(t, r);
    return std::find(m.begin(), m.end(), p) != m.end();
  };
  EXPECT_TRUE(has(0, 3));
  EXPECT_TRUE(has(0, 5));
  EXPECT_TRUE(has(3, 0));
  EXPECT_TRUE(has(3, 5));
  EXPECT_TRUE(has(5, 3));
  EXPECT_FALSE(has(1, 3)) << "non-leaders watch only their ring neighbours and across";
  EXPECT_EQ(monitoredBy(t, 1), (std::vector<int>{0, 2, 5}));
}

// Spare j (member nRanks + j) is watched by rank j % nRanks and watches it back, so a
// spare's death is seen and a spare hears when its rank is gone.
TEST(Monitoring, SparesAndRanksWatchEachOther) {
  EpochTable t = table({0, 0, 0}, /*spares=*/4);
  for (int j = 0; j < 4; ++j) {
    int spare = 3 + j, rank = j % 3;
    EXPECT_EQ(monitoredBy(t, spare), (std::vector<int>{rank})) << "spare " << j;
    std::vector<int> m = monitoredBy(t, rank);
    EXPECT_NE(std::find(m.begin(), m.end(), spare), m.end()) << "spare " << j;
  }
}

TEST(Monitoring, FormerMembersAreTheKnownProcessesNotInTheEpoch) {
  EpochTable t = table({0, 0}, 0, {keyOf(7), keyOf(9)});
  EXPECT_EQ(t.formerMembers, (std::vector<ProcessKey>{keyOf(7), keyOf(9)}));
  HealthRegistration reg = registrationFor(t, keyOf(1), 5, HealthPolicy{}, nullptr, nullptr);
  EXPECT_EQ(reg.myRank, 1);
  EXPECT_EQ(reg.formerMembers, t.formerMembers);
  EXPECT_EQ(reg.members->nRanks, 2);
  EXPECT_TRUE(reg.recoverable);
  // A process the epoch does not name is not a member: nothing to probe.
  HealthRegistration gone = registrationFor(t, keyOf(7), 5, HealthPolicy{}, nullptr, nullptr);
  EXPECT_EQ(gone.myRank, -1);
  EXPECT_TRUE(gone.monitored.empty());
}

}  // namespace
}  // namespace ftccl
