#include "core/config.h"

#include <sstream>

#include "bootstrap/bootstrap.h"
#include "reduce/reduce.h"
#include "util/env.h"
#include "util/log.h"

namespace ftccl {
namespace {

// Picks the config field when set, else the variable when set, else keeps *value.
Status pick(int field, const char* fieldName, const char* variable, int64_t minValue,
            int64_t maxValue, int* value) {
  if (field != FTCCL_CONFIG_UNDEF_INT) {
    if (field < minValue || field > maxValue) {
      return invalidArgument(std::string("config.") + fieldName + "=" + std::to_string(field) +
                             " is outside [" + std::to_string(minValue) + ", " +
                             std::to_string(maxValue) + "]");
    }
    *value = field;
    return Status::ok();
  }
  int64_t parsed = *value;
  if (variable != nullptr) FTCCL_CHECK(envInt(variable, minValue, maxValue, &parsed));
  *value = static_cast<int>(parsed);
  return Status::ok();
}

}  // namespace

Status resolveConfig(const ftcclConfig_t* user, CommConfig* out) {
  ftcclConfig_t unset = FTCCL_CONFIG_INITIALIZER;
  const ftcclConfig_t* c = user ? user : &unset;
  if (c->magic != FTCCL_CONFIG_MAGIC || c->size < sizeof(ftcclConfig_t)) {
    return invalidArgument("config was not initialised with FTCCL_CONFIG_INITIALIZER");
  }
  CommConfig cfg;
  FTCCL_CHECK(pick(c->nSpares, "nSpares", "FTCCL_SPARES", 0, 1 << 20, &cfg.nSpares));
  FTCCL_CHECK(pick(c->probeIntervalMs, "probeIntervalMs", "FTCCL_PROBE_INTERVAL_MS", 1, 60000,
                   &cfg.probeIntervalMs));
  FTCCL_CHECK(pick(c->failureTimeoutMs, "failureTimeoutMs", "FTCCL_FAILURE_TIMEOUT_MS", 1, 3600000,
                   &cfg.failureTimeoutMs));
  FTCCL_CHECK(
      pick(c->opTimeoutMs, "opTimeoutMs", "FTCCL_OP_TIMEOUT_MS", 0, 86400000, &cfg.opTimeoutMs));
  FTCCL_CHECK(
      pick(c->shrinkWhenNoSpares, "shrinkWhenNoSpares", nullptr, 0, 1, &cfg.shrinkWhenNoSpares));
  if (cfg.failureTimeoutMs < 3 * cfg.probeIntervalMs) {
    return invalidArgument("failureTimeoutMs=" + std::to_string(cfg.failureTimeoutMs) +
                           " must be at least 3 probe intervals (probeIntervalMs=" +
                           std::to_string(cfg.probeIntervalMs) + ")");
  }

  if (c->algorithm != nullptr) {
    cfg.algorithm = c->algorithm;
    FTCCL_CHECK(parseAlgorithmOverrides(cfg.algorithm, "config.algorithm", &cfg.overrides));
  } else {
    cfg.algorithm = envString("FTCCL_ALGO");
    FTCCL_CHECK(parseAlgorithmOverrides(cfg.algorithm, "FTCCL_ALGO", &cfg.overrides));
  }
  std::string tuning = envString("FTCCL_TUNING");
  if (!tuning.empty()) {
    FTCCL_CHECK(parseCostModel(tuning, &cfg.costModel));
    cfg.tuningGiven = true;
  }

  int64_t chunk = static_cast<int64_t>(cfg.pipeline.chunkBytes);
  FTCCL_CHECK(envInt("FTCCL_CHUNK_BYTES", 4096, 64 << 20, &chunk));
  cfg.pipeline.chunkBytes = static_cast<size_t>(chunk);
  int64_t channels = cfg.pipeline.channels;
  FTCCL_CHECK(envInt("FTCCL_CHANNELS", 1, kMaxPipelineChannels, &channels));
  cfg.pipeline.channels = static_cast<int>(channels);
  FTCCL_CHECK(bootstrapTimeoutMs(&cfg.bootstrapTimeoutMs));
  int64_t stats = 1, interval = cfg.statsIntervalMs, straggler = cfg.stragglerMs;
  FTCCL_CHECK(envInt("FTCCL_STATS", 0, 1, &stats));
  FTCCL_CHECK(envInt("FTCCL_STATS_INTERVAL_MS", 10, 3600000, &interval));
  FTCCL_CHECK(envInt("FTCCL_STRAGGLER_MS", 1, 3600000, &straggler));
  cfg.stats = stats != 0;
  cfg.statsIntervalMs = static_cast<int>(interval);
  cfg.stragglerMs = static_cast<int>(straggler);
  cfg.statsFile = envString("FTCCL_STATS_FILE");
  if (!cfg.statsFile.empty() && !cfg.stats) {
    return invalidArgument("FTCCL_STATS_FILE is set but FTCCL_STATS=0 turns counting off");
  }
  int64_t shm = 1, shmSlot = static_cast<int64_t>(cfg.shmSlotBytes), singleCopy = 1;
  FTCCL_CHECK(envInt("FTCCL_SHM", 0, 1, &shm));
  FTCCL_CHECK(envInt("FTCCL_SHM_SLOT_BYTES", 4096, 64 << 20, &shmSlot));
  FTCCL_CHECK(envInt("FTCCL_SHM_SINGLE_COPY", 0, 1, &singleCopy));
  cfg.sharedMemory = shm != 0;
  cfg.shmSingleCopy = singleCopy != 0;
  cfg.shmSlotBytes = static_cast<size_t>(shmSlot);
  std::string isa = envString("FTCCL_REDUCE_ISA");  // read by the kernels themselves
  reduce_detail::Isa unused;
  if (!isa.empty() && !reduce_detail::parseIsa(isa.c_str(), &unused)) {
    return invalidArgument("FTCCL_REDUCE_ISA=" + isa + " is not one of baseline, avx2, avx512");
  }
  *out = cfg;
  return Status::ok();
}

}  // namespace ftccl
