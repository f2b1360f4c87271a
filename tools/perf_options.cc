// The perf tools' command line; see perf_options.h.
#include "perf_options.h"

#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <iterator>

#include "perf_types.h"

namespace ftperf {
namespace {

const ftcclDataType_t kAllTypes[] = {ftcclInt8,    ftcclUint8,   ftcclInt32,   ftcclUint32,
                                     ftcclInt64,   ftcclUint64,  ftcclFloat16, ftcclFloat32,
                                     ftcclFloat64, ftcclBfloat16};
const ftcclRedOp_t kAllOps[] = {ftcclSum, ftcclProd, ftcclMax, ftcclMin, ftcclAvg};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

bool parseTypes(const std::string& text, std::vector<ftcclDataType_t>* out) {
  const std::string t = lower(text);
  if (t == "all") {
    out->assign(std::begin(kAllTypes), std::end(kAllTypes));
    return true;
  }
  struct Alias {
    const char* name;
    ftcclDataType_t type;
  };
  static const Alias kAliases[] = {
      {"char", ftcclInt8},       {"int", ftcclInt32},       {"fp16", ftcclFloat16},
      {"float16", ftcclFloat16}, {"fp32", ftcclFloat32},    {"float32", ftcclFloat32},
      {"fp64", ftcclFloat64},    {"float64", ftcclFloat64}, {"bf16", ftcclBfloat16}};
  for (ftcclDataType_t type : kAllTypes) {
    if (t == typeName(type)) {
      out->assign(1, type);
      return true;
    }
  }
  for (const Alias& a : kAliases) {
    if (t == a.name) {
      out->assign(1, a.type);
      return true;
    }
  }
  return false;
}

bool parseOps(const std::string& text, std::vector<ftcclRedOp_t>* out) {
  const std::string t = lower(text);
  if (t == "all") {
    out->assign(std::begin(kAllOps), std::end(kAllOps));
    return true;
  }
  for (ftcclRedOp_t op : kAllOps) {
    if (t == opName(op)) {
      out->assign(1, op);
      return true;
    }
  }
  return false;
}

bool parseSize(const char* text, size_t* bytes) {
  if (text == nullptr || *text == '\0') return false;
  errno = 0;
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  if (end == text || errno != 0 || !std::isfinite(value) || value < 0) return false;
  double units = 1;
  switch (*end) {
    case 'K':
    case 'k':
      units = 1024.0;
      ++end;
      break;
    case 'M':
    case 'm':
      units = 1024.0 * 1024;
      ++end;
      break;
    case 'G':
    case 'g':
      units = 1024.0 * 1024 * 1024;
      ++end;
      break;
    default:
      break;
  }
  if (units > 1 && (*end == 'B' || *end == 'b')) ++end;  // "64MB"
  if (*end != '\0') return false;
  const double total = value * units;
  if (total >= 18446744073709551615.0) return false;
  *bytes = static_cast<size_t>(total);
  return true;
}

bool parseInt(const char* text, long lo, long hi, long* out) {
  if (text == nullptr || *text == '\0') return false;
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(text, &end, 0);
  if (*end != '\0' || errno != 0 || v < lo || v > hi) return false;
  *out = v;
  return true;
}

namespace {

struct OptSpec {
  char shortName;
  const char* longName;
};
// Long-only options: keys that are no letter, so no short option spells them.
constexpr char kOptSpares = 1;
constexpr char kOptRecover = 2;
constexpr char kOptSlow = 3;
const OptSpec kOptSpecs[] = {
    {'b', "minbytes"}, {'e', "maxbytes"},      {'i', "stepbytes"},       {'f', "stepfactor"},
    {'n', "iters"},    {'w', "warmup_iters"},  {'c', "check"},           {'o', "op"},
    {'d', "datatype"}, {'r', "root"},          {'z', "blocking"},        {'J', "json"},
    {'F', "fault"},    {kOptSpares, "spares"}, {kOptRecover, "recover"}, {kOptSlow, "slow"},
    {'h', "help"}};

}  // namespace

ParseStatus parseOptions(int argc, char* const* argv, Options* opts, std::string* error) {
  auto fail = [&](const std::string& why) {
    *error = why;
    return ParseStatus::kError;
  };
  for (int a = 1; a < argc; ++a) {
    const std::string arg = argv[a] ? argv[a] : "";
    char key = 0;
    std::string value;
    bool hasValue = false;
    if (arg.size() > 2 && arg[0] == '-' && arg[1] == '-') {  // --name value | --name=value
      std::string name = arg.substr(2);
      const size_t eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        hasValue = true;
      }
      for (const OptSpec& s : kOptSpecs) {
        if (name == s.longName) key = s.shortName;
      }
      if (key == 0) return fail("unknown option '" + arg + "'");
    } else if (arg.size() >= 2 && arg[0] == '-') {  // -b value | -bvalue
      key = arg[1];
      bool known = false;
      for (const OptSpec& s : kOptSpecs) {
        known = known || (key == s.shortName && std::isalpha(static_cast<unsigned char>(key)));
      }
      if (!known) return fail("unknown option '" + arg + "'");
      if (arg.size() > 2) {
        value = arg.substr(2);
        hasValue = true;
      }
    } else {
      return fail("unexpected argument '" + arg + "'");
    }
    if (key == 'h') return ParseStatus::kHelp;
    if (key == kOptRecover) {  // a flag: no value
      if (hasValue) return fail("--recover takes no value");
      opts->recovery.enabled = true;
      continue;
    }
    if (!hasValue) {
      if (a + 1 >= argc) return fail(std::string("option -") + key + " needs a value");
      value = argv[++a];
    }
    const char* v = value.c_str();
    long n = 0;
    switch (key) {
      case 'b':
        if (!parseSize(v, &opts->minBytes))
          return fail("invalid size for -b (minbytes): '" + value + "'");
        break;
      case 'e':
        if (!parseSize(v, &opts->maxBytes))
          return fail("invalid size for -e (maxbytes): '" + value + "'");
        break;
      case 'i':
        if (!parseSize(v, &opts->stepBytes))
          return fail("invalid size for -i (stepbytes): '" + value + "'");
        break;
      case 'f':
        if (!parseInt(v, 1, LONG_MAX, &n))
          return fail("invalid -f (stepfactor, >= 1): '" + value + "'");
        opts->stepFactor = static_cast<size_t>(n);
        break;
      case 'n':
        if (!parseInt(v, 1, INT_MAX, &n)) return fail("invalid -n (iters, >= 1): '" + value + "'");
        opts->iters = static_cast<int>(n);
        break;
      case 'w':
        if (!parseInt(v, 0, INT_MAX, &n))
          return fail("invalid -w (warmup iters, >= 0): '" + value + "'");
        opts->warmupIters = static_cast<int>(n);
        break;
      case 'c':
        if (!parseInt(v, 0, INT_MAX, &n)) return fail("invalid -c (check, >= 0): '" + value + "'");
        opts->check = static_cast<int>(n);
        break;
      case 'o':
        if (!parseOps(value, &opts->ops))
          return fail("invalid -o (op): '" + value + "' (sum/prod/max/min/avg/all)");
        break;
      case 'd':
        if (!parseTypes(value, &opts->types))
          return fail("invalid -d (datatype): '" + value +
                      "' (int8/uint8/int32/uint32/int64/uint64/half/float/double/bfloat16/all)");
        break;
      case 'r':
        if (lower(value) == "all") {
          opts->allRoots = true;
        } else if (parseInt(v, -1, INT_MAX, &n)) {
          opts->allRoots = (n == -1);  // nccl-tests: root -1 means every root
          opts->root = n == -1 ? 0 : static_cast<int>(n);
        } else {
          return fail("invalid -r (root): '" + value + "' (a rank, -1 or all)");
        }
        break;
      case 'z':
        if (!parseInt(v, 0, 1, &n)) return fail("invalid -z (blocking, 0/1): '" + value + "'");
        opts->blocking = (n == 1);
        break;
      case 'J':
        if (value.empty()) return fail("-J needs a file name");
        opts->jsonFile = value;
        break;
      case 'F':
        if (!parseFaultPlan(value, &opts->fault)) {
          return fail("invalid --fault: '" + value + "' (kill|stop|drop:RANK:ITER)");
        }
        break;
      case kOptSlow: {
        long rank = 0, ms = 0;
        size_t colon = value.find(':');
        if (colon == std::string::npos ||
            !parseInt(value.substr(0, colon).c_str(), 0, INT_MAX, &rank) ||
            !parseInt(value.substr(colon + 1).c_str(), 1, 600000, &ms)) {
          return fail("invalid --slow: '" + value + "' (RANK:MS)");
        }
        opts->slow.rank = static_cast<int>(rank);
        opts->slow.ms = static_cast<int>(ms);
        break;
      }
      case kOptSpares:
        if (!parseInt(v, 0, INT_MAX, &n)) return fail("invalid --spares (>= 0): '" + value + "'");
        opts->recovery.spares = static_cast<int>(n);
        break;
      default:
        return fail("unknown option '" + arg + "'");
    }
  }
  if (opts->minBytes > opts->maxBytes) {
    return fail("invalid sizes for 'minbytes' and 'maxbytes': " + std::to_string(opts->minBytes) +
                " > " + std::to_string(opts->maxBytes));
  }
  if (opts->stepFactor <= 1 && opts->stepBytes == 0 && opts->minBytes < opts->maxBytes) {
    return fail("-i (stepbytes) must be > 0 when -f (stepfactor) is 1");
  }
  if (opts->recovery.spares > 0) opts->recovery.enabled = true;
  if (opts->recovery.enabled && opts->fault.kind == "drop") {
    // The cut-off rank lives on and is expelled: no run to compare with the planned one.
    return fail("--fault drop cannot be combined with --spares / --recover (use kill or stop)");
  }
  return ParseStatus::kOk;
}

std::vector<size_t> sizeSteps(const Options& opts) {
  std::vector<size_t> sizes;
  size_t size = opts.minBytes;
  while (size <= opts.maxBytes) {
    sizes.push_back(size);
    size_t next;
    if (opts.stepFactor > 1) {
      if (size > opts.maxBytes / opts.stepFactor) break;  // next would pass max (or overflow)
      next = size * opts.stepFactor;
    } else {
      if (opts.stepBytes > opts.maxBytes - size) break;
      next = size + opts.stepBytes;
    }
    if (next <= size) break;  // no progress (size 0 with -f, or -i 0)
    size = next;
  }
  return sizes;
}

void printUsage(FILE* out, const char* prog) {
  std::fprintf(out,
               "USAGE: %s \n\t"
               "[-b,--minbytes <min size in bytes, K/M/G suffixes>] \n\t"
               "[-e,--maxbytes <max size in bytes>] \n\t"
               "[-i,--stepbytes <increment size>] \n\t"
               "[-f,--stepfactor <increment factor>] \n\t"
               "[-n,--iters <iteration count>] \n\t"
               "[-w,--warmup_iters <warmup iteration count>] \n\t"
               "[-c,--check <check iteration count, 0 disables>] \n\t"
               "[-o,--op <sum/prod/max/min/avg/all>] \n\t"
               "[-d,--datatype <int8/uint8/int32/uint32/int64/uint64/half/float/double/"
               "bfloat16/all>] \n\t"
               "[-r,--root <root/all>] \n\t"
               "[-z,--blocking <0/1> use the NULL stream: every call blocks] \n\t"
               "[-J,--json <file> write all results as JSON (rank 0)] \n\t"
               "[--fault kill|stop|drop:RANK:ITER inject a fault at that operation] \n\t"
               "[--slow RANK:MS rank RANK sleeps MS ms before each operation (a straggler)] \n\t"
               "[--spares <S> the last S processes are hot spares: after a failure the ranks "
               "rebuild onto them, redo the interrupted step and go on] \n\t"
               "[--recover go on after a failure, shrinking when no spare is left (alone or with "
               "--spares 0: shrink)] \n\t"
               "[-h,--help]\n"
               "Bootstrap: under mpirun, MPI broadcasts the ftccl unique id; with "
               "FTCCL_COMM_ID=host:port\n"
               "set, MPI is not used and the rank comes from FTCCL_RANK/FTCCL_NRANKS "
               "(else OMPI_COMM_WORLD_RANK/SIZE);\n"
               "otherwise a single rank runs alone.\n"
               "--spares/--recover need FTCCL_COMM_ID (ftccl_run -n RANKS+S): MPI does not "
               "survive a death. Each live\n"
               "process then prints PERF_VERDICT rank=P PASS|FAIL, and rank 0 (or the lowest "
               "survivor) a \"# Fault:\" summary.\n",
               prog);
}

}  // namespace ftperf
