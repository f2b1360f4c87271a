// The single translation from ucs_status_t to ftccl's Status.
#pragma once

#include <ucs/type/status.h>

#include "util/status.h"

namespace ftccl {

Status fromUcs(ucs_status_t status, const char* what);

}  // namespace ftccl
