// The command line of ftccl_run: how many ranks, which program, which faults to inject
// and when, and when to give up.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace ftrun {

// Two file descriptors per rank must fit the open-file limit; see raiseFileLimit().
constexpr int kMaxRanks = 1024;

enum class FaultKind { Kill, Stop, Drop, Resume };

const char* faultName(FaultKind kind);  // "kill", "stop", "drop", "cont"
int faultSignal(FaultKind kind);        // SIGKILL, SIGSTOP, SIGUSR2, SIGCONT

struct Fault {
  FaultKind kind;
  int rank;
  double seconds;  // counted from the moment every rank has been started
};

struct Options {
  int nranks = 0;
  std::vector<Fault> faults;  // command-line order
  double timeoutSeconds = 0;  // 0: no timeout
  std::string addr = "127.0.0.1";
  bool quiet = false;
  std::vector<std::string> command;  // PROGRAM ARGS...

  bool hasDrop() const;
};

enum class ParseOutcome { Run, Help, BadUsage };

// Fills *opts. On BadUsage, *error says what is wrong in one line.
ParseOutcome parseOptions(int argc, char** argv, Options* opts, std::string* error);

void printUsage(std::FILE* out);

}  // namespace ftrun
