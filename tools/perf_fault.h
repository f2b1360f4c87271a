// Fault injection for the perf tools: `--fault kill:RANK:ITER` (or stop, drop) makes
// rank RANK kill, stop or cut itself off at its ITER-th operation (warmup included), and each
// survivor prints how long after the fault its own operation returned an error.
//
// The victim writes its clock (steady, shared by the processes of one host) and pid to
// a stamp file named after the parent process (ftccl_run or mpirun's daemon), so the
// survivors measure detection latency without any communication. A survivor also
// ends a stopped victim (nobody else would). Single host only. Without --spares a
// survivor exits once it has seen the fault; with it, it goes on (perf_recovery.h).
#pragma once

#include <string>

#include "ftccl.h"

namespace ftperf {

struct FaultPlan {
  std::string kind;  // "kill", "stop", "drop"; empty: no fault
  int rank = -1;
  long iter = -1;
  bool enabled() const { return !kind.empty(); }
};

// "kill:2:100" -> plan; false on garbage.
bool parseFaultPlan(const std::string& text, FaultPlan* plan);
// Before the library starts: a drop needs the library's fault hook armed.
void prepareFaultPlan(const FaultPlan& plan);
// Before every timed operation; injects the fault on the victim when due.
void maybeInjectFault(const FaultPlan& plan, int rank, long* counter);
// After a failed call: true when it is the planned fault being detected; prints the
// survivor's detection line.
bool reportDetectedFault(const FaultPlan& plan, int rank, ftcclResult_t result, const char* error);

// The pieces of reportDetectedFault, for survivors that go on after a rebuild
// (--spares): they keep the stamp until the end and never sleep.
double faultClockMs();  // the stamp's clock (steady)
// The victim's stamp: when the fault was injected and the victim's pid; false if none.
bool readFaultStamp(double* injectedMs, int* victimPid);
// Prints the detection line; returns the ms since injection, -1 when unknown.
double printFaultDetection(const FaultPlan& plan, int rank, const char* error, int* victimPid);
// A stopped victim never ends by itself: kill it (pid from the stamp; no-op for others).
void endStoppedVictim(const FaultPlan& plan, int victimPid);
void removeFaultStamp();

}  // namespace ftperf
