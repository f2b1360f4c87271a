#include "core/recovery_inbox.h"

#include <algorithm>
#include <chrono>

namespace ftccl {

bool RecoveryInbox::tellCommit(const AgreementCommit& commit, uint64_t entered) {
  {
    // Told twice (the old registration still hears while the new one is added, also
    // while this very commit is being entered) or entered already: nothing to do.
    std::lock_guard<std::mutex> lock(mutex_);
    if (commit.next.epoch <= std::max(entered, newestTold_)) return false;
    newestTold_ = commit.next.epoch;
    commits_.push_back(commit);
  }
  changed_.notify_all();
  return true;
}

void RecoveryInbox::tellFailed(const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    recoveryError_ = why;
  }
  changed_.notify_all();
}

void RecoveryInbox::tellAllRanksLeft() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    allRanksLeft_ = true;
  }
  changed_.notify_all();
}

void RecoveryInbox::tellJoinAccepted(const JoinAccept& accept, const crypto::Key& rootKey) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    joinAccept_ = accept;
    joinRootKey_ = rootKey;
    hasJoinAccept_ = true;
  }
  changed_.notify_all();
}

void RecoveryInbox::wake() {
  // Under the lock: a waiter between its check and its sleep would miss the news.
  { std::lock_guard<std::mutex> lock(mutex_); }
  changed_.notify_all();
}

// Waits for the agreement's decision, bounded by the round's own progress: while the
// agreement is live it moves at least every few failure timeouts (the coordinator gives
// up on a silent member at its second stall, a member on a silent coordinator at its
// third), so kStuckTimeouts failure timeouts without a move mean a stuck round (or, for
// a rebuild, none under way), and the wait gives up saying what it waited for. A
// standby with no round under way waits as long as it takes: its rank is being heard.
Status RecoveryInbox::awaitDecision(const char* call, bool forever, int failureTimeoutMs,
                                    const std::function<bool()>& aborted,
                                    const std::function<HealthProtocol::AgreementView()>& view,
                                    AgreementCommit* commit) {
  constexpr int kStuckTimeouts = 10;
  const auto slice = std::chrono::milliseconds(std::max(failureTimeoutMs, 10));
  std::unique_lock<std::mutex> lock(mutex_);
  auto ready = [&] {
    return !commits_.empty() || !recoveryError_.empty() || aborted() || allRanksLeft_;
  };
  uint64_t lastMark = 0;
  int unmoved = -1;  // slices since the mark last moved (-1: not read yet)
  while (!changed_.wait_for(lock, slice, ready)) {
    lock.unlock();  // health's callbacks take this lock under its own: never the reverse
    HealthProtocol::AgreementView round = view();
    lock.lock();
    if (ready()) break;
    if (forever && !round.waiting) {
      unmoved = -1;
      continue;
    }
    if (unmoved < 0 || round.mark != lastMark) {
      lastMark = round.mark;
      unmoved = 0;
      continue;
    }
    if (++unmoved < kStuckTimeouts) continue;
    std::string why = std::string(call) + ": the agreement on the next epoch has not moved in " +
                      std::to_string(kStuckTimeouts * slice.count()) + " ms: " + round.description;
    return forever ? remoteError(why + " (is this process cut off?)") : timeoutError(why);
  }
  if (aborted()) return invalidUsage(std::string(call) + ": the communicator was aborted");
  if (!commits_.empty()) {  // oldest first; only newer than the epoch entered (tellCommit)
    *commit = std::move(commits_.front());
    commits_.pop_front();
    return Status::ok();
  }
  if (!recoveryError_.empty()) return remoteError("cannot rebuild: " + recoveryError_);
  return Status(ftcclInProgress, "every rank left");  // allRanksLeft_: only standby asks
}

bool RecoveryInbox::takeNewer(uint64_t entered, AgreementCommit* newer) {
  std::lock_guard<std::mutex> lock(mutex_);
  while (!commits_.empty() && commits_.front().next.epoch <= entered) commits_.pop_front();
  if (commits_.empty()) return false;
  *newer = std::move(commits_.front());
  commits_.pop_front();
  return true;
}

bool RecoveryInbox::awaitJoinAccept(int timeoutMs, const std::function<bool()>& aborted,
                                    JoinAccept* accept, crypto::Key* rootKey) {
  std::unique_lock<std::mutex> lock(mutex_);
  bool answered = changed_.wait_for(lock, std::chrono::milliseconds(timeoutMs),
                                    [&] { return hasJoinAccept_ || aborted(); });
  if (!answered || !hasJoinAccept_) return false;
  *accept = joinAccept_;
  *rootKey = joinRootKey_;
  return true;
}

void RecoveryInbox::addJoined(PeerInfo info, const std::vector<PeerInfo>& known) {
  auto same = [&](const PeerInfo& p) { return p.key == info.key; };
  std::lock_guard<std::mutex> lock(mutex_);
  if (std::any_of(known.begin(), known.end(), same)) return;
  if (std::any_of(joined_.begin(), joined_.end(), same)) return;
  joined_.push_back(std::move(info));
}

std::vector<PeerInfo> RecoveryInbox::joined() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return joined_;
}

std::vector<PeerInfo> RecoveryInbox::takeJoined() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<PeerInfo> taken;
  taken.swap(joined_);
  return taken;
}

void RecoveryInbox::addJoinSecret(std::vector<uint8_t> secret) {
  std::lock_guard<std::mutex> lock(mutex_);
  joinSecrets_.push_back(std::move(secret));
}

std::vector<std::vector<uint8_t>> RecoveryInbox::joinSecrets() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return joinSecrets_;
}

}  // namespace ftccl
