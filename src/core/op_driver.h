// Runs one op to completion on the calling thread: progress, then a brief spin, then a
// sleep on the transport's event fd, so oversubscribed ranks yield the CPU and waiting
// ranks cost nothing. It fails the op when the communicator is revoked or aborted, when
// the op makes no progress within its timeout (with a diagnosis of where every rank
// is), and when the ranks disagree on the op.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "algorithms/collective.h"
#include "core/revocation.h"
#include "stats/progress_board.h"

namespace ftccl {

class OpDriver {
 public:
  struct Hooks {
    std::function<void(const Status&)> revoke;  // fail the communicator
    std::function<std::string()> diagnoseHang;  // every rank's progress, in words
    std::function<void()> logMidTransfer;       // what a revoke cut short
  };
  struct Limits {
    int opTimeoutMs = 0;  // no progress for that long fails an op (0: never)
    int failureTimeoutMs = 1000;
    int probeIntervalMs = 10;
  };
  OpDriver(const Revocation& revocation, Hooks hooks)
      : revocation_(revocation), hooks_(std::move(hooks)) {}
  void setLimits(const Limits& limits) { limits_ = limits; }
  void setBoard(ProgressBoard* board) { board_ = board; }
  // Spin budget from the ranks on this host and its usable cores.
  void chooseSpin(int localRanks);

  // What the op is, in words, for its errors: built only when one occurs (composing
  // it for every op cost a fifth of a small shared-memory all-reduce).
  using Describe = std::function<std::string()>;
  // `started`: when the caller began timing the op, else {}: the op's timeout then runs
  // from the driver's first clock read, which an op that never waits makes none of.
  // `timeoutMs`: no progress for that long fails the op (0: never; -1: the op timeout).
  Status drive(Transport& transport, Collective& op, const Describe& what,
               std::chrono::steady_clock::time_point started = {}, int timeoutMs = -1);
  Status drive(Transport& transport, Collective& op, const std::string& what,
               std::chrono::steady_clock::time_point started = {}, int timeoutMs = -1) {
    return drive(transport, op, Describe([&what] { return what; }), started, timeoutMs);
  }
  // The bound of the library's own ops (calibration, the cost model's sharing after a
  // rebuild): the op timeout if set, else 10 failure timeouts without progress. They
  // must never wait forever, even when the application set no op timeout.
  int internalOpTimeoutMs() const;
  // The first clock read of the last drive, {} if it made none (it never waited).
  std::chrono::steady_clock::time_point firstClockRead() const { return firstClockRead_; }

 private:
  Status failDisagreement(Collective& op, const Describe& what, const Status& cause);
  // After a transport error: waits (bounded by the failure timeout) for health to
  // revoke the communicator; true if it did.
  bool awaitHealthVerdict() const;
  Status revokedError(const std::string& what) const;

  const Revocation& revocation_;
  Hooks hooks_;
  Limits limits_;
  ProgressBoard* board_ = nullptr;
  std::chrono::microseconds spinBudget_{200};
  bool oversubscribed_ = false;
  std::chrono::steady_clock::time_point firstClockRead_;
};

}  // namespace ftccl
