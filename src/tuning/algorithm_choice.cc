#include "tuning/algorithm_choice.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace ftccl {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;

bool parseCollective(const std::string& name, CollectiveKind* out) {
  for (CollectiveKind kind : kAllCollectiveKinds) {
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
  return findAlgorithm(kind, algorithm) != nullptr;
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
    if (!algorithmFromName(name, &algorithm)) {
      return invalidArgument(std::string(source) + ": unknown algorithm '" + name + "' in '" +
                             spec + "' (" + algorithmNames() + ")");
    }
    if (colon == std::string::npos) {  // every collective that has it
      for (CollectiveKind kind : kAllCollectiveKinds) {
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
                             algorithmName(algorithm) + " algorithm (it has " +
                             algorithmNames(kind) + ")");
    }
    result.forced[static_cast<int>(kind)] = true;
    result.algorithm[static_cast<int>(kind)] = algorithm;
  }
  *out = result;
  return Status::ok();
}

// Tree chunks stay within one eager message of the transport (UCX's shared-memory
// segment is 8 KiB) until a lane's share reaches kRendezvousWorthBytes: a larger message
// goes by rendezvous, whose handshake costs a round trip (a sleep and a wake when ranks
// share cores) that only tens of KiB amortize. Measured on 4 ranks (bench/algorithm_sweep):
// 16 KiB chunks took the 64 KiB all-reduce from 83 to 150 us, the 1 MiB one from 834 to
// 1230 us; past 4 MiB large chunks win.
constexpr size_t kEagerChunkBytes = 8 * 1024;
constexpr size_t kRendezvousWorthBytes = 64 * 1024;

PipelineConfig Tuner::pipelineFor(Algorithm algorithm, size_t bytes) const {
  PipelineConfig p = base_;
  if (algorithm == Algorithm::kTree) {
    size_t half = (bytes + 1) / 2;
    size_t perLane = half / (4 * static_cast<size_t>(std::max(1, p.channels)));
    p.chunkBytes = perLane < kRendezvousWorthBytes
                       ? kEagerChunkBytes
                       : std::min(perLane, std::max(kEagerChunkBytes, base_.chunkBytes / 4));
  }
  return p;
}

std::vector<Algorithm> Tuner::candidates(CollectiveKind kind, const CommShape& shape) {
  std::vector<Algorithm> list;
  for (const CatalogEntry& entry : algorithmsFor(kind)) {
    if (entry.applies(shape)) list.push_back(entry.algorithm);
  }
  return list;
}

// measured / modelled at the probes the algorithm ran (not those the plan skipped),
// linear in log2(bytes) between them, constant beyond.
double Tuner::ownCorrection(Algorithm algorithm, size_t bytes) const {
  std::vector<double> sizes, ratios;  // log2 of each probe's size, and its ratio
  for (int p = 0; p < Calibration::kProbes; ++p) {
    if (!calibration_.planned(algorithm, p)) continue;
    double modelled = modelUs(CollectiveKind::kAllReduce, algorithm, Calibration::kProbeBytes[p],
                              calibration_.shape);
    if (!(modelled > 0)) return 1.0;
    sizes.push_back(std::log2(static_cast<double>(Calibration::kProbeBytes[p])));
    ratios.push_back(calibration_.us[static_cast<int>(algorithm)][p] / modelled);
  }
  if (sizes.empty()) return 1.0;
  double x = std::log2(static_cast<double>(std::max<size_t>(bytes, 1)));
  if (x <= sizes.front()) return ratios.front();
  for (size_t p = 1; p < sizes.size(); ++p) {
    if (x > sizes[p]) continue;
    double f = (x - sizes[p - 1]) / (sizes[p] - sizes[p - 1]);
    return ratios[p - 1] + f * (ratios[p] - ratios[p - 1]);
  }
  return ratios.back();
}

