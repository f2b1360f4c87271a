#include "stats/progress_board.h"

namespace ftccl {

void ProgressBoard::reset(uint32_t epoch) {
  epoch_.store(epoch, std::memory_order_relaxed);
  started_.store(0, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  waitUs_.store(0, std::memory_order_relaxed);
  waitNs_ = 0;
  inOp_.store(false, std::memory_order_relaxed);
  for (Entry& e : history_) e.key.store(0, std::memory_order_relaxed);
}

void ProgressBoard::begin(int kind, uint64_t collectives, int64_t nowNs) {
  pending_ = collectives;
  kind_.store(static_cast<uint8_t>(kind), std::memory_order_relaxed);
  step_.store(0, std::memory_order_relaxed);
  started_.store(done_.load(std::memory_order_relaxed) + collectives, std::memory_order_relaxed);
  changedNs_.store(nowNs, std::memory_order_relaxed);
  inOp_.store(true, std::memory_order_release);
}

void ProgressBoard::end(bool ok, uint64_t elapsedNs, int64_t nowNs) {
  inOp_.store(false, std::memory_order_relaxed);
  changedNs_.store(nowNs, std::memory_order_relaxed);
  if (!ok || pending_ == 0) return;
  uint64_t done = done_.load(std::memory_order_relaxed) + pending_;
  waitNs_ += elapsedNs;  // summed in ns: a sub-microsecond op would add 0 us
  const uint64_t wait = waitNs_ / 1000;
  Entry& e = history_[done % kHistory];
  e.key.store(0, std::memory_order_relaxed);  // a reader never pairs a new key with an old value
  std::atomic_thread_fence(std::memory_order_release);
  e.waitUs.store(wait, std::memory_order_relaxed);
  e.key.store(done + 1, std::memory_order_release);
  waitUs_.store(wait, std::memory_order_relaxed);
  done_.store(done, std::memory_order_release);
}

OpProgress ProgressBoard::read(int64_t nowNs) const {
  OpProgress p;
  p.commKey = commKey_;
  p.epoch = epoch_.load(std::memory_order_relaxed);
  p.done = done_.load(std::memory_order_acquire);
  // The sum that goes with `done` (waitUs_ may already hold the next op's).
  if (p.done == 0 || !waitAt(p.done, &p.waitUs)) p.waitUs = waitUs_.load(std::memory_order_relaxed);
  p.started = started_.load(std::memory_order_relaxed);
  p.inOp = inOp_.load(std::memory_order_acquire);
  p.kind = kind_.load(std::memory_order_relaxed);
  p.step = step_.load(std::memory_order_relaxed);
  if (p.started < p.done) p.started = p.done;
  int64_t since = nowNs - changedNs_.load(std::memory_order_relaxed);
  p.stateMs = since > 0 ? static_cast<uint32_t>(since / 1000000) : 0;
  return p;
}

bool ProgressBoard::waitAt(uint64_t done, uint64_t* waitUs) const {
  const Entry& e = history_[done % kHistory];
  if (e.key.load(std::memory_order_acquire) != done + 1) return false;
  uint64_t value = e.waitUs.load(std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_acquire);
  if (e.key.load(std::memory_order_relaxed) != done + 1) return false;
  *waitUs = value;
  return true;
}

}  // namespace ftccl
