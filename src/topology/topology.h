// Topology: which ranks share a node, and where on its node each rank runs.
//
// The hierarchical all-reduce reduces inside each node first, then across node leaders.
// Its intra-node ring is cheapest when consecutive ranks share a package (socket) and
// NUMA node: every hop across a package boundary goes over the inter-socket link, so the
// ring should cross it as few times as possible. This component probes the local
// process's locality with hwloc (each rank tells the others at init) and turns the
// exchanged node names and localities into the groups the algorithm consumes.
#pragma once

#include <string>
#include <vector>

#include "util/status.h"

namespace ftccl {

/// Where this process runs, from hwloc. package and numaNode are hwloc logical indexes
/// (stable across the processes of one machine, so ranks can compare them); -1 when
/// unknown or when the process spans several of them. The counts are the machine's.
struct Locality {
  int package = -1;
  int numaNode = -1;
  int memoryNode = -1;  // numaNode's number for the kernel (mbind), -1 when unknown
  int packages = 1;
  int numaNodes = 1;
  int cores = 1;
};

/// Probes the calling process's locality: the CPUs it is bound to, else the CPUs it last
/// ran on. The hwloc topology is loaded once per process and cached (loading walks
/// sysfs and costs milliseconds); the location itself is read on every call since a
/// process may be re-bound between two communicator inits. Never throws; on failure *out
/// keeps the defaults (unknown location, counts of 1) and the Status says why.
Status probeLocality(Locality* out);

/// Ranks grouped by node, each node's ranks in the order its intra-node ring visits them.
struct NodeLayout {
  std::vector<std::vector<int>> nodes;  ///< node k's ranks in ring order
  std::vector<int> nodeOfRank;          ///< rank -> index into nodes

  /// True when every node has the same number of ranks (also for no node at all).
  bool uniform() const;
  /// The largest node's rank count; 0 without nodes.
  int maxRanksPerNode() const;
};

/// Groups ranks by node name (FTCCL_NODE_ID or the host name, as exchanged at init).
/// Nodes come in order of their lowest rank, so every rank derives the same numbering.
/// Inside a node, ranks are ordered by (package, numaNode, rank): ranks of one package
/// sit next to each other and the ring crosses each package boundary once. Unknown
/// locations (-1) sort first; ranks beyond localityOfRank's size count as unknown, so an
/// empty localityOfRank gives plain rank order.
NodeLayout groupByNode(const std::vector<std::string>& nodeNameOfRank,
                       const std::vector<Locality>& localityOfRank);

/// One line for logs: "2 nodes: {0,1} {2,3}".
std::string describe(const NodeLayout& layout);

/// One line for logs: "package 0/2, NUMA node 1/4, 32 cores" (? for unknown).
std::string describe(const Locality& locality);

}  // namespace ftccl
