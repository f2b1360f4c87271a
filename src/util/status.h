// Status: a result code plus a message that grows a call-site trail as it travels up.
#pragma once

#include <string>
#include <utility>

#include "ftccl.h"

namespace ftccl {

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ftcclResult_t code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }
  bool isOk() const { return code_ == ftcclSuccess; }
  ftcclResult_t code() const { return code_; }
  const std::string& message() const { return message_; }

  // Appends "(at file:line)" so the log shows where an error travelled.
  Status& addContext(const char* file, int line);

 private:
  ftcclResult_t code_ = ftcclSuccess;
  std::string message_;
};

Status invalidArgument(std::string message);
Status invalidUsage(std::string message);
Status systemError(std::string message);
Status internalError(std::string message);
Status remoteError(std::string message);
Status timeoutError(std::string message);

}  // namespace ftccl

// Propagates a failed Status to the caller, recording the call site.
#define FTCCL_CHECK(expr)                                 \
  do {                                                    \
    ::ftccl::Status ftcclStatus_ = (expr);                \
    if (!ftcclStatus_.isOk()) {                           \
      return ftcclStatus_.addContext(__FILE__, __LINE__); \
    }                                                     \
  } while (0)
