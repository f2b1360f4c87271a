// Which algorithm, and which chunking, runs a collective of a given size and shape.
//
// The tuner predicts each candidate's time with the cost model (cost_model.h) and
// takes the fastest; FTCCL_ALGO or ftcclConfig_t.algorithm force one, for every
// collective that has it ("tree") or per collective ("allreduce:tree;broadcast:ring").
// Its inputs (model constants, overrides, rank count, node layout, size) are the same
// on every rank, so every rank makes the same choice without talking.
#pragma once

#include <cstddef>
#include <string>

#include "algorithms/collective.h"
#include "tuning/cost_model.h"
#include "util/status.h"

namespace ftccl {

struct AlgorithmOverrides {
  bool forced[kCollectiveKinds] = {};
  Algorithm algorithm[kCollectiveKinds] = {};
};

// Which algorithms each collective has: all-reduce ring, tree and hier; the others ring
// ("chain" is accepted as the ring's name for broadcast and reduce).
bool supports(CollectiveKind kind, Algorithm algorithm);
// Parses FTCCL_ALGO syntax; `source` names the variable or field in error messages.
Status parseAlgorithmOverrides(const std::string& spec, const char* source,
                               AlgorithmOverrides* out);

// What the tuner knows of the membership.
struct CommShape {
  int nranks = 1;
  int nodes = 1;
  int maxRanksPerNode = 1;
  bool uniformNodes = true;  // every node has the same number of ranks
};

struct AlgorithmChoice {
  Algorithm algorithm = Algorithm::kRing;
  PipelineConfig pipeline;
  double predictedUs = 0;
  bool forced = false;
};

class Tuner {
 public:
  Tuner() = default;
  Tuner(const CostModel& model, const AlgorithmOverrides& overrides, const PipelineConfig& base)
      : model_(model), overrides_(overrides), base_(base) {}

  // `bytes`: the whole buffer (all ranks' parts for all-gather and reduce-scatter).
  AlgorithmChoice choose(CollectiveKind kind, size_t bytes, const CommShape& shape) const;
  // The model's time for one algorithm, with the chunking it would get.
  double predictUs(CollectiveKind kind, Algorithm algorithm, size_t bytes,
                   const CommShape& shape) const;
  PipelineConfig pipelineFor(Algorithm algorithm, size_t bytes) const;
  const CostModel& model() const { return model_; }

 private:
  CostModel model_;
  AlgorithmOverrides overrides_;
  PipelineConfig base_;
};

}  // namespace ftccl
