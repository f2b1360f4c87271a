// topology/: node grouping must give every rank the same nodes in the same ring order,
// and the hwloc probe must give sane values on whatever machine runs the tests.
#include "topology/topology.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace ftccl {
namespace {

Locality at(int package, int numaNode) {
  Locality l;
  l.package = package;
  l.numaNode = numaNode;
  l.packages = 2;
  l.numaNodes = 4;
  return l;
}

using Nodes = std::vector<std::vector<int>>;

TEST(GroupByNode, ContiguousNames) {
  const NodeLayout layout = groupByNode({"a", "a", "b", "b"}, {});
  EXPECT_EQ(layout.nodes, (Nodes{{0, 1}, {2, 3}}));
  EXPECT_EQ(layout.nodeOfRank, (std::vector<int>{0, 0, 1, 1}));
  EXPECT_TRUE(layout.uniform());
  EXPECT_EQ(layout.maxRanksPerNode(), 2);
  EXPECT_EQ(describe(layout), "2 nodes: {0,1} {2,3}");
}

TEST(GroupByNode, InterleavedNames) {
  const NodeLayout layout = groupByNode({"a", "b", "a", "b", "a", "b"}, {});
  EXPECT_EQ(layout.nodes, (Nodes{{0, 2, 4}, {1, 3, 5}}));
  EXPECT_EQ(layout.nodeOfRank, (std::vector<int>{0, 1, 0, 1, 0, 1}));
  EXPECT_TRUE(layout.uniform());
  EXPECT_EQ(describe(layout), "2 nodes: {0,2,4} {1,3,5}");
}

// Node numbers follow each node's lowest rank, not the names' order.
TEST(GroupByNode, NodesNumberedByLowestRank) {
  const NodeLayout layout = groupByNode({"zeta", "alpha", "zeta", "mid"}, {});
  EXPECT_EQ(layout.nodes, (Nodes{{0, 2}, {1}, {3}}));
  EXPECT_EQ(layout.nodeOfRank, (std::vector<int>{0, 1, 0, 2}));
}

TEST(GroupByNode, UnevenNodes) {
  const NodeLayout layout = groupByNode({"a", "a", "a", "b", "c", "c"}, {});
  EXPECT_EQ(layout.nodes, (Nodes{{0, 1, 2}, {3}, {4, 5}}));
  EXPECT_FALSE(layout.uniform());
  EXPECT_EQ(layout.maxRanksPerNode(), 3);
  EXPECT_EQ(describe(layout), "3 nodes: {0,1,2} {3} {4,5}");
}

TEST(GroupByNode, OneNode) {
  const NodeLayout layout = groupByNode({"h", "h", "h"}, {});
  EXPECT_EQ(layout.nodes, (Nodes{{0, 1, 2}}));
  EXPECT_EQ(layout.nodeOfRank, (std::vector<int>{0, 0, 0}));
  EXPECT_TRUE(layout.uniform());
  EXPECT_EQ(layout.maxRanksPerNode(), 3);
  EXPECT_EQ(describe(layout), "1 node: {0,1,2}");
}

TEST(GroupByNode, NoRanks) {
  const NodeLayout layout = groupByNode({}, {});
  EXPECT_TRUE(layout.nodes.empty());
  EXPECT_TRUE(layout.nodeOfRank.empty());
  EXPECT_TRUE(layout.uniform());
  EXPECT_EQ(layout.maxRanksPerNode(), 0);
  EXPECT_EQ(describe(layout), "0 nodes:");
}

// Ranks alternating between packages (a round-robin launcher) would cross the socket
// link on every hop; grouped by package the ring crosses it twice.
TEST(GroupByNode, LocalityGroupsPackages) {
  const std::vector<Locality> where = {at(0, 0), at(1, 2), at(0, 0), at(1, 2)};
  const NodeLayout layout = groupByNode({"h", "h", "h", "h"}, where);
  EXPECT_EQ(layout.nodes, (Nodes{{0, 2, 1, 3}}));
  EXPECT_EQ(layout.nodeOfRank, (std::vector<int>{0, 0, 0, 0}));
}

TEST(GroupByNode, LocalityOrdersNumaInsidePackage) {
  const std::vector<Locality> where = {at(1, 3), at(0, 1), at(1, 2), at(0, 0), at(0, 1), at(1, 2)};
  const NodeLayout layout = groupByNode({"h", "h", "h", "h", "h", "h"}, where);
  EXPECT_EQ(layout.nodes, (Nodes{{3, 1, 4, 2, 5, 0}}));
}

// Each node is ordered on its own; node numbering still follows the lowest rank.
TEST(GroupByNode, LocalityPerNode) {
  const std::vector<Locality> where = {at(1, 2), at(1, 2), at(0, 0), at(0, 0)};
  const NodeLayout layout = groupByNode({"a", "b", "a", "b"}, where);
  EXPECT_EQ(layout.nodes, (Nodes{{2, 0}, {3, 1}}));
  EXPECT_EQ(layout.nodeOfRank, (std::vector<int>{0, 1, 0, 1}));
  EXPECT_EQ(describe(layout), "2 nodes: {2,0} {3,1}");
}

// Unknown locations sort first; ranks past the locality list count as unknown.
TEST(GroupByNode, UnknownLocalityFirst) {
  const std::vector<Locality> where = {at(1, 2), Locality{}, at(0, 0)};
  const NodeLayout layout = groupByNode({"h", "h", "h", "h"}, where);
  EXPECT_EQ(layout.nodes, (Nodes{{1, 3, 2, 0}}));
}

TEST(GroupByNode, SameLocalityKeepsRankOrder) {
  const std::vector<Locality> where(5, at(0, 0));
  const NodeLayout layout = groupByNode({"h", "h", "h", "h", "h"}, where);
  EXPECT_EQ(layout.nodes, (Nodes{{0, 1, 2, 3, 4}}));
}

void expectSane(const Locality& l) {
  EXPECT_GE(l.cores, 1);
  EXPECT_GE(l.packages, 1);
  EXPECT_GE(l.numaNodes, 1);
  EXPECT_GE(l.package, -1);
  EXPECT_LT(l.package, l.packages);
  EXPECT_GE(l.numaNode, -1);
  EXPECT_LT(l.numaNode, l.numaNodes);
}

TEST(ProbeLocality, SaneOnThisMachine) {
  Locality l;
  const Status s = probeLocality(&l);
  ASSERT_TRUE(s.isOk()) << s.message();
  expectSane(l);
  std::printf("locality: %s\n", describe(l).c_str());

  // Cached topology: the machine's counts do not change between calls.
  Locality again;
  ASSERT_TRUE(probeLocality(&again).isOk());
  EXPECT_EQ(again.packages, l.packages);
  EXPECT_EQ(again.numaNodes, l.numaNodes);
  EXPECT_EQ(again.cores, l.cores);
}

// Bound to one CPU the process is inside one package and one NUMA node; hwloc 2 always
// has a NUMA node, so that one must be known.
TEST(ProbeLocality, BoundToOneCpu) {
  if (std::getenv("HWLOC_XMLFILE") || std::getenv("HWLOC_SYNTHETIC")) {
    GTEST_SKIP() << "a loaded or synthetic topology cannot see where this process runs";
  }
  cpu_set_t saved;
  ASSERT_EQ(sched_getaffinity(0, sizeof saved, &saved), 0);
  int cpu = -1;
  for (int c = 0; c < CPU_SETSIZE && cpu < 0; ++c) {
    if (CPU_ISSET(c, &saved)) cpu = c;
  }
  ASSERT_GE(cpu, 0);
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  Locality l;
  const Status s = probeLocality(&l);
  sched_setaffinity(0, sizeof saved, &saved);
  ASSERT_TRUE(s.isOk()) << s.message();
  expectSane(l);
  EXPECT_GE(l.numaNode, 0);
  std::printf("bound to cpu %d: %s\n", cpu, describe(l).c_str());
}

TEST(ProbeLocality, NullOutput) { EXPECT_EQ(probeLocality(nullptr).code(), ftcclInvalidArgument); }

TEST(Describe, Locality) {
  EXPECT_EQ(describe(at(1, 3)), "package 1/2, NUMA node 3/4, 1 core");
  Locality unknown;
  unknown.cores = 8;
  EXPECT_EQ(describe(unknown), "package ?/1, NUMA node ?/1, 8 cores");
}

}  // namespace
}  // namespace ftccl
