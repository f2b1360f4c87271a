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

bool parseSize(const std::string& text, uint64_t* out) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long value = std::strtoull(text.c_str(), &end, 10);
  if (end == text.c_str() || errno != 0 || text[0] == '-') return false;
  uint64_t scale = 1;
  if (*end != '\0') {
    switch (*end) {
      case 'k': case 'K': scale = 1ull << 10; break;
      case 'm': case 'M': scale = 1ull << 20; break;
      case 'g': case 'G': scale = 1ull << 30; break;
      default: return false;
    }
    if (end[1] != '\0' && !((end[1] == 'B' || end[1] == 'b') && end[2] == '\0')) return false;
  }
  if (value > UINT64_MAX / scale) return false;
  *out = value * scale;
  return true;
}

}  // namespace ftccl
