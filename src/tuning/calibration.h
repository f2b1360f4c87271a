// Measured all-reduce times that correct the cost model where it is wrong.
//
// The alpha-beta-gamma model (cost_model.h) predicts from a two-rank ping-pong, but what
// an all-reduce costs also depends on what the ping-pong cannot see: several ranks
// contending for the cores of a host, the transport's protocol switch (UCX sends
// messages above its eager limit by rendezvous, which adds a round trip), and how far an
// algorithm's messages overlap. So at init every rank runs each candidate all-reduce at
// a few probe sizes and rank 0 times them. The tuner then scales the model's prediction
// for an algorithm by measured / modelled at the nearest probes (interpolated in log
// size), so the model keeps the shape (how time grows with ranks and bytes) and the
// probes pin the level. Rank 0's calibration is shared like the model, so every rank
// corrects alike.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "algorithms/collective.h"
#include "tuning/cost_model.h"
#include "util/status.h"

namespace ftccl {

// Times are indexed by Algorithm's number: ring, tree, hierarchical, recursive doubling,
// shared memory.
constexpr int kCalibratedAlgorithms = 5;
static_assert(kCalibratedAlgorithms == kAlgorithms, "a calibration slot per algorithm");

struct Calibration {
  static constexpr int kProbes = 5;
  // Latency-bound, around the eager/rendezvous switch, where recursive doubling's
  // whole-buffer rounds stop paying, bandwidth-bound twice: at 1 MiB on 2 ranks the
  // transport's ring (UCX's single copy) and shared memory measured level, one or the
  // other ahead by 2% from one init to the next, while from 2 MiB shared memory led by
  // 1.25x; the choice beyond the last probe flipped with the noise.
  static constexpr size_t kProbeBytes[kProbes] = {8, 64 * 1024, 256 * 1024, 1024 * 1024,
                                                  2048 * 1024};

  // Set by rank 0 at init, with no times yet: it asks every rank to run the probes.
  bool requested = false;
  // Bit a * kProbes + p: rank 0's model ruled algorithm a out at probe p (plan()), so no
  // rank runs it there. Part of the request, so every rank runs the same probes.
  uint32_t skipped = 0;
  CommShape shape;                                 // the membership the probes ran on
  double us[kCalibratedAlgorithms][kProbes] = {};  // 0: not measured

  // Whether algorithm a runs at probe p. Recursive doubling stops at 256 KiB: its
  // whole-buffer rounds lost by 2.8-3.5x at 1 MiB on 2, 4 and 8 ranks here, and that
  // probe cost as much init time as all the others together. Beyond its last probe an
  // algorithm keeps that probe's correction.
  static bool probed(Algorithm a, int p);
  // Probed and not skipped: what calibrateAllReduce runs.
  bool planned(Algorithm a, int p) const;
  // Whether it has a time at every planned probe, and at least one planned.
  bool measured(Algorithm a) const;
  // Skipped at every probe: it competes on its bare model (calibration or not).
  bool ruledOut(Algorithm a) const;
  // Skips each candidate whose modelled time at a probe exceeds kHopeless times the best
  // candidate's there. The probes of an algorithm that cannot win cost the most: at
  // 100,000 ranks one ring all-reduce of 8 B is 2 x 99,999 latencies, ~1 s, and init
  // ran dozens; at 64 ranks on this 2-core VM calibration was 13 of init's 15 s.
  static constexpr double kHopeless = 10;  // the model erred by up to 3.5x (rd, 1 MiB)
  void plan(const std::vector<Algorithm>& candidates,
            const std::function<double(Algorithm, size_t)>& modelledUs);
  std::vector<double> toVector() const;
  static Status fromVector(const std::vector<double>& values, Calibration* out);
  static constexpr size_t kShapeValues = 9;  // `requested`, CommShape's fields, `skipped`
  static constexpr size_t kVectorSize = kShapeValues + kCalibratedAlgorithms * kProbes;
};

// "ring 41/170/640 us, tree ..." at the probe sizes, for the log.
std::string describe(const Calibration& calibration);

}  // namespace ftccl
