#include "perf_fault.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace ftperf {
namespace {

double nowMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// ftccl_run names its record of the faults it injects; under another launcher the victim
// writes one itself, named after the parent process.
std::string stampPath() {
  const char* launcher = std::getenv("FTCCL_RUN_FAULT_STAMP");
  if (launcher != nullptr && *launcher != '\0') return launcher;
  return "/tmp/ftccl-fault-" + std::to_string(getppid()) + ".stamp";
}

// Under ftccl_run the fault comes from outside: ask the launcher to signal this rank, then
// wait for it. False if there is no launcher to ask (or it did not act within 10 s).
bool askLauncher(const FaultPlan& plan, int rank) {
  const char* fd = std::getenv("FTCCL_RUN_CONTROL_FD");
  const char* launcherRank = std::getenv("FTCCL_RANK");
  if (fd == nullptr || launcherRank == nullptr || plan.kind == "drop") return false;
  std::string request = plan.kind + " " + launcherRank + "\n";
  if (::write(std::atoi(fd), request.data(), request.size()) !=
      static_cast<ssize_t>(request.size())) {
    return false;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::fprintf(stderr, "[rank %d] # ftccl_run did not inject the %s within 10 s\n", rank,
               plan.kind.c_str());
  return false;
}

}  // namespace

bool parseFaultPlan(const std::string& text, FaultPlan* plan) {
  size_t a = text.find(':'), b = text.rfind(':');
  if (a == std::string::npos || a == b) return false;
  std::string kind = text.substr(0, a);
  if (kind != "kill" && kind != "stop" && kind != "drop") return false;
  char* end = nullptr;
  long rank = std::strtol(text.c_str() + a + 1, &end, 10);
  if (end != text.c_str() + b || rank < 0) return false;
  long iter = std::strtol(text.c_str() + b + 1, &end, 10);
  if (*end != '\0' || iter < 1) return false;
  plan->kind = kind;
  plan->rank = static_cast<int>(rank);
  plan->iter = iter;
  return true;
}

void prepareFaultPlan(const FaultPlan& plan) {
  if (plan.kind == "drop") setenv("FTCCL_FAULT_INJECTION", "1", 1);
}

void maybeInjectFault(const FaultPlan& plan, int rank, long* counter) {
  if (!plan.enabled() || rank != plan.rank || ++*counter != plan.iter) return;
  std::fprintf(stderr, "[rank %d] # fault: %s of rank %d at op %ld\n", rank, plan.kind.c_str(),
               rank, plan.iter);
  std::fflush(stderr);
  if (askLauncher(plan, rank)) return;
  if (FILE* f = std::fopen(stampPath().c_str(), "w")) {
    std::fprintf(f, "%.3f %d\n", nowMs(), static_cast<int>(getpid()));
    std::fclose(f);
  }
  if (plan.kind == "kill") raise(SIGKILL);
  if (plan.kind == "stop") raise(SIGSTOP);
  if (plan.kind == "drop") raise(SIGUSR2);
}

double faultClockMs() { return nowMs(); }

bool readFaultStamp(double* injectedMs, int* victimPid) {
  FILE* f = std::fopen(stampPath().c_str(), "r");
  if (f == nullptr) return false;
  const bool ok = std::fscanf(f, "%lf %d", injectedMs, victimPid) == 2;
  std::fclose(f);
  return ok;
}

double printFaultDetection(const FaultPlan& plan, int rank, const char* error, int* victimPid) {
  double detected = nowMs(), injected = -1;
  *victimPid = -1;
  if (!readFaultStamp(&injected, victimPid)) injected = -1;
  const double sinceMs = injected > 0 ? detected - injected : -1.0;
  std::printf("[rank %d] # fault detected: %s of rank %d, %.2f ms after injection: %s\n", rank,
              plan.kind.c_str(), plan.rank, sinceMs, error);
  std::fflush(stdout);
  return sinceMs;
}

void endStoppedVictim(const FaultPlan& plan, int victimPid) {
  if (plan.kind == "stop" && victimPid > 0) kill(victimPid, SIGKILL);
}

void removeFaultStamp() { std::remove(stampPath().c_str()); }

bool reportDetectedFault(const FaultPlan& plan, int rank, ftcclResult_t result, const char* error) {
  if (!plan.enabled() || rank == plan.rank) return false;
  if (result != ftcclRemoteError && result != ftcclTimeout) return false;
  int victimPid = -1;
  printFaultDetection(plan, rank, error, &victimPid);
  int lowestSurvivor = plan.rank == 0 ? 1 : 0;
  if (rank == lowestSurvivor) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let the others read it
    endStoppedVictim(plan, victimPid);                            // nobody else will
    removeFaultStamp();
  }
  return true;
}

}  // namespace ftperf
