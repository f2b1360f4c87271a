#include "algorithms/catalog.h"

namespace ftccl {
namespace {

bool always(const CommShape&) { return true; }

// One table per collective, each named as FTCCL_ALGO spells the collective.
struct CollectiveTable {
  const char* name;
  std::vector<CatalogEntry> entries;
};

bool sharesMemory(const CommShape& s) { return s.sharedMemory && s.nranks > 1; }

// All-reduce: the ring for bandwidth; the double tree (needs 3 ranks to be a tree) and
// recursive doubling for latency; the hierarchical one only where it differs from the
// ring (several nodes, some with several ranks); shared memory where every rank mapped
// the node's segment. This order breaks the tuner's ties.
const CollectiveTable kAllReduce = {
    "allreduce",
    {
        {Algorithm::kRing, "ring",
         [](const BuildContext& c, const CollectiveArgs& a) {
           return makeRingAllReduce(c.transport, c.scratch, c.pipeline, a);
         },
         always},
        {Algorithm::kTree, "tree",
         [](const BuildContext& c, const CollectiveArgs& a) {
           return makeTreeAllReduce(c.transport, c.scratch, c.pipeline, a);
         },
         [](const CommShape& s) { return s.nranks > 2; }},
        {Algorithm::kRecursiveDoubling, "rd",
         [](const BuildContext& c, const CollectiveArgs& a) {
           return makeRecursiveDoublingAllReduce(c.transport, c.scratch, a);
         },
         [](const CommShape& s) { return s.nranks > 1; }},
        {Algorithm::kHierarchical, "hier",
         [](const BuildContext& c, const CollectiveArgs& a) {
           return makeHierarchicalAllReduce(c.transport, c.scratch, c.pipeline, c.nodes, a,
                                            c.intraNode);
         },
         [](const CommShape& s) { return s.nodes > 1 && s.nodes < s.nranks; }},
        {Algorithm::kSharedMemory, "shm",
         [](const BuildContext& c, const CollectiveArgs& a) {
           if (!c.node) return makeRingAllReduce(c.transport, c.scratch, c.pipeline, a);
           return makeShmAllReduce(*c.node, a, c.nodeSeq);
         },
         sharesMemory},
    }};

// The others: a pipelined chain (broadcast, reduce) or ring over the transport, and
// their shared-memory versions where every rank mapped the node's segment. Forced
// (FTCCL_ALGO) where no memory is shared, "shm" builds the transport's, alike on every
// rank since whether it is shared was agreed on by all.
const CollectiveTable kBroadcast = {"broadcast",
                                    {{Algorithm::kRing, "ring",
                                      [](const BuildContext& c, const CollectiveArgs& a) {
                                        return makeChainBroadcast(c.transport, c.pipeline, a);
                                      },
                                      always},
                                     {Algorithm::kSharedMemory, "shm",
                                      [](const BuildContext& c, const CollectiveArgs& a) {
                                        if (!c.node)
                                          return makeChainBroadcast(c.transport, c.pipeline, a);
                                        return makeShmBroadcast(*c.node, a, c.nodeSeq);
                                      },
                                      sharesMemory}}};
const CollectiveTable kReduce = {"reduce",
                                 {{Algorithm::kRing, "ring",
                                   [](const BuildContext& c, const CollectiveArgs& a) {
                                     return makeChainReduce(c.transport, c.scratch, c.pipeline, a);
                                   },
                                   always},
                                  {Algorithm::kSharedMemory, "shm",
                                   [](const BuildContext& c, const CollectiveArgs& a) {
                                     if (!c.node)
                                       return makeChainReduce(c.transport, c.scratch, c.pipeline,
                                                              a);
                                     return makeShmReduce(*c.node, a, c.nodeSeq);
                                   },
                                   sharesMemory}}};
const CollectiveTable kAllGather = {"allgather",
                                    {{Algorithm::kRing, "ring",
                                      [](const BuildContext& c, const CollectiveArgs& a) {
                                        return makeRingAllGather(c.transport, c.pipeline, a);
                                      },
                                      always},
                                     {Algorithm::kSharedMemory, "shm",
                                      [](const BuildContext& c, const CollectiveArgs& a) {
                                        if (!c.node)
                                          return makeRingAllGather(c.transport, c.pipeline, a);
                                        return makeShmAllGather(*c.node, a, c.nodeSeq);
                                      },
                                      sharesMemory}}};
const CollectiveTable kReduceScatter = {
    "reducescatter",
    {{Algorithm::kRing, "ring",
      [](const BuildContext& c, const CollectiveArgs& a) {
        return makeRingReduceScatter(c.transport, c.scratch, c.pipeline, a);
      },
      always},
     {Algorithm::kSharedMemory, "shm",
      [](const BuildContext& c, const CollectiveArgs& a) {
        if (!c.node) return makeRingReduceScatter(c.transport, c.scratch, c.pipeline, a);
        return makeShmReduceScatter(*c.node, a, c.nodeSeq);
      },
      sharesMemory}}};

struct Alias {
  const char* name;
  Algorithm algorithm;
};
constexpr Alias kAliases[] = {{"chain", Algorithm::kRing},
                              {"hierarchical", Algorithm::kHierarchical},
                              {"recursive-doubling", Algorithm::kRecursiveDoubling},
                              {"shared-memory", Algorithm::kSharedMemory}};

std::string joined(const std::vector<const char*>& names) {
  std::string text;
  for (const char* name : names) text += std::string(text.empty() ? "" : ", ") + name;
  return text;
}

// In CollectiveKind's order.
const CollectiveTable* const kTables[kCollectiveKinds] = {&kAllReduce, &kBroadcast, &kReduce,
                                                          &kAllGather, &kReduceScatter};

}  // namespace

const std::vector<CatalogEntry>& algorithmsFor(CollectiveKind kind) {
  return kTables[static_cast<int>(kind)]->entries;
}

const CatalogEntry* findAlgorithm(CollectiveKind kind, Algorithm algorithm) {
  for (const CatalogEntry& entry : algorithmsFor(kind)) {
    if (entry.algorithm == algorithm) return &entry;
  }
  return nullptr;
}

std::unique_ptr<Collective> makeCollective(CollectiveKind kind, Algorithm algorithm,
                                           const BuildContext& context,
                                           const CollectiveArgs& args) {
  const CatalogEntry* entry = findAlgorithm(kind, algorithm);
  if (!entry) entry = &algorithmsFor(kind).front();
  return entry->make(context, args);
}

const char* algorithmName(Algorithm algorithm) {
  for (CollectiveKind kind : kAllCollectiveKinds) {
    if (const CatalogEntry* entry = findAlgorithm(kind, algorithm)) return entry->name;
  }
  return "unknown";
}

const char* collectiveName(CollectiveKind kind) {
  int k = static_cast<int>(kind);
  return k >= 0 && k < kCollectiveKinds ? kTables[k]->name : "unknown";
}

bool algorithmFromName(const std::string& name, Algorithm* out) {
  for (int a = 0; a < kAlgorithms; ++a) {
    if (name == algorithmName(static_cast<Algorithm>(a))) {
      *out = static_cast<Algorithm>(a);
      return true;
    }
  }
  for (const Alias& alias : kAliases) {
    if (name == alias.name) {
      *out = alias.algorithm;
      return true;
    }
  }
  return false;
}

std::string algorithmNames() {
  std::vector<const char*> names;
  for (int a = 0; a < kAlgorithms; ++a) names.push_back(algorithmName(static_cast<Algorithm>(a)));
  return joined(names);
}

std::string algorithmNames(CollectiveKind kind) {
  std::vector<const char*> names;
  for (const CatalogEntry& entry : algorithmsFor(kind)) names.push_back(entry.name);
  return joined(names);
}

}  // namespace ftccl
