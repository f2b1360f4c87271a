#include "core/stream.h"

namespace ftccl {

Stream::Stream() : thread_([this] { run(); }) {}

Stream::~Stream() {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return queue_.empty() && !busy_; });
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void Stream::enqueue(std::function<Status()> work) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // The thread only sleeps when the queue is empty and it is not running an op.
    wake = queue_.empty() && !busy_;
    queue_.push_back(std::move(work));
  }
  if (wake) changed_.notify_all();
}

Status Stream::synchronize() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return queue_.empty() && !busy_; });
  Status result = firstError_;
  firstError_ = Status::ok();
  return result;
}

Status Stream::query() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!queue_.empty() || busy_) return Status(ftcclInProgress, "");
  Status result = firstError_;
  firstError_ = Status::ok();
  return result;
}

void Stream::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] { return !queue_.empty() || stopping_; });
    if (queue_.empty()) return;  // stopping
    std::function<Status()> work = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    Status result;
    try {
      result = work();
    } catch (const std::exception& e) {  // never let an exception end the process
      result = internalError(std::string("stream operation: ") + e.what());
    }
    lock.lock();
    busy_ = false;
    if (!result.isOk() && firstError_.isOk()) firstError_ = result;
    // Waiters (synchronize, destroy) only care once the queue has drained.
    if (queue_.empty()) changed_.notify_all();
  }
}

}  // namespace ftccl
