// Logging through spdlog, filtered by FTCCL_DEBUG (level) and FTCCL_DEBUG_SUBSYS.
//
//   FTCCL_LOG(Info, Net, "rank {} uses {}", rank, lanes);
//
// Lines carry host, pid and subsystem so that logs of many ranks can be merged.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

#include "util/status.h"

namespace ftccl {

enum class LogLevel { Trace = 0, Debug, Info, Warn, Error, Off };

enum class Subsys : unsigned {
  Init = 1u << 0,
  Bootstrap = 1u << 1,
  Net = 1u << 2,
  Coll = 1u << 3,
  Health = 1u << 4,
  Recovery = 1u << 5,
  Tuning = 1u << 6,
  Api = 1u << 7,
  All = ~0u
};

const char* subsysName(Subsys s);

// Reads FTCCL_DEBUG, FTCCL_DEBUG_SUBSYS and FTCCL_DEBUG_FILE once. An invalid value
// is reported on stderr and in the returned Status (init fails with it).
Status initLogging();
bool logEnabled(LogLevel level, Subsys subsys);
spdlog::logger& logger();

}  // namespace ftccl

#define FTCCL_LOG(severity, subsys, ...)                                                         \
  do {                                                                                           \
    if (::ftccl::logEnabled(::ftccl::LogLevel::severity, ::ftccl::Subsys::subsys)) {             \
      ::ftccl::logger().log(static_cast<spdlog::level::level_enum>(::ftccl::LogLevel::severity), \
                            "[" #subsys "] " __VA_ARGS__);                                       \
    }                                                                                            \
  } while (0)
