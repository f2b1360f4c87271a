#include "transports/ucx/ucx_status.h"

#include <string>

namespace ftccl {

Status fromUcs(ucs_status_t status, const char* what) {
  if (status == UCS_OK) return Status::ok();
  std::string message = std::string(what) + ": UCX " + ucs_status_string(status);
  switch (status) {
    case UCS_ERR_CONNECTION_RESET:
    case UCS_ERR_ENDPOINT_TIMEOUT:
    case UCS_ERR_UNREACHABLE:
    case UCS_ERR_REJECTED:
    case UCS_ERR_CANCELED:
      return remoteError(message);
    case UCS_ERR_TIMED_OUT:
      return timeoutError(message);
    case UCS_ERR_INVALID_PARAM:
    case UCS_ERR_MESSAGE_TRUNCATED:
      return internalError(message);
    default:
      return systemError(message);
  }
}

}  // namespace ftccl
