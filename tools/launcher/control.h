// The ranks' way to ask ftccl_run for a fault, and ftccl_run's record of the faults it
// injects.
//
// A program that wants to fail at a chosen point of its own run (all_reduce_perf
// --fault kill:R:ITER) asks the launcher, which then signals it from outside, as a
// production fault would strike: the rank is a victim the launcher knows of, so its death
// does not count in ftccl_run's exit status. Requests are lines "kill RANK" or "stop RANK"
// written to the pipe named by FTCCL_RUN_CONTROL_FD (one write each, shorter than
// PIPE_BUF, so lines of different ranks never mix).
//
// Each kill or stop the launcher injects is stamped, as "<steady ms> <pid>" (the
// CLOCK_MONOTONIC milliseconds every process of the host shares), into the file named by
// FTCCL_RUN_FAULT_STAMP: survivors measure detection and recovery from it.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "launcher/options.h"

namespace ftrun {

struct FaultRequest {
  FaultKind kind;
  int rank;
};

class ControlChannel {
 public:
  ControlChannel() = default;
  ~ControlChannel();
  ControlChannel(const ControlChannel&) = delete;
  ControlChannel& operator=(const ControlChannel&) = delete;

  // The pipe (its write end inherited by the ranks) and the stamp file's name.
  bool open(std::string* error);
  int readFd() const { return read_; }
  // FTCCL_RUN_CONTROL_FD=... and FTCCL_RUN_FAULT_STAMP=... for the ranks.
  std::vector<std::string> environment() const;

  // Whole, valid requests read so far; malformed lines are reported and dropped.
  std::vector<FaultRequest> readRequests(int nranks);
  void stamp(pid_t victim) const;
  void removeStamp() const;

 private:
  int read_ = -1;
  int write_ = -1;
  std::string stampPath_;
  std::string pending_;
};

}  // namespace ftrun
