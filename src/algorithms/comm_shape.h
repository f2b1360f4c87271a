// What the algorithm table and the cost model know of the membership: enough to say
// which algorithms apply (catalog.h) and what they cost (tuning/cost_model.h).
#pragma once

namespace ftccl {

struct CommShape {
  int nranks = 1;
  int nodes = 1;
  int maxRanksPerNode = 1;
  bool uniformNodes = true;  // every node has the same number of ranks
  // Every rank mapped the node's shared memory of this epoch (one node; core decides).
  bool sharedMemory = false;
  // ... and large broadcasts there read the root's buffer directly (one copy, one round).
  bool singleCopy = false;
  // Several nodes, and each node of several ranks mapped a segment of its own (core
  // decides, all ranks alike): the hierarchical all-reduce's intra-node phases use it.
  bool nodesShareMemory = false;
};

}  // namespace ftccl
