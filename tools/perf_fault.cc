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

std::string stampPath() { return "/tmp/ftccl-fault-" + std::to_string(getppid()) + ".stamp"; }

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
  if (FILE* f = std::fopen(stampPath().c_str(), "w")) {
    std::fprintf(f, "%.3f %d\n", nowMs(), static_cast<int>(getpid()));
    std::fclose(f);
  }
  std::fprintf(stderr, "[rank %d] # fault: %s of rank %d at op %ld\n", rank,
               plan.kind.c_str(), rank, plan.iter);
  std::fflush(stderr);
  if (plan.kind == "kill") raise(SIGKILL);
  if (plan.kind == "stop") raise(SIGSTOP);
  if (plan.kind == "drop") raise(SIGUSR2);
}

bool reportDetectedFault(const FaultPlan& plan, int rank, ftcclResult_t result,
                         const char* error) {
  if (!plan.enabled() || rank == plan.rank) return false;
  if (result != ftcclRemoteError && result != ftcclTimeout) return false;
  double detected = nowMs(), injected = -1;
  int victimPid = -1;
  if (FILE* f = std::fopen(stampPath().c_str(), "r")) {
    if (std::fscanf(f, "%lf %d", &injected, &victimPid) != 2) injected = -1;
    std::fclose(f);
  }
  std::printf("[rank %d] # fault detected: %s of rank %d, %.2f ms after injection: %s\n", rank,
              plan.kind.c_str(), plan.rank, injected > 0 ? detected - injected : -1.0, error);
  std::fflush(stdout);
  int lowestSurvivor = plan.rank == 0 ? 1 : 0;
  if (rank == lowestSurvivor) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let the others read it
    if (plan.kind == "stop" && victimPid > 0) kill(victimPid, SIGKILL);  // nobody else will
    std::remove(stampPath().c_str());
  }
  return true;
}

}  // namespace ftperf
