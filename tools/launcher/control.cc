#include "launcher/control.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "launcher/output.h"

namespace ftrun {

ControlChannel::~ControlChannel() {
  if (read_ >= 0) ::close(read_);
  if (write_ >= 0) ::close(write_);
  removeStamp();
}

bool ControlChannel::open(std::string* error) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    *error = std::string("pipe: ") + std::strerror(errno);
    return false;
  }
  read_ = fds[0];
  write_ = fds[1];
  // Only the write end reaches the ranks; a full pipe drops a request instead of
  // blocking a rank (the rank then injects the fault itself, see perf_fault.cc).
  ::fcntl(write_, F_SETFD, 0);
  const char* tmp = std::getenv("TMPDIR");
  stampPath_ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/ftccl_run-" +
               std::to_string(::getpid()) + ".faults";
  return true;
}

std::vector<std::string> ControlChannel::environment() const {
  return {"FTCCL_RUN_CONTROL_FD=" + std::to_string(write_), "FTCCL_RUN_FAULT_STAMP=" + stampPath_};
}

std::vector<FaultRequest> ControlChannel::readRequests(int nranks) {
  char buffer[512];
  ssize_t n;
  while ((n = ::read(read_, buffer, sizeof(buffer))) > 0) pending_.append(buffer, size_t(n));
  std::vector<FaultRequest> requests;
  size_t end;
  while ((end = pending_.find('\n')) != std::string::npos) {
    std::string line = pending_.substr(0, end);
    pending_.erase(0, end + 1);
    char kind[8] = {0};
    int rank = -1;
    char extra = 0;
    if (std::sscanf(line.c_str(), "%7s %d %c", kind, &rank, &extra) == 2 && rank >= 0 &&
        rank < nranks && (std::strcmp(kind, "kill") == 0 || std::strcmp(kind, "stop") == 0)) {
      requests.push_back({kind[0] == 'k' ? FaultKind::Kill : FaultKind::Stop, rank});
    } else {
      logLine("warning: ignored a malformed fault request: " + line.substr(0, 80));
    }
  }
  if (pending_.size() > 4096) pending_.clear();  // no newline in sight: garbage
  return requests;
}

void ControlChannel::stamp(pid_t victim) const {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  double ms = static_cast<double>(now.tv_sec) * 1e3 + static_cast<double>(now.tv_nsec) / 1e6;
  std::string temporary = stampPath_ + ".tmp";
  if (FILE* f = std::fopen(temporary.c_str(), "w")) {
    std::fprintf(f, "%.3f %d\n", ms, static_cast<int>(victim));
    std::fclose(f);
    std::rename(temporary.c_str(), stampPath_.c_str());  // readers never see half a stamp
  }
}

void ControlChannel::removeStamp() const {
  if (!stampPath_.empty()) std::remove(stampPath_.c_str());
}

}  // namespace ftrun
