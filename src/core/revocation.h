// Whether a communicator may run ops: revoked (a member failed, an op failed or timed
// out; cleared when a rebuild enters the next epoch) or aborted (for good). Read on every
// op's path without a lock; the reason and the last error under a lock of their own.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "ftccl.h"
#include "util/status.h"

namespace ftccl {

class Revocation {
 public:
  // True for the first cause only: the others are dropped (the first explains the rest).
  // News of an epoch older than the current one (`newsEpoch`: a failure report of the
  // registration being left, a commit entered already) revokes nothing.
  bool revoke(const Status& cause, uint64_t newsEpoch = UINT64_MAX);
  void abort() { aborted_ = true; }
  // A rebuild enters `epoch`: ops may run again. Before the epoch is published, so that
  // no news of it can come before and be wiped.
  void startEpoch(uint64_t epoch);

  bool aborted() const { return aborted_.load(); }
  ftcclResult_t error() const { return error_.load(); }
  bool revoked() const { return error_.load(std::memory_order_relaxed) != ftcclSuccess; }
  // The error an op of a revoked communicator fails with, named by the op.
  Status status(const std::string& opName) const;
  std::string reason() const;

  void setLastError(const std::string& message);
  std::string lastError() const;

 private:
  mutable std::mutex mutex_;  // reason_, lastError_, epoch_
  std::atomic<bool> aborted_{false};
  std::atomic<ftcclResult_t> error_{ftcclSuccess};
  std::string reason_;
  std::string lastError_;
  uint64_t epoch_ = 0;
};

}  // namespace ftccl
