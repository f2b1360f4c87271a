// What the tuner measures on a live communicator, behind callbacks that run the real
// transfers: this code never sees a transport or a communicator, so it is the same
// whatever runs the probes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "algorithms/collective.h"
#include "tuning/calibration.h"
#include "tuning/cost_model.h"
#include "util/status.h"

namespace ftccl {

// The largest round trip of the link measurement: the caller's buffer holds this much.
constexpr size_t kLinkProbeBytes = size_t{1} << 20;

// One round trip of `bytes` with the partner, numbered `round` (from 1, a fresh message
// key each): the measurer sends first, the partner answers.
using RoundTripProbe = std::function<Status(size_t bytes, uint32_t round)>;

// Ranks 0 and 1 both run it. Rank 0 (`measurer`) times round trips of 8 B and 1 MiB
// (alpha, and beta from the difference) and a 1 MiB float sum alone (gamma), and writes
// them into `model` for the pair's kind of link (inside a node if `sameNode`, else
// between nodes; the other kind keeps what it had). A few ms, once per communicator.
Status measureLinkCost(const RoundTripProbe& roundTrip, bool measurer, bool sameNode,
                       CostModel* model);

// Runs `calls` back-to-back all-reduces of `bytes` with `algorithm` on every rank.
using AllReduceProbe = std::function<Status(Algorithm algorithm, size_t bytes, int calls)>;

// The all-reduces one algorithm runs at one probe size: warm-ups, then batches of an
// untimed call and the timed ones (bench/init_cost.cc prices init with it).
int calibrationCallsAt(size_t bytes);

// Every rank runs each candidate at the probe sizes `plan` leaves (the same sequence
// everywhere: the plan is rank 0's, shared); the times this rank saw fill `out` (rank
// 0's become the shared calibration).
Status calibrateAllReduce(const std::vector<Algorithm>& candidates, const CommShape& shape,
                          const Calibration& plan, const AllReduceProbe& run, Calibration* out);

}  // namespace ftccl
