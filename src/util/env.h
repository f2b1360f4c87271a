// Reading FTCCL_* environment variables: every malformed value is an error, never ignored.
#pragma once

#include <cstdint>
#include <string>

#include "util/status.h"

namespace ftccl {

// The variable's value, or "" when unset.
std::string envString(const char* name);

// Parses a decimal integer in [minValue, maxValue]. Unset leaves *out unchanged.
Status envInt(const char* name, int64_t minValue, int64_t maxValue, int64_t* out);

// A file name with "%h" replaced by the host name and "%p" by the pid (FTCCL_DEBUG_FILE,
// FTCCL_STATS_FILE): one file per process of a job.
std::string expandPathPattern(std::string pattern);

}  // namespace ftccl
