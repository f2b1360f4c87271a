#include "util/env.h"

#include <cerrno>
#include <cstdlib>

namespace ftccl {

std::string envString(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::string(value) : std::string();
}

Status envInt(const char* name, int64_t minValue, int64_t maxValue, int64_t* out) {
  const char* value = std::getenv(name);
  if (value == nullptr) return Status::ok();
  char* end = nullptr;
  errno = 0;
  long long parsed = std::strtoll(value, &end, 10);
  if (*value == '\0' || *end != '\0' || errno != 0 || parsed < minValue || parsed > maxValue) {
    return invalidArgument(std::string(name) + "=" + value + " is not an integer in [" +
                           std::to_string(minValue) + ", " + std::to_string(maxValue) + "]");
  }
  *out = parsed;
  return Status::ok();
}

}  // namespace ftccl
