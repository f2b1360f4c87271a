// Whom each rank probes: ring neighbours, and node leaders probe neighbouring leaders.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "core/communicator.h"

namespace ftccl {
namespace {

std::vector<PeerInfo> nodes(const std::vector<int>& nodeOfRank) {
  std::vector<PeerInfo> peers(nodeOfRank.size());
  for (size_t r = 0; r < peers.size(); ++r) peers[r].node = "n" + std::to_string(nodeOfRank[r]);
  return peers;
}

TEST(Monitoring, RingNeighboursForEveryRankCount) {
  for (int n = 1; n <= 64; ++n) {
    std::vector<PeerInfo> one = nodes(std::vector<int>(n, 0));
    std::vector<std::set<int>> watchedBy(n);
    for (int r = 0; r < n; ++r) {
      std::vector<int> m = monitoredRanks(one, r);
      for (int p : m) {
        EXPECT_NE(p, r);
        watchedBy[p].insert(r);
      }
      EXPECT_LE(m.size(), 2u);
    }
    // Every rank is watched by someone (when there is someone), so any death is seen.
    for (int r = 0; r < n && n > 1; ++r) EXPECT_FALSE(watchedBy[r].empty()) << n << " " << r;
  }
}

TEST(Monitoring, NodeLeadersWatchNeighbouringLeaders) {
  // Nodes: {0,1,2} {3,4} {5,6,7}: leaders 0, 3, 5.
  std::vector<PeerInfo> peers = nodes({0, 0, 0, 1, 1, 2, 2, 2});
  auto has = [&](int r, int p) {
    std::vector<int> m = monitoredRanks(peers, r);
    return std::find(m.begin(), m.end(), p) != m.end();
  };
  EXPECT_TRUE(has(0, 3));
  EXPECT_TRUE(has(0, 5));
  EXPECT_TRUE(has(3, 0));
  EXPECT_TRUE(has(3, 5));
  EXPECT_TRUE(has(5, 3));
  EXPECT_FALSE(has(1, 3)) << "non-leaders watch only their ring neighbours";
  EXPECT_EQ(monitoredRanks(peers, 1), (std::vector<int>{0, 2}));
}

}  // namespace
}  // namespace ftccl
