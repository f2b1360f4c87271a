#include "tuning/algorithm_choice.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace ftccl {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;
constexpr CollectiveKind kAllKinds[] = {CollectiveKind::kAllReduce, CollectiveKind::kBroadcast,
                                        CollectiveKind::kReduce, CollectiveKind::kAllGather,
                                        CollectiveKind::kReduceScatter};

bool parseAlgorithm(const std::string& name, Algorithm* out) {
  if (name == "ring" || name == "chain") {
    *out = Algorithm::kRing;
  } else if (name == "tree") {
    *out = Algorithm::kTree;
  } else if (name == "hier" || name == "hierarchical") {
    *out = Algorithm::kHierarchical;
  } else {
    return false;
  }
  return true;
}

bool parseCollective(const std::string& name, CollectiveKind* out) {
  for (CollectiveKind kind : kAllKinds) {
    if (name == collectiveName(kind)) {
      *out = kind;
      return true;
    }
  }
  return false;
}

// Depth of the binary trees over n ranks (levels below the root).
int treeDepth(int n) {
  int depth = 0;
  while ((2 << depth) <= n) ++depth;
  return depth;
}

}  // namespace

bool supports(CollectiveKind kind, Algorithm algorithm) {
  return algorithm == Algorithm::kRing || kind == CollectiveKind::kAllReduce;
}

Status parseAlgorithmOverrides(const std::string& spec, const char* source,
                               AlgorithmOverrides* out) {
  AlgorithmOverrides result;
  std::stringstream in(spec);
  std::string item;
  while (std::getline(in, item, ';')) {
    if (item.empty()) continue;
    size_t colon = item.find(':');
    std::string name = colon == std::string::npos ? item : item.substr(colon + 1);
    Algorithm algorithm;
    if (!parseAlgorithm(name, &algorithm)) {
      return invalidArgument(std::string(source) + ": unknown algorithm '" + name + "' in '" +
                             spec + "' (ring, tree, hier)");
    }
    if (colon == std::string::npos) {  // every collective that has it
      for (CollectiveKind kind : kAllKinds) {
        if (!supports(kind, algorithm)) continue;
        result.forced[static_cast<int>(kind)] = true;
        result.algorithm[static_cast<int>(kind)] = algorithm;
      }
      continue;
    }
    CollectiveKind kind;
    if (!parseCollective(item.substr(0, colon), &kind)) {
      return invalidArgument(std::string(source) + ": unknown collective '" +
                             item.substr(0, colon) + "' in '" + spec +
                             "' (allreduce, broadcast, reduce, allgather, reducescatter)");
    }
    if (!supports(kind, algorithm)) {
      return invalidArgument(std::string(source) + ": " + collectiveName(kind) + " has no " +
                             algorithmName(algorithm) + " algorithm (it has ring)");
    }
    result.forced[static_cast<int>(kind)] = true;
    result.algorithm[static_cast<int>(kind)] = algorithm;
  }
  *out = result;
  return Status::ok();
}

// Tree chunks: one chunk per tree while the message is small (latency is what counts),
// then enough chunks to keep every channel busy, no larger than the ring's.
PipelineConfig Tuner::pipelineFor(Algorithm algorithm, size_t bytes) const {
  PipelineConfig p = base_;
  if (algorithm == Algorithm::kTree) {
    size_t half = (bytes + 1) / 2;
    size_t perLane = half / (4 * static_cast<size_t>(std::max(1, p.channels)));
    p.chunkBytes = std::clamp<size_t>(perLane, 16 * 1024, std::max<size_t>(16 * 1024, base_.chunkBytes / 4));
  }
  return p;
}

double Tuner::predictUs(CollectiveKind kind, Algorithm algorithm, size_t bytes,
                        const CommShape& shape) const {
  const CostModel& m = model_;
  double n = shape.nranks;
  if (shape.nranks <= 1) return 0;
  double mib = bytes / kMiB;
  double chunk = std::min<double>(pipelineFor(algorithm, bytes).chunkBytes, bytes) / kMiB;
  bool multiNode = shape.nodes > 1;
  // A ring that crosses nodes runs at the pace of its slowest link.
  double alpha = multiNode ? std::max(m.alphaUs, m.interAlphaUs) : m.alphaUs;
  double beta = multiNode ? std::max(m.betaUsPerMiB, m.interBetaUsPerMiB) : m.betaUsPerMiB;
  double gamma = m.gammaUsPerMiB;
  double ring = 2 * (n - 1) * alpha + 2 * (n - 1) / n * mib * beta + (n - 1) / n * mib * gamma;
  switch (kind) {
    case CollectiveKind::kBroadcast:
      return (n - 1) * alpha + mib * beta + (n - 2) * chunk * beta;
    case CollectiveKind::kReduce:
      return (n - 1) * alpha + mib * (beta + gamma) + (n - 2) * chunk * beta;
    case CollectiveKind::kAllGather:
      return (n - 1) * alpha + (n - 1) / n * mib * beta;
    case CollectiveKind::kReduceScatter:
      return (n - 1) * alpha + (n - 1) / n * mib * (beta + gamma);
    case CollectiveKind::kAllReduce: break;
  }
  if (algorithm == Algorithm::kRing) return ring;
  if (algorithm == Algorithm::kTree) {
    // Each tree carries half the buffer up and down its depth. A rank is interior in one
    // tree (it takes in two halves, sends one up, takes one down, sends two down) and a
    // leaf in the other: 2 S in and 2 S out, S reduced, against the ring's 2(n-1)/n S
    // and (n-1)/n S. Pipeline fill costs a chunk per level each way.
    double depth = treeDepth(shape.nranks);
    return 2 * depth * (alpha + chunk * beta) + 2 * mib * beta + mib * gamma;
  }
  // Hierarchical.
  if (!multiNode || shape.nodes == shape.nranks) return ring * 1.02;  // it is the ring
  double local = shape.maxRanksPerNode, nodes = shape.nodes;
  double a = m.alphaUs, b = m.betaUsPerMiB, ai = m.interAlphaUs, bi = m.interBetaUsPerMiB;
  if (shape.uniformNodes) {
    double shard = mib / local;
    return 2 * (local - 1) * a + 2 * (local - 1) / local * mib * b +
           (local - 1) / local * mib * gamma + 2 * (nodes - 1) * ai +
           2 * (nodes - 1) / nodes * shard * bi + (nodes - 1) / nodes * shard * gamma;
  }
  // Node leaders: chain reduce in the node, ring among leaders, chain broadcast back.
  return 2 * ((local - 1) * a + mib * b + (local - 2) * chunk * b) + mib * gamma +
         2 * (nodes - 1) * ai + 2 * (nodes - 1) / nodes * mib * bi +
         (nodes - 1) / nodes * mib * gamma;
}

AlgorithmChoice Tuner::choose(CollectiveKind kind, size_t bytes, const CommShape& shape) const {
  AlgorithmChoice choice;
  int k = static_cast<int>(kind);
  if (overrides_.forced[k]) {
    choice.algorithm = overrides_.algorithm[k];
    choice.forced = true;
  } else {
    double best = -1;
    for (Algorithm a : {Algorithm::kRing, Algorithm::kTree, Algorithm::kHierarchical}) {
      if (!supports(kind, a)) continue;
      double t = predictUs(kind, a, bytes, shape);
      if (best < 0 || t < best) {
        best = t;
        choice.algorithm = a;
      }
    }
  }
  choice.pipeline = pipelineFor(choice.algorithm, bytes);
  choice.predictedUs = predictUs(kind, choice.algorithm, bytes, shape);
  return choice;
}

}  // namespace ftccl
