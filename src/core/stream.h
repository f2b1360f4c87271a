// A stream: an ordered queue of operations run by its own thread, asynchronously to
// the application. The thread sleeps on a condition variable when the queue is
// empty, so an idle stream costs nothing.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "util/status.h"

namespace ftccl {

class Stream {
 public:
  Stream();
  ~Stream();  // waits for queued work
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  void enqueue(std::function<Status()> work);
  // Waits for everything queued so far; returns (and clears) the first error.
  Status synchronize();
  // ftcclInProgress while work is queued, else as synchronize() without waiting.
  Status query();

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::function<Status()>> queue_;
  bool busy_ = false;
  bool stopping_ = false;
  Status firstError_;
  std::thread thread_;
};

}  // namespace ftccl