// The machine's slowdown against the model at `bytes`, as the algorithms that ran every
// probe they were planned at saw it: the worst of them (0: none ran).
double Tuner::worstCorrection(Algorithm except, size_t bytes) const {
  double worst = 0;
  for (int a = 0; a < kCalibratedAlgorithms; ++a) {
    const Algorithm other = static_cast<Algorithm>(a);
    if (other != except && calibration_.measured(other)) {
      worst = std::max(worst, ownCorrection(other, bytes));
    }
  }
  return worst;
}

// Where an algorithm did not run (the plan skipped it, modelled 10x slower than the best),
// its own ratios say nothing: it is corrected as the worst measured algorithm there, or
// by its own nearest ratio if that is worse. Its bare model, or a ratio from far larger
// probes, beat measured times wrongly: at 64 ranks on 2 cores recursive doubling,
// modelled at 12 us, took 2.1 ms against shared memory's measured 0.4 ms. The same holds
// past the probes an algorithm never runs (recursive doubling stops at 256 KiB): its
// last ratio comes from sizes where the latency term leads, and a latency measured high
// (a ping-pong that slept: 40 us where an op takes 1) made it look 0.6x its model there;
// carried to 4 MiB that predicted 571 us for 1,300 (2 ranks, chosen over shared memory's
// 690 in half the runs).
double Tuner::correction(Algorithm algorithm, size_t bytes) const {
  if (calibration_.ruledOut(algorithm)) {
    const double worst = worstCorrection(algorithm, bytes);
    return worst > 0 ? worst : 1.0;
  }
  if (!calibration_.measured(algorithm)) return 1.0;
  const double own = ownCorrection(algorithm, bytes);
  int first = -1, last = -1;
  for (int p = 0; p < Calibration::kProbes; ++p) {
    if (calibration_.planned(algorithm, p)) {
      if (first < 0) first = p;
      last = p;
    }
  }
  // Below its first run probe or above its last, where the calibration has probes.
  const bool below = first > 0 && bytes < Calibration::kProbeBytes[first];
  const bool above = last < Calibration::kProbes - 1 && bytes > Calibration::kProbeBytes[last];
  if (below || above) return std::max(own, worstCorrection(algorithm, bytes));
  return own;
}

double Tuner::predictUs(CollectiveKind kind, Algorithm algorithm, size_t bytes,
                        const CommShape& shape) const {
  double us = modelUs(kind, algorithm, bytes, shape);
  return kind == CollectiveKind::kAllReduce ? us * correction(algorithm, bytes) : us;
}

