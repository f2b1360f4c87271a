#include "core/op_order.h"

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

void OpOrder::enter() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++users_;
}

void OpOrder::leave() {
  // Notified under the lock: the last user's leave lets abort or destroy free the object,
  // which they can do only once this releases it, after which it touches nothing.
  std::lock_guard<std::mutex> lock(mutex_);
  --users_;
  changed_.notify_all();
}

void OpOrder::awaitUnused() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return users_ == 0; });
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
