// What the health thread tells a communicator for its application thread: the commits
// of the members' agreement (entered in order, none skipped: each may move processes to
// standby workers, and every process must make the same moves), a recovery that cannot
// go on, every rank's orderly exit, a newcomer's join answer, and the processes that
// joined the spare pool since the last epoch. The health thread takes this lock under
// its own, so a waiter here never asks health while holding it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "core/peer_info.h"
#include "health/health_protocol.h"
#include "recovery/agreement.h"
#include "util/crypto.h"
#include "util/status.h"

namespace ftccl {

class RecoveryInbox {
 public:
  // False when told before (queued already, or not newer than `entered`): nothing to do.
  bool tellCommit(const AgreementCommit& commit, uint64_t entered);
  void tellFailed(const std::string& why);
  void tellAllRanksLeft();
  void tellJoinAccepted(const JoinAccept& accept, const crypto::Key& rootKey);
  // An abort: waiters look again.
  void wake();

  // Waits for the next commit (oldest first), bounded by the round's own progress as
  // `view` reports it (see the .cc). `forever`: a standby, which waits as long as no
  // round is under way. ftcclInProgress: every rank left in order.
  Status awaitDecision(const char* call, bool forever, int failureTimeoutMs,
                       const std::function<bool()>& aborted,
                       const std::function<HealthProtocol::AgreementView()>& view,
                       AgreementCommit* commit);
  // A commit told while an earlier one was entered, newer than `entered`.
  bool takeNewer(uint64_t entered, AgreementCommit* newer);
  // A newcomer: its sponsor's answer within `timeoutMs`; false on timeout or abort.
  bool awaitJoinAccept(int timeoutMs, const std::function<bool()>& aborted, JoinAccept* accept,
                       crypto::Key* rootKey);

  // The refilled pool: processes that joined after init, not yet in the epoch's peer
  // table (the next commit takes them).
  void addJoined(PeerInfo info, const std::vector<PeerInfo>& known);
  std::vector<PeerInfo> joined() const;
  std::vector<PeerInfo> takeJoined();
  // Join ids this member handed out (a registration of each epoch accepts them).
  void addJoinSecret(std::vector<uint8_t> secret);
  std::vector<std::vector<uint8_t>> joinSecrets() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<AgreementCommit> commits_;  // told and not entered yet, oldest first
  uint64_t newestTold_ = 0;              // the newest epoch ever queued
  std::string recoveryError_;
  bool allRanksLeft_ = false;
  bool hasJoinAccept_ = false;
  JoinAccept joinAccept_;
  crypto::Key joinRootKey_{};
  std::vector<PeerInfo> joined_;
  std::vector<std::vector<uint8_t>> joinSecrets_;
};

}  // namespace ftccl
