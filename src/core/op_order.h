// The order of a communicator's ops, and who still uses the object.
//
// Every op gets a ticket on the issuing (application) thread; tickets run one after
// another in issue order, whatever stream they were queued on, so every rank runs op k
// of a communicator as its k-th op and one thread at a time drives its transport.
// Issuing also numbers the batch's messages: collectives take the epoch's next op
// sequence numbers, Send/Recv the next per-peer ones; a new epoch starts them at 0.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "core/op_request.h"

namespace ftccl {

class OpOrder {
 public:
  struct Ticket {
    uint64_t index = 0;
    uint64_t epoch = 0;  // the epoch whose numbering the batch got
  };
  Ticket issue(std::vector<OpRequest>* batch);
  // The numbering of a new epoch with `nranks` ranks, from 0.
  void startEpoch(uint64_t epoch, int nranks);
  // Collectives issued in this epoch: a number every member has alike (CommSplit's key).
  uint64_t collectivesIssued() const;

  // Waits for the ticket's turn; false if `stop` became true first (then the turn is
  // still released by finish()).
  bool awaitTurn(const Ticket& ticket, const std::function<bool()>& stop);
  void finish(const Ticket& ticket);
  // Waits until every issued op has run, or `stop`.
  void awaitAllRun(const std::function<bool()>& stop);
  // After `stop` became true (a revoke, an abort): waiters look again.
  void wakeAll();

  // Calls in progress (API guards, queued stream ops); abort and destroy wait for them
  // to leave before freeing.
  void enter();
  void leave();
  void awaitUnused();
  // Calls queued in an open group hold the object without being in progress: abort and
  // destroy do not wait for them (a group may never end), but the object is freed by
  // whichever comes last, the release or the last group letting go.
  void holdForGroup();
  bool releaseGroupHold();  // true: released and no hold left, the caller frees it
  bool markReleased();      // true: no group holds it, the caller frees it
  bool isReleased() const;

 private:
  // Waits under the lock, counted in sleepers_, until `ready`.
  template <typename Ready>
  void sleepUntil(std::unique_lock<std::mutex>& lock, Ready ready);
  // Wakes the waiters after a change to what they wait for, if any may be waiting.
  void wakeSleepers();

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  // What waiters wait for is atomic, so the common case (an op's turn has come, nobody
  // waits) takes no lock: a blocking small op took five lock pairs, now one. A waiter
  // counts itself in `sleepers_` under the lock before it looks; a change is stored
  // first and `sleepers_` read after (both seq_cst), so one of the two sees the other.
  uint64_t issued_ = 0;
  std::atomic<uint64_t> executed_{0};
  std::atomic<int> sleepers_{0};
  uint64_t epoch_ = 0;
  uint64_t collectivesIssued_ = 0;
  std::vector<uint32_t> sendsIssued_, recvsIssued_;  // per peer, this epoch
  // Calls in progress, counted without the lock (two lock pairs were a tenth of a small
  // op): leave() takes the lock only when awaitUnused() has counted itself in.
  std::atomic<int> users_{0};
  std::atomic<int> unusedWaiters_{0};
  int groupHolds_ = 0;
  bool released_ = false;
};

}  // namespace ftccl
