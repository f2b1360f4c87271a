// ftccl_run: starts the ranks of one ftccl job on this host, like a small mpirun or
// torchrun, and injects faults into them on a schedule for the fault-tolerance tests.
//
//   ftccl_run -n N [--kill R@SEC]... [--stop R@SEC]... [--drop R@SEC]... [--cont R@SEC]...
//             [--timeout SEC] [--addr ADDR] [--quiet] -- PROGRAM [ARGS...]
//
// The pieces live in tools/launcher/: options (the command line), process (environment,
// starting a rank, killing process groups), output (the "[rank] " line forwarding) and
// job (the poll loop that ties them together). It does not link libftccl: the ranks find
// each other through FTCCL_COMM_ID and FTCCL_COMM_SECRET alone.
#include <cstdio>
#include <exception>
#include <string>

#include "launcher/job.h"
#include "launcher/options.h"

int main(int argc, char** argv) {
  try {
    ftrun::Options opts;
    std::string error;
    switch (ftrun::parseOptions(argc, argv, &opts, &error)) {
      case ftrun::ParseOutcome::Help:
        ftrun::printUsage(stdout);
        return 0;
      case ftrun::ParseOutcome::BadUsage:
        std::fprintf(stderr, "ftccl_run: %s\n\n", error.c_str());
        ftrun::printUsage(stderr);
        return 2;
      case ftrun::ParseOutcome::Run:
        break;
    }
    return ftrun::runJob(opts);
  } catch (const std::exception& e) {
    // Only before any rank starts: runJob() catches its own errors and cleans up.
    std::fprintf(stderr, "ftccl_run: error: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "ftccl_run: error: unknown internal error\n");
  }
  return 125;
}
