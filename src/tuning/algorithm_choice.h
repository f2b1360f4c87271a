// Which algorithm, and which chunking, runs a collective of a given size and shape.
//
// The tuner predicts each candidate's time with the cost model (cost_model.h), corrected
// by the measured calibration (calibration.h) when there is one, and takes the fastest; FTCCL_ALGO
// or ftcclConfig_t.algorithm force one, for every collective that has it ("tree") or per collective
// ("allreduce:tree;broadcast:ring"). Its inputs (model constants, overrides, rank count, node
// layout, size) are the same on every rank, so every rank makes the same choice without talking.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "algorithms/catalog.h"
#include "algorithms/collective.h"
#include "tuning/calibration.h"
#include "tuning/cost_model.h"
#include "util/status.h"

namespace ftccl {

struct AlgorithmOverrides {
  bool forced[kCollectiveKinds] = {};
  Algorithm algorithm[kCollectiveKinds] = {};
};

// Whether the collective's table (algorithms/catalog.h) has the algorithm: all-reduce ring,
// tree, hier and rd; the others ring ("chain" is accepted as the ring's name).
bool supports(CollectiveKind kind, Algorithm algorithm);
// Parses FTCCL_ALGO syntax; `source` names the variable or field in error messages.
Status parseAlgorithmOverrides(const std::string& spec, const char* source,
                               AlgorithmOverrides* out);

struct AlgorithmChoice {
  Algorithm algorithm = Algorithm::kRing;
  PipelineConfig pipeline;
  double predictedUs = 0;
  bool forced = false;
};

class Tuner {
 public:
  Tuner() = default;
  Tuner(const CostModel& model, const AlgorithmOverrides& overrides, const PipelineConfig& base,
        const Calibration& calibration = {})
      : model_(model), overrides_(overrides), base_(base), calibration_(calibration) {}

  // `bytes`: the whole buffer (all ranks' parts for all-gather and reduce-scatter).
  AlgorithmChoice choose(CollectiveKind kind, size_t bytes, const CommShape& shape) const;
  // `algorithm` with the chunking the tuner gives it (calibration runs, forced choices).
  AlgorithmChoice with(Algorithm algorithm, CollectiveKind kind, size_t bytes,
                       const CommShape& shape) const;
  // The calibrated time for one algorithm, with the chunking it would get.
  double predictUs(CollectiveKind kind, Algorithm algorithm, size_t bytes,
                   const CommShape& shape) const;
  // The model's time alone.
  double modelUs(CollectiveKind kind, Algorithm algorithm, size_t bytes,
                 const CommShape& shape) const;
  PipelineConfig pipelineFor(Algorithm algorithm, size_t bytes) const;
  // The algorithms the choice is among for this shape: the collective's table entries
  // that apply to it (the hierarchical one only where it differs from the ring).
  static std::vector<Algorithm> candidates(CollectiveKind kind, const CommShape& shape);

  const CostModel& model() const { return model_; }
  const AlgorithmOverrides& overrides() const { return overrides_; }
  const Calibration& calibration() const { return calibration_; }
  void setCalibration(const Calibration& calibration) { calibration_ = calibration; }

  // Everything rank 0 shares so that every rank chooses alike: model, overrides,
  // calibration.
  std::vector<double> toVector() const;
  static Status fromVector(const std::vector<double>& values, const PipelineConfig& base,
                           Tuner* out);

 private:
  double correction(Algorithm algorithm, size_t bytes) const;
  // A shared-memory flag round in `kind`: the model's 1 us, or what the shared-memory
  // all-reduce's smallest probe (one round, 8 B in lines) measured where that is less
  // (0.4 us at 2 ranks here, where 1 us had the transport's ring win all-gathers and
  // reduce-scatters of 4-64 KiB that shared memory ran faster). Only for the collectives
  // in which every rank waits for every other, as in the probe: a rooted one over the
  // transport lets its root run ahead, which the ring's model does not count (a 4 KiB
  // broadcast ran 0.8 us by ring, 1.1 by shared memory). Never more than 1 us: with more
  // ranks than cores the probe times the scheduler, which the ring's model cannot see.
  double sharedMemoryFlagUs(CollectiveKind kind) const;
  double ownCorrection(Algorithm algorithm, size_t bytes) const;
  double worstCorrection(Algorithm except, size_t bytes) const;

  CostModel model_;
  AlgorithmOverrides overrides_;
  PipelineConfig base_;
  Calibration calibration_;
};

}  // namespace ftccl
