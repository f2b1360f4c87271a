#include "util/fault_injection.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>

#include "util/env.h"
#include "util/log.h"

namespace ftccl {
namespace {

std::atomic<bool> gDropAll{false};

void onDropSignal(int) { gDropAll.store(true); }

}  // namespace

void installFaultHooks() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (envString("FTCCL_FAULT_INJECTION") != "1") return;
    struct sigaction action;
    std::memset(&action, 0, sizeof(action));
    action.sa_handler = onDropSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &action, nullptr);
    FTCCL_LOG(Info, Health, "fault injection armed: SIGUSR2 drops all traffic of pid {}", getpid());
  });
}

bool faultDropAll() { return gDropAll.load(std::memory_order_relaxed); }

}  // namespace ftccl
