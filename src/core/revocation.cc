#include "core/revocation.h"

namespace ftccl {

bool Revocation::revoke(const Status& cause, uint64_t newsEpoch) {
  std::lock_guard<std::mutex> lock(mutex_);  // the only writer of an error
  if (error_.load() != ftcclSuccess || newsEpoch < epoch_) return false;
  // The message is in place before the error can be seen (GetAsyncError, then
  // GetLastError from a watchdog must never read an empty message).
  reason_ = cause.message();
  lastError_ = "communicator revoked: " + cause.message();
  error_.store(cause.code());
  return true;
}

void Revocation::startEpoch(uint64_t epoch) {
  std::lock_guard<std::mutex> lock(mutex_);
  epoch_ = epoch;
  error_ = ftcclSuccess;
  reason_.clear();
  lastError_.clear();
}

Status Revocation::status(const std::string& opName) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return Status(error_.load(), opName + ": the communicator is revoked: " + reason_);
}

std::string Revocation::reason() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return reason_;
}

void Revocation::setLastError(const std::string& message) {
  std::lock_guard<std::mutex> lock(mutex_);
  lastError_ = message;
}

std::string Revocation::lastError() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return lastError_;
}

}  // namespace ftccl
