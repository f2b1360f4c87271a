#include "stats/stats_file.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cstring>

#include "util/env.h"
#include "util/log.h"

namespace ftccl {

Status StatsFile::acquire(const std::string& pathPattern, int intervalMs,
                          std::shared_ptr<StatsFile>* out) {
  static std::mutex mutex;
  static std::weak_ptr<StatsFile> current;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto existing = current.lock()) {
    *out = existing;
    return Status::ok();
  }
  std::shared_ptr<StatsFile> file(new StatsFile());
  file->path_ = expandPathPattern(pathPattern);
  file->intervalMs_ = intervalMs;
  // Only its owner reads it (it tells who talks to whom, and how fast), and a symbolic
  // link planted at the path is refused rather than followed.
  file->fd_ =
      open(file->path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (file->fd_ < 0) {
    return invalidArgument("FTCCL_STATS_FILE: cannot open " + file->path_ + ": " +
                           std::strerror(errno));
  }
  file->thread_ = std::thread([raw = file.get()] { raw->run(); });
  FTCCL_LOG(Info, Init, "stats: a line per communicator every {} ms to {}", intervalMs,
            file->path_);
  current = file;
  *out = file;
  return Status::ok();
}

StatsFile::~StatsFile() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) close(fd_);
}

StatsFile::SourceId StatsFile::add(Source source) {
  std::lock_guard<std::mutex> lock(mutex_);
  SourceId id = nextId_++;
  sources_[id] = std::move(source);
  return id;
}

void StatsFile::remove(SourceId id) {
  std::string line;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = sources_.find(id);
    if (it == sources_.end()) return;
    CommStats last = it->second();
    last.final = true;
    line = format(id, std::move(last));
    sources_.erase(it);
    previous_.erase(id);
  }
  write(line);
}

void StatsFile::run() {
  pthread_setname_np(pthread_self(), "ftccl-stats");
  std::unique_lock<std::mutex> lock(mutex_);
  auto next = std::chrono::steady_clock::now();
  while (!stopping_) {
    next += std::chrono::milliseconds(intervalMs_);
    wake_.wait_until(lock, next, [&] { return stopping_; });
    if (stopping_) break;
    std::string lines;
    for (auto& [id, source] : sources_) lines += format(id, source());
    lock.unlock();  // a slow disk delays no remove(), hence no destroy or abort
    write(lines);
    lock.lock();
    auto now = std::chrono::steady_clock::now();
    if (next < now) next = now;  // fell behind (a stopped process): no burst of lines
  }
}

std::string StatsFile::format(SourceId id, CommStats stats) {
  auto before = previous_.find(id);
  std::string line = statsJson(stats, before == previous_.end() ? nullptr : &before->second);
  previous_[id] = std::move(stats);
  return line + '\n';
}

// One write per interval: an O_APPEND write of a regular file lands whole, after every
// line already there, whichever process wrote them.
void StatsFile::write(const std::string& lines) {
  if (lines.empty()) return;
  ssize_t n = ::write(fd_, lines.data(), lines.size());
  if (n != static_cast<ssize_t>(lines.size())) {
    FTCCL_LOG(Warn, Init, "stats: short write to {}: {}", path_,
              n < 0 ? std::strerror(errno) : "disk full?");
  }
}

}  // namespace ftccl
