#include "launcher/output.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>

namespace ftrun {
namespace {

// A line longer than this is cut and forwarded in pieces, so memory stays bounded even
// for a rank that writes megabytes without a newline.
constexpr size_t kMaxPendingLine = 64 * 1024;
constexpr size_t kReadChunk = 64 * 1024;

bool g_brokenOutput[3] = {false, false, false};

}  // namespace

void writeAll(int fd, const std::string& data) {
  if (fd >= 0 && fd <= 2 && g_brokenOutput[fd]) return;
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      // Our stdout may be a non-blocking descriptor shared with another program.
      pollfd pfd{fd, POLLOUT, 0};
      ::poll(&pfd, 1, -1);
    } else {
      if (fd >= 0 && fd <= 2) g_brokenOutput[fd] = true;
      return;
    }
  }
}

std::string format(const char* fmt, ...) {
  char small[512];
  va_list args;
  va_start(args, fmt);
  int len = std::vsnprintf(small, sizeof(small), fmt, args);
  va_end(args);
  if (len < 0) return std::string();
  if (static_cast<size_t>(len) < sizeof(small)) return std::string(small, len);
  std::string big(static_cast<size_t>(len) + 1, '\0');
  va_start(args, fmt);
  std::vsnprintf(&big[0], big.size(), fmt, args);
  va_end(args);
  big.resize(static_cast<size_t>(len));
  return big;
}

void logLine(const std::string& message) { writeAll(2, "ftccl_run: " + message + "\n"); }

LineForwarder::LineForwarder(int srcFd, int dstFd, std::string prefix)
    : src_(srcFd), dst_(dstFd), prefix_(std::move(prefix)) {
  // poll() says "readable", but a non-blocking read can never hang the launcher anyway.
  int flags = ::fcntl(src_, F_GETFL);
  if (flags >= 0) ::fcntl(src_, F_SETFL, flags | O_NONBLOCK);
}

LineForwarder::~LineForwarder() { close(); }

void LineForwarder::readAvailable() {
  if (src_ < 0) return;
  char buf[kReadChunk];
  ssize_t n = ::read(src_, buf, sizeof(buf));
  if (n > 0) {
    pending_.append(buf, static_cast<size_t>(n));
    forwardCompleteLines();
  } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    close();  // EOF: every process holding the write end is gone
  }
}

void LineForwarder::forwardCompleteLines() {
  std::string out;
  size_t start = 0;
  for (size_t nl; (nl = pending_.find('\n', start)) != std::string::npos; start = nl + 1) {
    out += prefix_;
    out.append(pending_, start, nl + 1 - start);
  }
  pending_.erase(0, start);
  if (pending_.size() >= kMaxPendingLine) {
    out += prefix_ + pending_ + "\n";
    pending_.clear();
  }
  if (!out.empty()) writeAll(dst_, out);
}

void LineForwarder::close() {
  if (src_ < 0) return;
  if (!pending_.empty()) {
    writeAll(dst_, prefix_ + pending_ + "\n");
    pending_.clear();
  }
  ::close(src_);
  src_ = -1;
}

}  // namespace ftrun
