#include "util/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <sstream>

#include "util/env.h"

namespace ftccl {
namespace {

struct LogState {
  std::once_flag once;
  Status initStatus;
  std::atomic<int> level{static_cast<int>(LogLevel::Warn)};
  std::atomic<unsigned> mask{static_cast<unsigned>(Subsys::All)};
  std::shared_ptr<spdlog::logger> logger;
};

LogState& state() {
  static LogState* s = new LogState();  // never destroyed: logging works during exit
  return *s;
}

struct NamedSubsys {
  const char* name;
  Subsys value;
};
constexpr NamedSubsys kSubsystems[] = {
    {"INIT", Subsys::Init},     {"BOOTSTRAP", Subsys::Bootstrap},
    {"NET", Subsys::Net},       {"COLL", Subsys::Coll},
    {"HEALTH", Subsys::Health}, {"RECOVERY", Subsys::Recovery},
    {"TUNING", Subsys::Tuning}, {"API", Subsys::Api},
    {"ALL", Subsys::All},
};

Status parseLevel(const std::string& text, LogLevel* out) {
  static const std::pair<const char*, LogLevel> kLevels[] = {
      {"trace", LogLevel::Trace}, {"debug", LogLevel::Debug}, {"info", LogLevel::Info},
      {"warn", LogLevel::Warn},   {"error", LogLevel::Error}, {"off", LogLevel::Off},
      {"version", LogLevel::Warn}};
  for (const auto& [name, level] : kLevels) {
    if (strcasecmp(text.c_str(), name) == 0) {
      *out = level;
      return Status::ok();
    }
  }
  return invalidArgument("FTCCL_DEBUG=" + text +
                         " is not one of error, warn, info, debug, trace, off");
}

// "INIT,NET" enables those; "^HEALTH" enables all but those (NCCL's syntax).
Status parseSubsystems(const std::string& text, unsigned* out) {
  bool negate = !text.empty() && text[0] == '^';
  unsigned mask = 0;
  std::stringstream in(negate ? text.substr(1) : text);
  std::string item;
  while (std::getline(in, item, ',')) {
    bool found = false;
    for (const auto& s : kSubsystems) {
      if (strcasecmp(item.c_str(), s.name) == 0) {
        mask |= static_cast<unsigned>(s.value);
        found = true;
      }
    }
    if (!found) {
      return invalidArgument("FTCCL_DEBUG_SUBSYS: unknown subsystem '" + item +
                             "' (INIT, BOOTSTRAP, NET, COLL, HEALTH, RECOVERY, TUNING, API, ALL)");
    }
  }
  *out = negate ? ~mask : mask;
  return Status::ok();
}

void initOnce() {
  LogState& s = state();
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  std::string file = envString("FTCCL_DEBUG_FILE");
  try {
    if (!file.empty()) {
      s.logger = spdlog::basic_logger_mt("ftccl", expandPathPattern(file));
    } else {
      s.logger = spdlog::stderr_logger_mt("ftccl");
    }
  } catch (const std::exception& e) {
    s.logger = spdlog::stderr_logger_mt("ftccl");
    s.initStatus = systemError(std::string("FTCCL_DEBUG_FILE=") + file + ": " + e.what());
  }
  s.logger->set_pattern(std::string("%Y-%m-%d %H:%M:%S.%f ") + host + ":%P ftccl %^%l%$ %v");
  s.logger->set_level(spdlog::level::trace);
  s.logger->flush_on(spdlog::level::trace);

  LogLevel level = LogLevel::Warn;
  std::string levelText = envString("FTCCL_DEBUG");
  if (!levelText.empty()) {
    Status st = parseLevel(levelText, &level);
    if (!st.isOk() && s.initStatus.isOk()) s.initStatus = st;
  }
  s.level = static_cast<int>(level);
  std::string subsysText = envString("FTCCL_DEBUG_SUBSYS");
  if (!subsysText.empty()) {
    unsigned mask = 0;
    Status st = parseSubsystems(subsysText, &mask);
    if (st.isOk())
      s.mask = mask;
    else if (s.initStatus.isOk())
      s.initStatus = st;
  }
  if (!s.initStatus.isOk()) s.logger->error("[Init] {}", s.initStatus.message());
}

}  // namespace

const char* subsysName(Subsys s) {
  for (const auto& n : kSubsystems) {
    if (n.value == s) return n.name;
  }
  return "?";
}

Status initLogging() {
  std::call_once(state().once, initOnce);
  return state().initStatus;
}

bool logEnabled(LogLevel level, Subsys subsys) {
  LogState& s = state();
  if (!s.logger) (void)initLogging();
  return static_cast<int>(level) >= s.level.load(std::memory_order_relaxed) &&
         level != LogLevel::Off &&
         (s.mask.load(std::memory_order_relaxed) & static_cast<unsigned>(subsys)) != 0;
}

spdlog::logger& logger() {
  (void)initLogging();
  return *state().logger;
}

}  // namespace ftccl
