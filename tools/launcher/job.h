// One run of ftccl_run: starts the ranks, forwards their output, injects the faults,
// watches the timeout and the launcher's own signals, and cleans up.
#pragma once

#include "launcher/options.h"

namespace ftrun {

// Returns ftccl_run's exit status. Whatever happens (a rank failing, the timeout, SIGINT,
// SIGTERM or SIGHUP, an internal error), no process of the job is left behind.
int runJob(const Options& opts);

}  // namespace ftrun
