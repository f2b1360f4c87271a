#include "util/env.h"

#include <unistd.h>

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

std::string expandPathPattern(std::string pattern) {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  for (size_t pos = 0; (pos = pattern.find('%', pos)) != std::string::npos;) {
    if (pos + 1 >= pattern.size()) break;
    std::string with;
    if (pattern[pos + 1] == 'h') {
      with = host;
    } else if (pattern[pos + 1] == 'p') {
      with = std::to_string(getpid());
    } else {
      pos += 2;
      continue;
    }
    pattern.replace(pos, 2, with);
    pos += with.size();
  }
  return pattern;
}

}  // namespace ftccl
