#include "core/op_order.h"

#include <chrono>

namespace ftccl {

OpOrder::Ticket OpOrder::issue(std::vector<OpRequest>* batch) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (OpRequest& op : *batch) {
    if (op.kind == OpKind::kSend) {
      op.args.opSeq = sendsIssued_[static_cast<size_t>(op.peer)]++;
    } else if (op.kind == OpKind::kRecv) {
      op.args.opSeq = recvsIssued_[static_cast<size_t>(op.peer)]++;
    } else {
      op.args.opSeq = static_cast<uint32_t>(collectivesIssued_++);
    }
  }
  return Ticket{issued_++, epoch_};
}

void OpOrder::startEpoch(uint64_t epoch, int nranks) {
  std::lock_guard<std::mutex> lock(mutex_);
  epoch_ = epoch;
  collectivesIssued_ = 0;
  sendsIssued_.assign(static_cast<size_t>(nranks), 0);
  recvsIssued_.assign(static_cast<size_t>(nranks), 0);
}

uint64_t OpOrder::collectivesIssued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return collectivesIssued_;
}

template <typename Ready>
void OpOrder::sleepUntil(std::unique_lock<std::mutex>& lock, Ready ready) {
  sleepers_.fetch_add(1, std::memory_order_seq_cst);
  changed_.wait(lock, ready);
  sleepers_.fetch_sub(1, std::memory_order_relaxed);
}

void OpOrder::wakeSleepers() {
  if (sleepers_.load(std::memory_order_seq_cst) == 0) return;
  // Through the lock: a waiter between its look and its sleep holds it, and sleeps first.
  { std::lock_guard<std::mutex> lock(mutex_); }
  changed_.notify_all();
}

bool OpOrder::awaitTurn(const Ticket& ticket, const std::function<bool()>& stop) {
  if (executed_.load(std::memory_order_acquire) == ticket.index) return true;
  std::unique_lock<std::mutex> lock(mutex_);
  sleepUntil(lock, [&] { return executed_.load() == ticket.index || stop(); });
  return executed_.load() == ticket.index;
}

void OpOrder::finish(const Ticket& ticket) {
  uint64_t turn = ticket.index;
  executed_.compare_exchange_strong(turn, turn + 1, std::memory_order_seq_cst);
  wakeSleepers();
}

void OpOrder::awaitAllRun(const std::function<bool()>& stop) {
  std::unique_lock<std::mutex> lock(mutex_);
  sleepUntil(lock, [&] { return executed_.load() == issued_ || stop(); });
}

void OpOrder::wakeAll() {
  // Under the lock: a waiter between its check of `stop` and its sleep would miss it.
  { std::lock_guard<std::mutex> lock(mutex_); }
  changed_.notify_all();
}

void OpOrder::enter() { users_.fetch_add(1, std::memory_order_seq_cst); }

void OpOrder::leave() {
  // The last user's leave lets abort or destroy free the object. Without a waiter, the
  // decrement is this call's last touch of it; with one, it decrements and notifies
  // under the lock, which the waiter must take again before it can return.
  if (unusedWaiters_.load(std::memory_order_seq_cst) == 0) {
    users_.fetch_sub(1, std::memory_order_seq_cst);
    return;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  users_.fetch_sub(1, std::memory_order_seq_cst);
  changed_.notify_all();
}

void OpOrder::awaitUnused() {
  std::unique_lock<std::mutex> lock(mutex_);
  unusedWaiters_.fetch_add(1, std::memory_order_seq_cst);
  // A leave() that looked before this waiter counted itself decrements without a
  // wake-up: the wait is sliced, so that decrement is seen within a millisecond.
  while (users_.load(std::memory_order_seq_cst) != 0) {
    changed_.wait_for(lock, std::chrono::milliseconds(1));
  }
  unusedWaiters_.fetch_sub(1, std::memory_order_seq_cst);
}

void OpOrder::holdForGroup() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++groupHolds_;
}

bool OpOrder::releaseGroupHold() {
  std::lock_guard<std::mutex> lock(mutex_);
  --groupHolds_;
  return released_ && groupHolds_ == 0;
}

bool OpOrder::markReleased() {
  std::lock_guard<std::mutex> lock(mutex_);
  released_ = true;
  return groupHolds_ == 0;
}

bool OpOrder::isReleased() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return released_;
}

}  // namespace ftccl
