// FTCCL_STATS_FILE: one thread per process appends, every FTCCL_STATS_INTERVAL_MS, one
// JSON line (stats_json.h) per live communicator, and a last one ("final": true) when a
// communicator goes. "%h" and "%p" in the path become the host name and the pid, so
// each process can write a file of its own; without them the processes of a host share
// the file, each line written whole by one append.
//
// A thread of its own, not the health thread: a slow disk must never delay a heartbeat.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "stats/stats_json.h"
#include "util/status.h"

namespace ftccl {

class StatsFile {
 public:
  // The process's writer for `pathPattern`, started on first use.
  static Status acquire(const std::string& pathPattern, int intervalMs,
                        std::shared_ptr<StatsFile>* out);
  ~StatsFile();

  using Source = std::function<CommStats()>;
  using SourceId = uint64_t;
  SourceId add(Source source);
  // Writes the source's final line and forgets it; when this returns the source is never
  // called again. Call without holding any lock the source takes.
  void remove(SourceId id);

  const std::string& path() const { return path_; }

 private:
  StatsFile() = default;
  void run();
  // The source's line (and its interval since the previous one); under mutex_.
  std::string format(SourceId id, CommStats stats);
  void write(const std::string& lines);  // without mutex_

  std::string path_;
  int fd_ = -1;
  int intervalMs_ = 1000;
  std::mutex mutex_;  // held while a source runs: remove() waits for it
  std::condition_variable wake_;
  bool stopping_ = false;
  SourceId nextId_ = 1;
  std::map<SourceId, Source> sources_;
  std::map<SourceId, CommStats> previous_;
  std::thread thread_;
};

}  // namespace ftccl
