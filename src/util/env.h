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

}  // namespace ftccl
