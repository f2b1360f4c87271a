// The processes of a job: its environment, starting one rank, and the signals that end
// ranks and their descendants.
#pragma once

#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "launcher/options.h"

namespace ftrun {

// What every rank of the job shares.
struct JobIdentity {
  std::string commId;  // "ADDR:PORT" or "[V6ADDR]:PORT"
  std::string secret;  // 32 hex digits
};

// FTCCL_COMM_SECRET: 128 random bits from getrandom, as 32 hex digits.
bool makeSecret(std::string* hex, std::string* error);

// FTCCL_COMM_ID: addr and a port that was free a moment ago (bound with port 0, closed).
bool pickCommId(const std::string& addr, std::string* commId, std::string* error);

// Our environment, with the FTCCL_* variables of the job and of this rank set.
std::vector<std::string> rankEnvironment(const Options& opts, const JobIdentity& job, int rank);

// What a child must undo of the launcher's own settings before exec.
struct ChildSetup {
  sigset_t originalMask;  // the launcher blocks the signals it reads through a signalfd
  rlimit originalNofile;  // the launcher may raise its open-file limit for many ranks
  bool restoreNofile = false;
  pid_t launcherPid = 0;
};

struct StartedRank {
  pid_t pid = -1;     // also the id of its process group
  int stdoutFd = -1;  // read ends of its stdout and stderr pipes
  int stderrFd = -1;
};

// Forks and execs command (searched in PATH) as the leader of a new process group.
// An exec failure is reported on the rank's stderr and the rank exits 127.
bool startRank(const std::vector<std::string>& command, const std::vector<std::string>& env,
               const ChildSetup& setup, StartedRank* started, std::string* error);

// SIGCONT (so stopped members die at once too), then SIGKILL, to a whole process group.
void killGroup(pid_t pgid);

// Our direct children, including orphaned descendants re-parented to us (we are their
// subreaper). Read from /proc.
std::vector<pid_t> listOwnChildren();

// "SIGSEGV" for 11; "signal N" when the signal has no name.
std::string signalName(int sig);

}  // namespace ftrun
