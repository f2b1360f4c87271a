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

bool OpOrder::awaitTurn(const Ticket& ticket, const std::function<bool()>& stop) {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return executed_ == ticket.index || stop(); });
  return executed_ == ticket.index;
}

void OpOrder::finish(const Ticket& ticket) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (executed_ == ticket.index) ++executed_;
  }
  changed_.notify_all();
}

void OpOrder::awaitAllRun(const std::function<bool()>& stop) {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return executed_ == issued_ || stop(); });
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
  {
    std::lock_guard<std::mutex> lock(mutex_);
    --users_;
  }
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