namespace {

// Shared memory has no messages: a flag round per chunk of a slot (256 KiB), and memory
// traffic the ping-pong does not see (a copy at memcpy speed, a reduction at gamma). A
// single-copy broadcast: two flag rounds and one copy (the readers' in parallel). A
// single-copy all-gather: each rank reads the other's part through the kernel as a
// ring's message would go, so at the link's measured pace if faster (that is the
// kernel's copy too); its own part's copy out of place is left out, as the ring's
// model leaves out the ring's. A single-copy reduce-scatter: the same read and the
// reduction. The calibration sets the all-reduce's level; the other collectives keep
// the model, with the flag round the calibration saw (Tuner::sharedMemoryFlagUs).
double sharedMemoryUs(CollectiveKind kind, double mib, double n, double gamma, double beta,
                      bool singleCopy, double flagUs) {
  constexpr double kCopyUsPerMiB = 60.0, kSlotMiB = 0.25;
  constexpr double kOneRoundMiB = 32.0 / 1024;  // the all-reduce's one-round path
  constexpr double kSingleCopyMiB = kShmSingleCopyBytes / (1024.0 * 1024.0);
  constexpr double kSingleCopyPartMiB = kShmSingleCopyPartBytes / (1024.0 * 1024.0);
  constexpr double kSingleCopyReduceMiB = kShmSingleCopyReducePartBytes / (1024.0 * 1024.0);
  constexpr double kSingleCopyReduceMaxMiB = kShmSingleCopyReduceMaxPartBytes / (1024.0 * 1024.0);
  const double chunks = std::max(1.0, std::ceil(mib / kSlotMiB));
  switch (kind) {
    case CollectiveKind::kBroadcast:  // the root copies in, the others copy out
      if (singleCopy && n <= kShmSingleCopyMaxRanks && mib >= kSingleCopyMiB) {
        return 2 * flagUs + mib * kCopyUsPerMiB;
      }
      return flagUs * chunks + 2 * mib * kCopyUsPerMiB;
    case CollectiveKind::kReduce:  // all copy in, slices reduced, the root copies out
      return 2 * flagUs * chunks + 2 * mib * kCopyUsPerMiB + mib * gamma;
    case CollectiveKind::kAllGather:  // `mib` is the whole output: each part in, all out
      if (singleCopy && n == 2 && mib / n >= kSingleCopyPartMiB) {
        return 2 * flagUs + (n - 1) / n * mib * std::min(beta, kCopyUsPerMiB);
      }
      return flagUs * chunks + (1 + 1 / n) * mib * kCopyUsPerMiB;
    case CollectiveKind::kReduceScatter:  // all blocks in, each rank reduces its own
      if (singleCopy && n == 2 && mib / n >= kSingleCopyReduceMiB &&
          mib / n <= kSingleCopyReduceMaxMiB) {  // as the all-gather's, then a reduction
        return 2 * flagUs + (n - 1) / n * mib * (std::min(beta, kCopyUsPerMiB) + gamma);
      }
      return flagUs * chunks + mib * kCopyUsPerMiB + (n - 1) / n * mib * gamma;
    case CollectiveKind::kAllReduce:
      break;
  }
  // Up to 32 KiB one round in which each rank reduces all n slots; above, each rank
  // copies every chunk in and out around the reduction of its slice.
  if (mib <= kOneRoundMiB) return flagUs + mib * kCopyUsPerMiB + (n - 1) * mib * gamma;
  return 2 * flagUs * chunks + 2 * mib * kCopyUsPerMiB + mib * gamma;
}

}  // namespace

double Tuner::sharedMemoryFlagUs(CollectiveKind kind) const {
  constexpr double kModelFlagUs = 1.0;
  static_assert(Calibration::kProbeBytes[0] <= 64, "the first probe is one round, in lines");
  if (kind == CollectiveKind::kBroadcast || kind == CollectiveKind::kReduce) return kModelFlagUs;
  const double probe = calibration_.us[static_cast<int>(Algorithm::kSharedMemory)][0];
  return probe > 0 ? std::min(kModelFlagUs, probe) : kModelFlagUs;
}

