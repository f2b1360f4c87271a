// Communicator settings: ftcclConfig_t beats the environment beats the default.
#pragma once

#include <string>

#include "algorithms/collective.h"
#include "ftccl.h"
#include "tuning/algorithm_choice.h"
#include "tuning/cost_model.h"
#include "util/status.h"

namespace ftccl {

struct CommConfig {
  int nSpares = 0;
  int probeIntervalMs = 10;
  int failureTimeoutMs = 1000;
  int opTimeoutMs = 0;  // 0: off
  int shrinkWhenNoSpares = 1;
  std::string algorithm;         // FTCCL_ALGO syntax; "" = let ftccl choose
  AlgorithmOverrides overrides;  // `algorithm`, parsed
  bool tuningGiven = false;      // FTCCL_TUNING set: rank 0 uses it instead of measuring
  CostModel costModel;
  int bootstrapTimeoutMs = 120000;
  PipelineConfig pipeline;  // rank 0's is adopted by all ranks at init
  // Observability (src/stats): counting on the hot path (FTCCL_STATS=0 turns it off),
  // the stats file and its period, and the lateness that makes a straggler.
  bool stats = true;
  std::string statsFile;  // FTCCL_STATS_FILE, "%h" host and "%p" pid expanded
  int statsIntervalMs = 1000;
  int stragglerMs = 5;
  // Shared memory between the ranks of a one-node communicator (FTCCL_SHM=0 turns it
  // off), and its slot size (FTCCL_SHM_SLOT_BYTES): rank 0's is used.
  bool sharedMemory = true;
  size_t shmSlotBytes = 256 << 10;
  // Large shared-memory ops read a peer's buffer straight from its process (cross-memory
  // attach) where every rank can (FTCCL_SHM_SINGLE_COPY=0 on any rank turns it off).
  bool shmSingleCopy = true;
};

// Validates `user` (may be null) and merges it with FTCCL_* variables. Every invalid
// value is an ftcclInvalidArgument naming the field or variable.
Status resolveConfig(const ftcclConfig_t* user, CommConfig* out);

}  // namespace ftccl
