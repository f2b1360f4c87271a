// Parsing of ftccl_run's command line. Strict on purpose: a fault test that silently
// ran without its fault (a typo in "1@1.5") would pass for the wrong reason.
#include "launcher/options.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <csignal>
#include <cstdlib>

namespace ftrun {
namespace {

// Longer than any job should run; keeps every later conversion to milliseconds in range.
constexpr double kMaxSeconds = 1e7;

bool isDigits(const std::string& text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Plain decimal seconds only ("2", "1.5", ".25"): no sign, exponent, hex, inf or nan.
bool parseSeconds(const std::string& text, double* out) {
  int dots = 0;
  int digits = 0;
  for (char c : text) {
    if (c == '.') {
      ++dots;
    } else if (c >= '0' && c <= '9') {
      ++digits;
    } else {
      return false;
    }
  }
  if (digits == 0 || dots > 1) return false;
  double value = std::strtod(text.c_str(), nullptr);
  if (!(value >= 0) || value > kMaxSeconds) return false;
  *out = value;
  return true;
}

bool parseCount(const std::string& text, int maxValue, int* out) {
  if (!isDigits(text) || text.size() > 9) return false;
  long value = std::strtol(text.c_str(), nullptr, 10);
  if (value > maxValue) return false;
  *out = static_cast<int>(value);
  return true;
}

// "R@SEC"; the rank is checked against -n later, since -n may come after the fault.
bool parseFault(const std::string& option, FaultKind kind, const std::string& spec, Fault* out,
                std::string* error) {
  size_t at = spec.find('@');
  int rank = 0;
  double seconds = 0;
  if (at == std::string::npos || !parseCount(spec.substr(0, at), kMaxRanks - 1, &rank) ||
      !parseSeconds(spec.substr(at + 1), &seconds)) {
    *error = option + " expects RANK@SECONDS (e.g. 1@2.5), got '" + spec + "'";
    return false;
  }
  *out = Fault{kind, rank, seconds};
  return true;
}

// Accepts "::1" and "[::1]" alike; the brackets are added back in FTCCL_COMM_ID.
bool parseAddress(const std::string& text, std::string* out) {
  std::string addr = text;
  if (addr.size() > 2 && addr.front() == '[' && addr.back() == ']') {
    addr = addr.substr(1, addr.size() - 2);
  }
  in6_addr buf;
  if (inet_pton(AF_INET, addr.c_str(), &buf) != 1 && inet_pton(AF_INET6, addr.c_str(), &buf) != 1) {
    return false;
  }
  *out = addr;
  return true;
}

// Applies one option that takes a value. Returns false (with *error) on a bad value.
bool applyValueOption(const std::string& name, const std::string& value, Options* opts, bool* haveN,
                      std::string* error) {
  if (name == "-n") {
    if (!parseCount(value, kMaxRanks, &opts->nranks) || opts->nranks < 1) {
      *error = "-n expects a rank count from 1 to " + std::to_string(kMaxRanks) + ", got '" +
               value + "'";
      return false;
    }
    *haveN = true;
    return true;
  }
  if (name == "--timeout") {
    if (!parseSeconds(value, &opts->timeoutSeconds) || opts->timeoutSeconds <= 0) {
      *error = "--timeout expects seconds > 0, got '" + value + "'";
      return false;
    }
    return true;
  }
  if (name == "--addr") {
    if (!parseAddress(value, &opts->addr)) {
      *error = "--addr expects a numeric IPv4 or IPv6 address, got '" + value + "'";
      return false;
    }
    return true;
  }
  FaultKind kind = name == "--kill"   ? FaultKind::Kill
                   : name == "--stop" ? FaultKind::Stop
                   : name == "--cont" ? FaultKind::Resume
                                      : FaultKind::Drop;
  Fault fault;
  if (!parseFault(name, kind, value, &fault, error)) return false;
  opts->faults.push_back(fault);
  return true;
}

bool takesValue(const std::string& name) {
  return name == "-n" || name == "--timeout" || name == "--addr" || name == "--kill" ||
         name == "--stop" || name == "--drop" || name == "--cont";
}

// Checks that need the whole command line.
bool validate(const Options& opts, bool haveN, std::string* error) {
  if (!haveN) {
    *error = "missing -n N (the number of ranks)";
    return false;
  }
  for (const Fault& fault : opts.faults) {
    if (fault.rank >= opts.nranks) {
      *error = std::string("--") + faultName(fault.kind) + ": rank " + std::to_string(fault.rank) +
               " is out of range (ranks are 0.." + std::to_string(opts.nranks - 1) + ")";
      return false;
    }
  }
  if (opts.command.empty()) {
    *error = "no PROGRAM to run (put it after --)";
    return false;
  }
  return true;
}

}  // namespace

const char* faultName(FaultKind kind) {
  switch (kind) {
    case FaultKind::Kill:
      return "kill";
    case FaultKind::Stop:
      return "stop";
    case FaultKind::Drop:
      return "drop";
    case FaultKind::Resume:
      return "cont";
  }
  return "?";
}

int faultSignal(FaultKind kind) {
  switch (kind) {
    case FaultKind::Kill:
      return SIGKILL;
    case FaultKind::Stop:
      return SIGSTOP;
    case FaultKind::Drop:
      return SIGUSR2;
    case FaultKind::Resume:
      return SIGCONT;
  }
  return 0;
}

bool Options::hasDrop() const {
  for (const Fault& fault : faults) {
    if (fault.kind == FaultKind::Drop) return true;
  }
  return false;
}

ParseOutcome parseOptions(int argc, char** argv, Options* opts, std::string* error) {
  bool haveN = false;
  int i = 1;
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') break;  // PROGRAM starts here

    // "--name=value" and "-n4" carry their value in the same word.
    std::string name = arg;
    std::string value;
    bool inlineValue = false;
    size_t eq = arg.find('=');
    if (arg.compare(0, 2, "--") == 0 && eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      inlineValue = true;
    } else if (arg.compare(0, 2, "-n") == 0 && arg.size() > 2) {
      name = "-n";
      value = arg.substr(2);
      inlineValue = true;
    }

    if (!inlineValue && (name == "-h" || name == "--help")) return ParseOutcome::Help;
    if (!inlineValue && (name == "-q" || name == "--quiet")) {
      opts->quiet = true;
      continue;
    }
    if (!takesValue(name)) {
      *error = "unknown option '" + arg + "'";
      return ParseOutcome::BadUsage;
    }
    if (!inlineValue) {
      if (i + 1 >= argc) {
        *error = name + " needs a value";
        return ParseOutcome::BadUsage;
      }
      value = argv[++i];
    }
    if (!applyValueOption(name, value, opts, &haveN, error)) return ParseOutcome::BadUsage;
  }
  opts->command.assign(argv + i, argv + argc);
  return validate(*opts, haveN, error) ? ParseOutcome::Run : ParseOutcome::BadUsage;
}

void printUsage(std::FILE* out) {
  std::fprintf(
      out,
      "usage: ftccl_run -n N [options] [--] PROGRAM [ARGS...]\n"
      "\n"
      "Starts N copies of PROGRAM on this host as the ranks of one ftccl job and forwards\n"
      "their stdout and stderr line by line, each line prefixed with \"[rank] \".\n"
      "\n"
      "options:\n"
      "  -n N             number of ranks (1..%d)\n"
      "  --kill R@SEC     SIGKILL rank R's process group SEC seconds after the start\n"
      "  --stop R@SEC     SIGSTOP rank R's process group (it stays stopped)\n"
      "  --cont R@SEC     SIGCONT rank R's process group (resumes a stopped rank)\n"
      "  --drop R@SEC     SIGUSR2 to rank R's process: the library then silently drops all\n"
      "                   its traffic (any --drop sets FTCCL_FAULT_INJECTION=1 on every rank)\n"
      "  --timeout SEC    kill the whole job if ranks still run after SEC seconds\n"
      "  --addr ADDR      address of the bootstrap root in FTCCL_COMM_ID (default 127.0.0.1)\n"
      "  -q, --quiet      no fault lines and no per-rank summary on stderr\n"
      "  -h, --help       this text\n"
      "SEC may be fractional (1.5). Faults may repeat and coincide (two kills at once).\n"
      "\n"
      "Every rank gets FTCCL_COMM_ID=ADDR:PORT (a free port), FTCCL_COMM_SECRET (32 random\n"
      "hex digits), FTCCL_RANK, FTCCL_NRANKS, FTCCL_LOCAL_RANK, FTCCL_LOCAL_SIZE and\n"
      "FTCCL_LAUNCHER=1. Its stdin is /dev/null; it runs in its own process group, and no\n"
      "process of the job outlives ftccl_run.\n"
      "\n"
      "exit status: the worst status (exit code, or 128+signal) of the ranks not faulted on\n"
      "purpose, 0 if there are none; 124 after --timeout; 128+signal when ftccl_run gets\n"
      "SIGINT, SIGTERM or SIGHUP; 2 on bad usage; 125 when ftccl_run itself fails.\n"
      "A rank whose PROGRAM cannot be executed exits 127.\n",
      kMaxRanks);
}

}  // namespace ftrun
