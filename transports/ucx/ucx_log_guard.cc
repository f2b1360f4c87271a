#include "transports/ucx/ucx_log_guard.h"

#include <ucs/debug/log_def.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "util/log.h"

namespace ftccl {

namespace {

std::atomic<uint64_t> guardedFailures{0};

// The function in UCX 1.13 (uct/sm/scopy/cma/cma_ep.c) that reports a failed
// process_vm_readv/writev; its FATAL level means "no error callback", not "UCX broken".
constexpr const char* kCmaErrorFunction = "uct_cma_ep_tx_error";

ucs_log_func_rc_t guard(const char* /*file*/, unsigned /*line*/, const char* function,
                        ucs_log_level_t level, const ucs_log_component_config_t* /*config*/,
                        const char* format, va_list ap) {
  if (level != UCS_LOG_LEVEL_FATAL || function == nullptr ||
      std::strcmp(function, kCmaErrorFunction) != 0) {
    return UCS_LOG_FUNC_RC_CONTINUE;
  }
  guardedFailures.fetch_add(1, std::memory_order_relaxed);
  char message[512];
  va_list copy;
  va_copy(copy, ap);
  std::vsnprintf(message, sizeof(message), format, copy);
  va_end(copy);
  FTCCL_LOG(Debug, Net, "a shared-memory peer died mid-transfer; UCX: {} (transfer failed, "
            "endpoint closed)", message);
  return UCS_LOG_FUNC_RC_STOP;
}

}  // namespace

void installUcxLogGuard() {
  static std::once_flag once;
  std::call_once(once, [] { ucs_log_push_handler(guard); });
}

uint64_t ucxGuardedFailures() { return guardedFailures.load(std::memory_order_relaxed); }

}  // namespace ftccl