double Tuner::modelUs(CollectiveKind kind, Algorithm algorithm, size_t bytes,
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
  if (algorithm == Algorithm::kSharedMemory) {
    return sharedMemoryUs(kind, mib, n, gamma, m.betaUsPerMiB, shape.singleCopy,
                          sharedMemoryFlagUs(kind));
  }
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
    case CollectiveKind::kAllReduce:
      break;
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
  if (algorithm == Algorithm::kRecursiveDoubling) {
    // log2(p) rounds that each swap and combine the whole buffer, two more when the
    // ranks beyond the power of two p fold in and get the result back.
    int p = 1;
    while (p * 2 <= shape.nranks) p *= 2;
    double rounds = std::log2(static_cast<double>(p));
    double folds = p == shape.nranks ? 0 : 2;
    return (rounds + folds) * (alpha + mib * beta) + (rounds + folds / 2) * mib * gamma;
  }
  // Hierarchical.
  if (!multiNode || shape.nodes == shape.nranks) return ring * 1.02;  // it is the ring
  double local = shape.maxRanksPerNode, nodes = shape.nodes;
  double a = m.alphaUs, b = m.betaUsPerMiB, ai = m.interAlphaUs, bi = m.interBetaUsPerMiB;
  if (shape.nodesShareMemory) {  // the intra-node phases over each node's segment
    if (shape.uniformNodes) {
      double shard = mib / local;
      return sharedMemoryUs(CollectiveKind::kReduceScatter, mib, local, gamma, b, false,
                            sharedMemoryFlagUs(CollectiveKind::kReduceScatter)) +
             sharedMemoryUs(CollectiveKind::kAllGather, mib, local, gamma, b, false,
                            sharedMemoryFlagUs(CollectiveKind::kAllGather)) +
             2 * (nodes - 1) * ai + 2 * (nodes - 1) / nodes * shard * bi +
             (nodes - 1) / nodes * shard * gamma;
    }
    return sharedMemoryUs(CollectiveKind::kReduce, mib, local, gamma, b, false,
                          sharedMemoryFlagUs(CollectiveKind::kReduce)) +
           sharedMemoryUs(CollectiveKind::kBroadcast, mib, local, gamma, b, false,
                          sharedMemoryFlagUs(CollectiveKind::kBroadcast)) +
           2 * (nodes - 1) * ai + 2 * (nodes - 1) / nodes * mib * bi +
           (nodes - 1) / nodes * mib * gamma;
  }
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

AlgorithmChoice Tuner::with(Algorithm algorithm, CollectiveKind kind, size_t bytes,
                            const CommShape& shape) const {
  AlgorithmChoice choice;
  choice.algorithm = algorithm;
  choice.pipeline = pipelineFor(algorithm, bytes);
  choice.predictedUs = predictUs(kind, algorithm, bytes, shape);
  return choice;
}

// With a calibration, only measured algorithms compete: a measured time and a bare
// model's guess are not comparable. An exception: one the plan ruled out at every probe
// (10x slower than the best there, by the model) competes, corrected as the worst
// measured one (correction()), so that it stays in reach far beyond the probes (a
// ring's bandwidth at 100,000 ranks).
AlgorithmChoice Tuner::choose(CollectiveKind kind, size_t bytes, const CommShape& shape) const {
  int k = static_cast<int>(kind);
  if (overrides_.forced[k]) {
    AlgorithmChoice choice = with(overrides_.algorithm[k], kind, bytes, shape);
    choice.forced = true;
    return choice;
  }
  std::vector<Algorithm> list = candidates(kind, shape);
  bool anyMeasured =
      kind == CollectiveKind::kAllReduce &&
      std::any_of(list.begin(), list.end(), [&](Algorithm a) { return calibration_.measured(a); });
  Algorithm best = Algorithm::kRing;
  double bestUs = -1;
  for (Algorithm a : list) {
    if (anyMeasured && !calibration_.measured(a) && !calibration_.ruledOut(a)) continue;
    double t = predictUs(kind, a, bytes, shape);
    if (bestUs < 0 || t < bestUs) {
      bestUs = t;
      best = a;
    }
  }
  return with(best, kind, bytes, shape);
}

std::vector<double> Tuner::toVector() const {
  std::vector<double> v = model_.toVector();
  for (int k = 0; k < kCollectiveKinds; ++k) {
    v.push_back(overrides_.forced[k] ? static_cast<double>(overrides_.algorithm[k]) : -1.0);
  }
  std::vector<double> c = calibration_.toVector();
  v.insert(v.end(), c.begin(), c.end());
  return v;
}

Status Tuner::fromVector(const std::vector<double>& v, const PipelineConfig& base, Tuner* out) {
  constexpr size_t kModel = 5;
  if (v.size() != kModel + kCollectiveKinds + Calibration::kVectorSize) {
    return internalError("tuning: wrong number of shared values");
  }
  CostModel model;
  FTCCL_CHECK(CostModel::fromVector({v.begin(), v.begin() + kModel}, &model));
  AlgorithmOverrides overrides;
  for (int k = 0; k < kCollectiveKinds; ++k) {
    double a = v[kModel + k];
    if (a >= kAlgorithms) return internalError("tuning: unknown algorithm shared");
    overrides.forced[k] = a >= 0;
    overrides.algorithm[k] = static_cast<Algorithm>(a >= 0 ? static_cast<int>(a) : 0);
  }
  Calibration calibration;
  FTCCL_CHECK(
      Calibration::fromVector({v.begin() + kModel + kCollectiveKinds, v.end()}, &calibration));
  *out = Tuner(model, overrides, base, calibration);
  return Status::ok();
}

}  // namespace ftccl
