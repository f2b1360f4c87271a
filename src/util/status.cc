#include "util/status.h"

#include <cstring>

namespace ftccl {

Status& Status::addContext(const char* file, int line) {
  const char* base = std::strrchr(file, '/');
  message_ += " [";
  message_ += base ? base + 1 : file;
  message_ += ":" + std::to_string(line) + "]";
  return *this;
}

Status invalidArgument(std::string message) { return {ftcclInvalidArgument, std::move(message)}; }
Status invalidUsage(std::string message) { return {ftcclInvalidUsage, std::move(message)}; }
Status systemError(std::string message) { return {ftcclSystemError, std::move(message)}; }
Status internalError(std::string message) { return {ftcclInternalError, std::move(message)}; }
Status remoteError(std::string message) { return {ftcclRemoteError, std::move(message)}; }
Status timeoutError(std::string message) { return {ftcclTimeout, std::move(message)}; }

}  // namespace ftccl
