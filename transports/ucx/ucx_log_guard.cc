#include "transports/ucx/ucx_log_guard.h"

#include <ucs/debug/log_def.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "util/log.h"

namespace ftccl {

namespace {

// What UCX 1.13 reports about a same-host peer that is gone, and ftccl handles: the
// function, its level, and a part of the message that says the peer is gone.
struct DeadPeerReport {
  const char* function;
  ucs_log_level_t level;
  const char* says;  // nullptr: any message of that function
};
constexpr DeadPeerReport kDeadPeerReports[] = {
    // A failed process_vm_readv/writev; FATAL means "no error callback", not "UCX broken".
    {"uct_cma_ep_tx_error", UCS_LOG_LEVEL_FATAL, nullptr},
    // A new endpoint to a process whose shared-memory segment went with it (a child
    // communicator forming while a member dies): the endpoint fails, health names it.
    {"uct_sysv_mem_attach_common", UCS_LOG_LEVEL_ERROR, "Invalid argument"},
    {"uct_sysv_mem_attach_common", UCS_LOG_LEVEL_ERROR, "Identifier removed"},
    {"uct_mm_ep_t_init", UCS_LOG_LEVEL_ERROR, "Shared memory error"},
};

ucs_log_func_rc_t guard(const char* /*file*/, unsigned /*line*/, const char* function,
                        ucs_log_level_t level, const ucs_log_component_config_t* /*config*/,
                        const char* format, va_list ap) {
  if (function == nullptr || level > UCS_LOG_LEVEL_ERROR) return UCS_LOG_FUNC_RC_CONTINUE;
  char message[512];
  va_list copy;
  va_copy(copy, ap);
  std::vsnprintf(message, sizeof(message), format, copy);
  va_end(copy);
  for (const DeadPeerReport& report : kDeadPeerReports) {
    if (level != report.level || std::strcmp(function, report.function) != 0) continue;
    if (report.says != nullptr && std::strstr(message, report.says) == nullptr) continue;
    FTCCL_LOG(Debug, Net,
              "a shared-memory peer is gone; UCX: {} (the transfer or endpoint "
              "fails; health names the peer)",
              message);
    return UCS_LOG_FUNC_RC_STOP;
  }
  return UCS_LOG_FUNC_RC_CONTINUE;
}

}  // namespace

void installUcxLogGuard() {
  static std::once_flag once;
  std::call_once(once, [] { ucs_log_push_handler(guard); });
}

}  // namespace ftccl
