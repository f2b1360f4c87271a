// The alpha-beta-gamma cost model behind every algorithm choice.
//
// alpha: the fixed cost of one message between two ranks (us); beta: the cost per byte
// moved over a link (us per MiB, i.e. 1 / bandwidth); gamma: the cost per byte reduced
// (us per MiB). Links inside a node and between nodes get their own alpha and beta,
// since the hierarchical algorithm exists because they differ.
//
// The constants are measured once, by rank 0 at init (measureCostModel in core), or
// read from FTCCL_TUNING, and every rank adopts rank 0's: the choice must be the same
// on every rank or the ranks would run different algorithms and deadlock.
#pragma once

#include <string>
#include <vector>

#include "algorithms/comm_shape.h"  // CommShape, which the model prices
#include "util/status.h"

namespace ftccl {

struct CostModel {
  // Defaults: this project's 2-core VM over UCX shared memory (docs/collectives.md, "The choice").
  double alphaUs = 6.0;         // per message inside a node
  double betaUsPerMiB = 250.0;  // 4 GB/s inside a node
  double gammaUsPerMiB = 65.0;  // 16 GB/s a[i] += b[i]
  double interAlphaUs = 6.0;    // per message between nodes (same as inside by default)
  double interBetaUsPerMiB = 250.0;
  // Where it came from, for the log: "default", "measured", "FTCCL_TUNING".
  std::string source = "default";

  std::vector<double> toVector() const;  // for sharing over the wire
  static Status fromVector(const std::vector<double>& values, CostModel* out);
};

// FTCCL_TUNING: "alpha_us=5,beta_gbps=4,gamma_gbps=16,inter_alpha_us=20,inter_gbps=1.2";
// every key is optional, an unknown key or a bad number is an error naming it.
Status parseCostModel(const std::string& text, CostModel* out);
std::string describe(const CostModel& model);

}  // namespace ftccl
