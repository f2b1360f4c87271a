// The algorithm table: for each collective, the algorithms it has, how each is built
// and on which shapes it applies. The tuner chooses among a collective's entries, core
// builds the chosen one through makeCollective, and FTCCL_ALGO and the logs use the
// entries' names, so adding an algorithm is one factory and one row here.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "algorithms/collective.h"
#include "algorithms/comm_shape.h"

namespace ftccl {

// What the communicator lends an algorithm to build it (all outlive the op).
struct BuildContext {
  Transport& transport;
  const Scratch& scratch;
  const PipelineConfig& pipeline;              // the tuner's chunking for this op
  const std::vector<std::vector<int>>& nodes;  // ranks by node, in intra-node ring order
  // The node's shared memory when every rank mapped it (else null; the shm algorithms
  // then build the transport's default), and the counter of its sequences.
  NodeMemory* node = nullptr;
  uint32_t* nodeSeq = nullptr;
  // Over several nodes: each node's own memory for the hierarchical intra-node phases.
  IntraNodeMemory intraNode;
};

using CollectiveFactory = std::unique_ptr<Collective> (*)(const BuildContext& context,
                                                          const CollectiveArgs& args);

struct CatalogEntry {
  Algorithm algorithm;
  const char* name;  // as FTCCL_ALGO and the logs spell it
  CollectiveFactory make;
  bool (*applies)(const CommShape& shape);  // whether the tuner weighs it on this shape
};

constexpr CollectiveKind kAllCollectiveKinds[kCollectiveKinds] = {
    CollectiveKind::kAllReduce, CollectiveKind::kBroadcast, CollectiveKind::kReduce,
    CollectiveKind::kAllGather, CollectiveKind::kReduceScatter};

// A collective's algorithms. The first is its default; the tuner breaks ties in this
// order, so the order is part of every rank's choice.
const std::vector<CatalogEntry>& algorithmsFor(CollectiveKind kind);
// The entry, or null when `kind` has no such algorithm.
const CatalogEntry* findAlgorithm(CollectiveKind kind, Algorithm algorithm);
// Builds `algorithm` for `kind`; an algorithm the collective lacks builds its default.
std::unique_ptr<Collective> makeCollective(CollectiveKind kind, Algorithm algorithm,
                                           const BuildContext& context, const CollectiveArgs& args);

// Names and their long forms ("chain" for ring, "hierarchical", "recursive-doubling").
bool algorithmFromName(const std::string& name, Algorithm* out);
// "ring, tree, hier, rd": every algorithm (all of them, or those of `kind`), for errors.
std::string algorithmNames();
std::string algorithmNames(CollectiveKind kind);

}  // namespace ftccl
