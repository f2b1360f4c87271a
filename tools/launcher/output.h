// Output of ftccl_run: the ranks' streams forwarded line by line with a "[rank] " prefix,
// and ftccl_run's own messages.
#pragma once

#include <string>

namespace ftrun {

// Writes all of data to fd (our stdout or stderr), waiting while the reader is slow.
// Once a destination fails (EPIPE: the reader is gone), later output to it is dropped
// instead of stopping the job: the ranks must still be supervised and cleaned up.
void writeAll(int fd, const std::string& data);

// "ftccl_run: <message>\n" on stderr, as one write.
void logLine(const std::string& message);

// printf-style formatting into a std::string.
std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// One child stream (the read end of a pipe) forwarded to stdout or stderr. Only whole
// lines are written, one write per batch, so lines of different ranks never interleave.
class LineForwarder {
 public:
  // Takes ownership of srcFd and makes it non-blocking.
  LineForwarder(int srcFd, int dstFd, std::string prefix);
  ~LineForwarder();
  LineForwarder(const LineForwarder&) = delete;
  LineForwarder& operator=(const LineForwarder&) = delete;

  bool isOpen() const { return src_ >= 0; }
  int fd() const { return src_; }

  // Reads once (at most one buffer, so a chatty rank cannot starve the others) and
  // forwards the complete lines. At EOF it flushes the partial last line and closes.
  void readAvailable();

  // Stops forwarding: flushes the partial last line and closes the pipe.
  void close();

 private:
  void forwardCompleteLines();

  int src_;
  int dst_;
  std::string prefix_;
  std::string pending_;  // bytes after the last newline seen
};

}  // namespace ftrun
