// Shared code of the nccl-tests-style benchmarks; see perf_common.h.
#include "perf_common.h"

// The C API of MPI only: keep Open MPI / MPICH from pulling in their C++ bindings.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <memory>
#include <new>
#include <stdexcept>
#include <thread>

namespace ftperf {

// =================================================================================
// fp16 / bf16
// =================================================================================
uint16_t floatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) {  // NaN: quiet, keep the top payload bits
    return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x03ffu));
  }
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520: Inf
  if (a >= 0x38800000u) {                                              // normal half (>= 2^-14)
    uint32_t h = (a - 0x38000000u) >> 13;  // rebias 127 -> 15, drop 13 mantissa bits
    const uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // may carry into exponent
    return static_cast<uint16_t>(sign | h);
  }
  if (a <= 0x33000000u) return sign;  // <= 2^-25: rounds (ties to even) to 0
  // Subnormal half: units of 2^-24. value = m * 2^(e-150), so m >> (126 - e).
  const uint32_t e = a >> 23;
  const uint32_t m = (a & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - e;  // 14..24
  uint32_t h = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1u);
  const uint32_t halfway = 1u << (shift - 1u);
  if (rem > halfway || (rem == halfway && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

float halfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  uint32_t x;
  if (exp == 0) {
    if (man == 0) {
      x = sign;
    } else {  // subnormal: man * 2^-24, exact in float
      float f = std::ldexp(static_cast<float>(man), -24);
      std::memcpy(&x, &f, sizeof x);
      x |= sign;
    }
  } else if (exp == 0x1f) {
    x = sign | 0x7f800000u | (man << 13);
  } else {
    x = sign | ((exp + 112u) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &x, sizeof f);
  return f;
}

uint16_t floatToBf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x0040u);
  const uint32_t bias = 0x7fffu + ((x >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>((x + bias) >> 16);
}

float bf16ToFloat(uint16_t b) {
  const uint32_t x = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &x, sizeof f);
  return f;
}

// =================================================================================
// Types and ops
// =================================================================================
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

size_t typeSize(ftcclDataType_t type) {
  switch (type) {
    case ftcclInt8:
    case ftcclUint8:
      return 1;
    case ftcclFloat16:
    case ftcclBfloat16:
      return 2;
    case ftcclInt32:
    case ftcclUint32:
    case ftcclFloat32:
      return 4;
    case ftcclInt64:
    case ftcclUint64:
    case ftcclFloat64:
      return 8;
    default:
      return 0;
  }
}

const char* typeName(ftcclDataType_t type) {
  switch (type) {
    case ftcclInt8:
      return "int8";
    case ftcclUint8:
      return "uint8";
    case ftcclInt32:
      return "int32";
    case ftcclUint32:
      return "uint32";
    case ftcclInt64:
      return "int64";
    case ftcclUint64:
      return "uint64";
    case ftcclFloat16:
      return "half";
    case ftcclFloat32:
      return "float";
    case ftcclFloat64:
      return "double";
    case ftcclBfloat16:
      return "bfloat16";
    default:
      return "?";
  }
}

const char* opName(ftcclRedOp_t op) {
  switch (op) {
    case ftcclSum:
      return "sum";
    case ftcclProd:
      return "prod";
    case ftcclMax:
      return "max";
    case ftcclMin:
      return "min";
    case ftcclAvg:
      return "avg";
    default:
      return "?";
  }
}

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

// =================================================================================
// Patterns, fill and check
// =================================================================================
ReducePattern::ReducePattern(ftcclRedOp_t op, int rank, int nranks)
    : op_(op),
      rank_(rank),
      intKey_(patternKey(kStreamInt, static_cast<uint64_t>(rank))),
      sumVKey_(patternKey(kStreamSumV, 0)),
      sumDKey_(patternKey(kStreamSumD, static_cast<uint64_t>(rank / 2))),
      twoKey_(patternKey(kStreamProdTwo, 0)),
      signKey_(patternKey(kStreamProdSign, static_cast<uint64_t>(rank))),
      maxMinKey_(patternKey(kStreamMaxMin, static_cast<uint64_t>(rank))) {
  const int n = std::max(nranks, 1);
  k_ = static_cast<uint64_t>(std::min(8, std::max(1, 100 / n)));
  paired_ = !(n % 2 == 1 && rank == n - 1);
  twoPeriod_ = static_cast<uint64_t>(std::max(3, (n + 7) / 8));
}

void fillReduceInput(void* buf, size_t count, ftcclDataType_t type, ftcclRedOp_t op, int rank,
                     int nranks) {
  const ReducePattern p(op, rank, nranks);
  withType(type, [&](auto tag) {
    using T = decltype(tag);
    T* out = static_cast<T*>(buf);
    for (size_t i = 0; i < count; ++i) out[i] = reduceInput<T>(p, i);
  });
}

void fillReduceExpected(void* buf, size_t count, size_t offset, ftcclDataType_t type,
                        ftcclRedOp_t op, int nranks) {
  withType(type, [&](auto tag) {
    using T = decltype(tag);
    T* out = static_cast<T*>(buf);
    const ReducePattern first(op, 0, nranks);
    for (size_t i = 0; i < count; ++i) out[i] = reduceInput<T>(first, offset + i);
    for (int r = 1; r < nranks; ++r) {
      const ReducePattern p(op, r, nranks);
      for (size_t i = 0; i < count; ++i) {
        out[i] = refCombine<T>(op, out[i], reduceInput<T>(p, offset + i));
      }
    }
    if (op == ftcclAvg) {
      for (size_t i = 0; i < count; ++i) out[i] = refAvgFinish<T>(out[i], nranks);
    }
  });
}

void fillRawInput(void* buf, size_t count, ftcclDataType_t type, int rank) {
  const uint64_t key = patternKey(kStreamRaw, static_cast<uint64_t>(rank));
  withType(type, [&](auto tag) {
    using T = decltype(tag);
    T* out = static_cast<T*>(buf);
    for (size_t i = 0; i < count; ++i) out[i] = fromRawBits<T>(patternAt(key, i));
  });
}

namespace {
template <class W>
size_t countMismatchesAs(const void* got, const void* want, size_t count, size_t* first) {
  const W* g = static_cast<const W*>(got);
  const W* w = static_cast<const W*>(want);
  size_t wrong = 0;
  *first = count;
  for (size_t i = 0; i < count; ++i) {
    if (g[i] != w[i]) {
      if (wrong == 0) *first = i;
      ++wrong;
    }
  }
  return wrong;
}
}  // namespace

size_t countMismatches(const void* got, const void* want, size_t count, ftcclDataType_t type,
                       size_t* first) {
  switch (typeSize(type)) {
    case 1:
      return countMismatchesAs<uint8_t>(got, want, count, first);
    case 2:
      return countMismatchesAs<uint16_t>(got, want, count, first);
    case 4:
      return countMismatchesAs<uint32_t>(got, want, count, first);
    case 8:
      return countMismatchesAs<uint64_t>(got, want, count, first);
    default:
      *first = count;
      return 0;
  }
}

std::string elementHex(const void* buf, size_t i, ftcclDataType_t type) {
  const size_t size = typeSize(type);
  const unsigned char* p = static_cast<const unsigned char*>(buf) + i * size;
  uint64_t v = 0;
  for (size_t b = 0; b < size; ++b) v |= static_cast<uint64_t>(p[b]) << (8 * b);  // little endian
  char text[32];
  std::snprintf(text, sizeof text, "%0*llx", static_cast<int>(2 * size),
                static_cast<unsigned long long>(v));
  return text;
}

// =================================================================================
// Options
// =================================================================================
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

namespace {

bool parseInt(const char* text, long lo, long hi, long* out) {
  if (text == nullptr || *text == '\0') return false;
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(text, &end, 0);
  if (*end != '\0' || errno != 0 || v < lo || v > hi) return false;
  *out = v;
  return true;
}

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

// =================================================================================
// Results and their formatting
// =================================================================================
void computeBandwidth(size_t bytes, double seconds, double busFactor, double* algBw,
                      double* busBw) {
  *algBw = seconds > 0 ? static_cast<double>(bytes) / 1.0e9 / seconds : 0.0;
  *busBw = *algBw * busFactor;
}

std::string formatTimeUs(double us) {
  char text[64];
  if (us >= 10000.0) {
    std::snprintf(text, sizeof text, "%7.0f", us);
  } else if (us >= 100.0) {
    std::snprintf(text, sizeof text, "%7.1f", us);
  } else {
    std::snprintf(text, sizeof text, "%7.2f", us);
  }
  return text;
}

std::string formatTableHeader() {
  char line[3][512];
  std::snprintf(line[0], sizeof line[0],
                "# %10s  %12s  %8s  %6s  %6s           out-of-place                       "
                "in-place          ",
                "", "", "", "", "");
  std::snprintf(line[1], sizeof line[1],
                "# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s %6s  %7s  %6s  %6s %6s", "size",
                "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong", "time",
                "algbw", "busbw", "#wrong");
  std::snprintf(line[2], sizeof line[2],
                "# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %5s  %7s  %6s  %6s  %5s", "(B)",
                "(elements)", "", "", "", "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)",
                "(GB/s)", "");
  return std::string(line[0]) + "\n" + line[1] + "\n" + line[2] + "\n";
}

namespace {
std::string formatPlacement(const PlacementResult& r) {
  char text[128];
  if (r.wrong < 0) {
    std::snprintf(text, sizeof text, "  %7s  %6.2f  %6.2f  %5s", formatTimeUs(r.timeUs).c_str(),
                  r.algBw, r.busBw, "N/A");
  } else {
    std::snprintf(text, sizeof text, "  %7s  %6.2f  %6.2f  %5lld", formatTimeUs(r.timeUs).c_str(),
                  r.algBw, r.busBw, r.wrong);
  }
  return text;
}

std::string jsonNumber(double v, const char* fmt) {
  if (!std::isfinite(v)) return "null";
  char text[64];
  std::snprintf(text, sizeof text, fmt, v);
  return text;
}

std::string jsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(c));
          out += esc;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string jsonLibrary(const LibraryCount& c) {
  if (!c.valid) return "null";
  return "{\"ops\":" + std::to_string(c.ops) + ",\"bytes\":" + std::to_string(c.bytes) +
         ",\"sent_bytes\":" + std::to_string(c.sentBytes) +
         ",\"time_us\":" + jsonNumber(c.timeUs, "%.3f") + "}";
}

std::string jsonPlacement(const PlacementResult& r) {
  return "{\"time_us\":" + jsonNumber(r.timeUs, "%.3f") +
         ",\"algbw\":" + jsonNumber(r.algBw, "%.6f") + ",\"busbw\":" + jsonNumber(r.busBw, "%.6f") +
         ",\"wrong\":" + (r.wrong < 0 ? std::string("null") : std::to_string(r.wrong)) +
         ",\"library\":" + jsonLibrary(r.library) + "}";
}
}  // namespace

std::string formatRow(const ResultRow& row) {
  char head[256];
  std::snprintf(head, sizeof head, "%12zu  %12zu  %8s  %6s  %6i", row.bytes, row.count,
                typeName(row.type), row.redop.c_str(), row.root);
  return head + formatPlacement(row.oop) + formatPlacement(row.ip);
}

std::string resultsJson(const char* tool, int nranks, const std::vector<ResultRow>& rows,
                        double avgBusBw, long long wrongTotal) {
  std::string out =
      "{\"tool\":" + jsonString(tool) + ",\"nranks\":" + std::to_string(nranks) + ",\"results\":[";
  for (size_t k = 0; k < rows.size(); ++k) {
    const ResultRow& r = rows[k];
    if (k) out += ",";
    out += "\n  {\"size\":" + std::to_string(r.bytes) + ",\"count\":" + std::to_string(r.count) +
           ",\"type\":" + jsonString(typeName(r.type)) + ",\"redop\":" + jsonString(r.redop) +
           ",\"root\":" + std::to_string(r.root) + ",\"oop\":" + jsonPlacement(r.oop) +
           ",\"ip\":" + jsonPlacement(r.ip) + "}";
  }
  out += "],\n \"avg_busbw\":" + jsonNumber(avgBusBw, "%.6f") +
         ",\"wrong_total\":" + std::to_string(wrongTotal) + "}\n";
  return out;
}

// =================================================================================
// The run
// =================================================================================
namespace {

// How the ranks find each other.
//  kSingle: no launcher, one rank, no MPI.
//  kMpi:    under mpirun: MPI_Init, rank 0 creates the id and MPI_Bcast's it. Times are
//           combined with MPI (max over ranks), #wrong summed over ranks.
//  kEnv:    FTCCL_COMM_ID set: every rank builds the same id itself and MPI is never
//           initialised. Without MPI nothing is combined across ranks (using ftccl itself
//           to gather the verdict on ftccl would be circular): each rank checks its own
//           results, prints mismatches to stderr and exits non-zero on its own wrong
//           values; only rank 0 prints the table and writes the JSON, with its own numbers.
enum class Mode { kSingle, kMpi, kEnv };

const char* modeName(Mode m) {
  switch (m) {
    case Mode::kMpi:
      return "MPI";
    case Mode::kEnv:
      return "FTCCL_COMM_ID (no MPI)";
    default:
      return "single process";
  }
}

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<unsigned char, FreeDeleter>;

Buffer allocBuffer(size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, 4096, bytes) != 0) throw std::bad_alloc();
  std::memset(p, 0, bytes);  // pre-fault: no page faults inside the timed loops
  return Buffer(static_cast<unsigned char*>(p));
}

// One type x op x root of the benchmark.
struct Combo {
  ftcclDataType_t type;
  ftcclRedOp_t op;
  int root;
};

// The benchmark as a flat list of steps, so that after a rebuild the members can agree on
// one index and go on from there. Any step can be redone: it sets up what it uses.
enum class StepKind {
  kBegin,   // a combo: fill the input and the expected output, barrier
  kWarmup,  // warm-up at the largest and the smallest size, as nccl-tests does
  kSync,    // one size and placement: an untimed op to line the ranks up, barrier
  kTimed,   // the timed loop
  kCheck,   // the checked runs
  kRow,     // print the row (after both placements)
};

struct Step {
  StepKind kind;
  int combo;
  int row;  // index into Run::table; -1 for kBegin / kWarmup
  bool inPlace;
};

using Clock = std::chrono::steady_clock;

struct Run {
  const CollTool* tool = nullptr;
  Options opt;
  Mode mode = Mode::kSingle;
  int rank = 0;
  int nranks = 1;
  int process = 0;        // the launcher's index (FTCCL_RANK), spares included
  bool spare = false;     // --spares: one of the last S processes
  bool reporter = false;  // prints the table: rank 0, after a failure the lowest survivor
  bool mpiUp = false;
  ftcclComm_t comm = nullptr;
  ftcclStream_t stream = nullptr;  // NULL with -z 1
  int barrierValue = 0;
  size_t bufBytes = 0;
  Buffer send, recv, expected;
  std::vector<Combo> combos;
  std::vector<Step> steps;
  std::vector<ResultRow> table;  // every row, filled in as the steps run
  std::vector<char> printed;     // per row: its kRow step ran
  std::vector<size_t> rowSize;   // per row: the size step (-b/-e/-f) it measures, in bytes
  long step = 0;                 // the step running now
  long loopStep = -1;            // the timed loop whose first t0 a redo keeps
  Clock::time_point loopT0;
  long timedOps = 0;                   // for --fault
  bool slowAnnounced = false;          // --slow
  LibraryCount loopLibrary;            // the library's count when the timed loop began
  bool faultArmed = true;              // off after a rebuild: the fault happened once
  std::unique_ptr<Recovery> recovery;  // --spares / --recover
};

bool isRoot(const Run& r) { return r.rank == 0; }

// Prints a failed ftccl call, rank-prefixed, with the communicator's last error.
bool ok(Run& r, ftcclResult_t res, const char* what) {
  if (res == ftcclSuccess) return true;
  if (r.recovery && Recovery::isPeerFailure(res)) {
    r.recovery->noteFailure(r.rank, r.step, ftcclGetLastError(r.comm));
    return false;  // runSteps() rebuilds and redoes the step
  }
  if (reportDetectedFault(r.opt.fault, r.rank, res, ftcclGetLastError(r.comm))) {
    // The planned fault was detected: this survivor's job is done. No MPI call is safe
    // any more (peers are gone), so leave now.
    ftcclCommAbort(r.comm);
    std::_Exit(0);
  }
  std::fprintf(stderr, "[rank %d] %s: %s failed: %s (%d): %s\n", r.rank, r.tool->name, what,
               ftcclGetErrorString(res), static_cast<int>(res), ftcclGetLastError(r.comm));
  return false;
}

bool sync(Run& r) {
  if (r.stream == nullptr) return true;  // blocking mode: every call already completed
  return ok(r, ftcclStreamSynchronize(r.stream), "ftcclStreamSynchronize");
}

bool barrier(Run& r) {
  if (r.mpiUp) return MPI_Barrier(MPI_COMM_WORLD) == MPI_SUCCESS;
  if (r.nranks == 1) return true;
  r.barrierValue = 0;
  return ok(r,
            ftcclAllReduce(&r.barrierValue, &r.barrierValue, 1, ftcclInt32, ftcclSum, r.comm,
                           r.stream),
            "ftcclAllReduce (barrier)") &&
         sync(r);
}

// The reported time is the slowest rank's average (MPI max): a collective is only done
// when every rank is done, so the max is the conservative choice.
double maxOverRanks(Run& r, double v) {
  if (r.mpiUp) MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return v;
}

long long sumOverRanks(Run& r, long long v) {
  if (r.mpiUp) MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
  return v;
}

// Stops after an ftccl error: abort the communicator (never waits for peers) and, under
// MPI with peers, take the whole job down so nobody waits for us in MPI forever.
int fail(Run& r) {
  if (r.comm) ftcclCommAbort(r.comm);
  r.comm = nullptr;
  if (r.mpiUp) {
    if (r.nranks > 1) MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Finalize();
    r.mpiUp = false;
  }
  return 1;
}

const char* envOrNull(const char* name) {
  const char* v = std::getenv(name);
  return (v && *v) ? v : nullptr;
}

bool envInt(const char* name, int* out) {
  long v;
  if (!parseInt(envOrNull(name), 0, INT_MAX, &v)) return false;
  *out = static_cast<int>(v);
  return true;
}

bool launchedByMpi() {
  return envOrNull("OMPI_COMM_WORLD_SIZE") || envOrNull("PMI_SIZE") || envOrNull("PMIX_RANK");
}

// Our rank as the launcher sees it, before any bootstrap: only it prints usage errors.
int launcherRank() {
  int rank = 0;
  if (envOrNull("FTCCL_COMM_ID") && envInt("FTCCL_RANK", &rank)) return rank;
  if (envInt("OMPI_COMM_WORLD_RANK", &rank) || envInt("PMI_RANK", &rank) ||
      envInt("PMIX_RANK", &rank))
    return rank;
  return 0;
}

// With --spares / --recover, the communicator has config.nSpares spares (the last
// processes, rank -1 until activated) and shrinks when more ranks fail than spares remain.
ftcclResult_t initComm(Run& r, const ftcclUniqueId& id, ftcclComm_t* comm) {
  if (!r.opt.recovery.enabled) return ftcclCommInitRank(comm, r.nranks, id, r.rank);
  ftcclConfig_t config = FTCCL_CONFIG_INITIALIZER;
  config.nSpares = r.opt.recovery.spares;
  config.shrinkWhenNoSpares = 1;
  return ftcclCommInitRankConfig(comm, r.nranks, id, r.process, &config);
}

// --spares / --recover: only without MPI, with enough processes, and a victim that holds
// a rank. Returns "" when usable, else why not.
std::string recoveryUsageError(const Options& o) {
  if (!o.recovery.enabled) return "";
  if (!envOrNull("FTCCL_COMM_ID")) {
    return "--spares / --recover need the no-MPI bootstrap (FTCCL_COMM_ID, as ftccl_run sets "
           "it): an MPI job does not survive the death of one of its processes";
  }
  int processes = 1;
  if (!envInt("FTCCL_NRANKS", &processes) && !envInt("OMPI_COMM_WORLD_SIZE", &processes)) {
    processes = 1;
  }
  const int nranks = processes - o.recovery.spares;
  if (nranks < 1) {
    return "--spares " + std::to_string(o.recovery.spares) + " leaves no rank among " +
           std::to_string(processes) + " processes";
  }
  if (o.fault.enabled() && o.fault.rank >= nranks) {
    return "--fault rank " + std::to_string(o.fault.rank) + " is not a rank (" +
           std::to_string(nranks) + " ranks; the spares follow them)";
  }
  if (o.slow.enabled() && o.slow.rank >= nranks) {
    return "--slow rank " + std::to_string(o.slow.rank) + " is not a rank (" +
           std::to_string(nranks) + " ranks)";
  }
  return "";
}

// Sets mode/rank/nranks, creates the communicator and the stream.
bool bootstrap(Run& r, int* argc, char*** argv) {
  if (envOrNull("FTCCL_COMM_ID")) {
    r.mode = Mode::kEnv;
    if (!envInt("FTCCL_RANK", &r.rank) && !envInt("OMPI_COMM_WORLD_RANK", &r.rank)) r.rank = 0;
    if (!envInt("FTCCL_NRANKS", &r.nranks) && !envInt("OMPI_COMM_WORLD_SIZE", &r.nranks))
      r.nranks = 1;
    if (r.nranks < 1 || r.rank >= r.nranks) {
      std::fprintf(stderr, "%s: invalid rank %d of %d (FTCCL_RANK / FTCCL_NRANKS)\n", r.tool->name,
                   r.rank, r.nranks);
      return false;
    }
    r.process = r.rank;
    if (r.opt.recovery.enabled) {  // the last S processes are the spares
      r.nranks -= r.opt.recovery.spares;
      r.spare = r.process >= r.nranks;
    }
  } else if (launchedByMpi()) {
    r.mode = Mode::kMpi;
    if (MPI_Init(argc, argv) != MPI_SUCCESS) {
      std::fprintf(stderr, "%s: MPI_Init failed\n", r.tool->name);
      return false;
    }
    r.mpiUp = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &r.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &r.nranks);
  }

  ftcclUniqueId id;
  std::memset(&id, 0, sizeof id);
  if (r.mode == Mode::kMpi) {
    // Broadcast the result code with the id, so that a failure on rank 0 does not leave
    // the others waiting in ftcclCommInitRank.
    struct {
      int result;
      ftcclUniqueId id;
    } msg;
    std::memset(&msg, 0, sizeof msg);
    if (r.rank == 0) {
      msg.result = ftcclGetUniqueId(&msg.id);
      ok(r, static_cast<ftcclResult_t>(msg.result), "ftcclGetUniqueId");
    }
    MPI_Bcast(&msg, sizeof msg, MPI_BYTE, 0, MPI_COMM_WORLD);
    if (msg.result != ftcclSuccess) return false;
    id = msg.id;
  } else {
    // kEnv: FTCCL_COMM_ID makes every rank build the same id; kSingle: we are the root.
    if (!ok(r, ftcclGetUniqueId(&id), "ftcclGetUniqueId")) return false;
  }
  ftcclComm_t comm = nullptr;
  const ftcclResult_t res = initComm(r, id, &comm);
  if (!ok(r, res, "ftcclCommInitRank")) return false;  // r.comm still NULL: thread's error
  r.comm = comm;
  int count = 0;
  if (!ok(r, ftcclCommCount(r.comm, &count), "ftcclCommCount")) return false;
  if (r.opt.recovery.enabled) {
    if (!ok(r, ftcclCommUserRank(r.comm, &r.rank), "ftcclCommUserRank")) return false;
    // A process that did not join init is replaced by a spare (which then holds a rank
    // from the start) or dropped (shrink): every process takes what init decided.
    if (r.spare && r.rank >= 0) {
      std::printf("[process %d] # took rank %d at init: a process did not join\n", r.process,
                  r.rank);
      r.spare = false;
    }
    if (!r.spare && r.rank < 0) {
      std::fprintf(stderr, "[process %d] %s: got no rank as a rank\n", r.process, r.tool->name);
      return false;
    }
    r.nranks = count;
  }
  if (count != r.nranks) {
    std::fprintf(stderr, "[rank %d] %s: communicator has %d ranks, expected %d\n", r.rank,
                 r.tool->name, count, r.nranks);
    return false;
  }
  if (!r.opt.blocking && !ok(r, ftcclStreamCreate(&r.stream), "ftcclStreamCreate")) return false;
  return true;
}

void printPreamble(Run& r) {
  const Options& o = r.opt;
  char host[256] = "unknown";
  gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = '\0';
  int version = 0;
  ftcclGetVersion(&version);
  char line[512];
  std::snprintf(line, sizeof line,
                "#  Rank %2d Group %2d Pid %6d on %10s device %2s [%s] ftccl %d.%d.%d\n", r.rank, 0,
                static_cast<int>(getpid()), host, "-", "cpu", version / 10000,
                (version / 100) % 100, version % 100);

  std::vector<char> lines;
  if (r.mpiUp) {  // every rank's line, in rank order, as nccl-tests does
    if (isRoot(r)) lines.resize(sizeof line * static_cast<size_t>(r.nranks));
    MPI_Gather(line, sizeof line, MPI_CHAR, lines.data(), sizeof line, MPI_CHAR, 0, MPI_COMM_WORLD);
  }
  if (!isRoot(r)) return;

  std::printf(
      "# nThread 1 nGpus 1 minBytes %zu maxBytes %zu step: %zu(%s) warmup iters: %d "
      "iters: %d agg iters: 1 validation: %d graph: 0\n",
      o.minBytes, o.maxBytes, o.stepFactor > 1 ? o.stepFactor : o.stepBytes,
      o.stepFactor > 1 ? "factor" : "bytes", o.warmupIters, o.iters, o.check);
  if (o.blocking) {
    std::printf("# Blocking Enabled: every call uses the NULL stream and returns when complete\n");
  }
  std::printf("#\n# nRanks %d bootstrap: %s\n", r.nranks, modeName(r.mode));
  if (r.mode == Mode::kEnv && r.nranks > 1) {
    std::printf(
        "# No MPI: times and #wrong are rank 0's own; every rank checks its data and "
        "exits non-zero on wrong values\n");
  }
  if (o.recovery.enabled) {
    std::printf(
        "# Recovery: %d spare process(es) after the ranks; after a failure the ranks "
        "rebuild (%s), redo the interrupted step and go on\n",
        o.recovery.spares, o.recovery.spares > 0 ? "onto a spare" : "shrinking");
  }
  bool bf16Sum = false;
  for (ftcclDataType_t t : o.types) bf16Sum = bf16Sum || t == ftcclBfloat16;
  if (bf16Sum && r.tool->usesOps && r.nranks > 127) {
    std::printf(
        "# Warning: with more than 127 ranks the bfloat16 sum/avg check data is no "
        "longer exact in every order\n");
  }
  std::printf("#\n# Using devices\n");
  if (r.mpiUp) {
    for (int p = 0; p < r.nranks; ++p)
      std::printf("%s", &lines[sizeof line * static_cast<size_t>(p)]);
  } else {
    std::printf("%s", line);
  }
  std::printf("#\n%s", formatTableHeader().c_str());
  std::fflush(stdout);
}

// The buffers of one operation of `bytes` (a size step) with the current number of ranks:
// a shrink changes the blocks of AllGather / ReduceScatter.
CollCounts countsFor(const Run& r, ftcclDataType_t type, size_t bytes) {
  const size_t tsize = typeSize(type);
  const size_t count = bytes / tsize;
  CollCounts k;
  if (r.tool->counts) {
    r.tool->counts(count, r.nranks, &k);
  } else {
    k.send = k.recv = k.param = count;
  }
  // The buffers are allocated for the largest size: a tool may only round down.
  if (k.send > count || k.recv > count) {
    throw std::logic_error(std::string(r.tool->name) + ": buffers larger than the size");
  }
  return k;
}

// A row's buffers, now; refreshes its size and count columns to match (after a shrink).
CollCounts rowCounts(Run& r, const Combo& c, int index) {
  ResultRow& row = r.table[static_cast<size_t>(index)];
  const CollCounts k = countsFor(r, c.type, r.rowSize[static_cast<size_t>(index)]);
  row.count = k.param;
  row.bytes = std::max(k.send, k.recv) * typeSize(c.type);
  return k;
}

// Where an operation reads and writes: out of place the two buffers; in place the receive
// buffer alone, at the tool's per-rank offsets (nccl-tests' in-place offsets).
unsigned char* sendBuffer(Run& r, const CollCounts& k, size_t tsize, bool inPlace) {
  if (!inPlace) return r.send.get();
  return r.recv.get() + static_cast<size_t>(r.rank) * k.sendInPlaceOffset * tsize;
}
unsigned char* recvBuffer(Run& r, const CollCounts& k, size_t tsize, bool inPlace) {
  if (!inPlace) return r.recv.get();
  return r.recv.get() + static_cast<size_t>(r.rank) * k.recvInPlaceOffset * tsize;
}

// --slow: the first sleep is announced with the wall clock, so that the time until the
// library's straggler warning (whose log lines carry the wall clock too) can be read off.
void sleepAsStraggler(Run& r) {
  if (!r.slowAnnounced) {
    r.slowAnnounced = true;
    const double unixMs = std::chrono::duration<double, std::milli>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
    std::fprintf(stderr,
                 "[rank %d] # slow: sleeping %d ms before each operation from unix ms %.0f\n",
                 r.rank, r.opt.slow.ms, unixMs);
    std::fflush(stderr);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(r.opt.slow.ms));
}

// The library's own totals (ftcclCommGetStats): its JSON's "total" object, and the bytes
// sent to every peer. A plain scan: the tool reads the library's fixed format.
LibraryCount readLibraryCount(ftcclComm_t comm) {
  LibraryCount c;
  size_t length = 0;
  std::string json;
  for (int attempt = 0; attempt < 3; ++attempt) {  // the JSON may grow in between: slack
    json.assign(length + 4096, '\0');
    if (ftcclCommGetStats(comm, &json[0], json.size(), &length) == ftcclSuccess) break;
    json.clear();
  }
  if (json.empty()) return c;
  size_t total = json.find("\"total\":{");
  if (total == std::string::npos ||
      std::sscanf(json.c_str() + total, "\"total\":{\"ops\":%llu,\"bytes\":%llu,\"time_us\":%lf",
                  &c.ops, &c.bytes, &c.timeUs) != 3) {
    return c;
  }
  const std::string key = "\"sent_bytes\":";
  for (size_t at = json.find(key); at != std::string::npos; at = json.find(key, at + 1)) {
    c.sentBytes += std::strtoull(json.c_str() + at + key.size(), nullptr, 10);
  }
  c.valid = true;
  return c;
}

LibraryCount countSince(const LibraryCount& before, const LibraryCount& after) {
  LibraryCount d;
  d.valid = before.valid && after.valid;
  d.ops = after.ops - before.ops;
  d.bytes = after.bytes - before.bytes;
  d.sentBytes = after.sentBytes - before.sentBytes;
  d.timeUs = after.timeUs - before.timeUs;
  return d;
}

// Runs `iters` operations back to back, then waits.
bool runOps(Run& r, const Combo& c, const CollCounts& k, bool inPlace, int iters) {
  const size_t tsize = typeSize(c.type);
  const void* sendbuff = sendBuffer(r, k, tsize, inPlace);
  void* recvbuff = recvBuffer(r, k, tsize, inPlace);
  for (int it = 0; it < iters; ++it) {
    if (r.faultArmed) maybeInjectFault(r.opt.fault, r.rank, &r.timedOps);
    if (r.opt.slow.rank == r.rank) sleepAsStraggler(r);
    if (!ok(r, r.tool->run(sendbuff, recvbuff, k.param, c.type, c.op, c.root, r.comm, r.stream),
            r.tool->collName))
      return false;
  }
  return sync(r);
}

// The receive buffer before a checked run: poisoned (so that a missing write is seen),
// holding this rank's input where an in-place operation reads it.
void prepareRecv(Run& r, const CollCounts& k, size_t tsize, bool inPlace) {
  const size_t extent = std::max(k.send, k.recv) * tsize;
  const size_t sendBytes = k.send * tsize;
  if (!inPlace || extent > sendBytes) std::memset(r.recv.get(), 0xa5, extent);
  if (inPlace) std::memcpy(sendBuffer(r, k, tsize, true), r.send.get(), sendBytes);
}

// This rank's input and expected output at the largest size; they depend on the rank and
// the number of ranks, so a rebuild fills them again.
void fillCombo(Run& r, const Combo& c) {
  if (!r.opt.check) return;
  const CollCounts k = countsFor(r, c.type, r.opt.maxBytes);
  r.tool->fillInput(r.send.get(), k.send, c.type, c.op, c.root, r.rank, r.nranks);
  if (!r.tool->expectedPerSize) {
    r.tool->fillExpected(r.expected.get(), k.recv, c.type, c.op, c.root, r.rank, r.nranks);
  }
}

bool beginCombo(Run& r, const Combo& c) {
  fillCombo(r, c);
  return barrier(r);
}

bool warmUp(Run& r, const Combo& c) {
  return runOps(r, c, countsFor(r, c.type, r.opt.maxBytes), false, r.opt.warmupIters) &&
         runOps(r, c, countsFor(r, c.type, r.opt.minBytes), false, r.opt.warmupIters);
}

bool syncPlacement(Run& r, const Combo& c, const Step& s) {
  const CollCounts k = rowCounts(r, c, s.row);
  if (r.opt.check) prepareRecv(r, k, typeSize(c.type), s.inPlace);
  return runOps(r, c, k, s.inPlace, 1) && barrier(r);
}

// A loop redone after a failure keeps its first t0: its time then includes the failure,
// the detection, the rebuild and the redone operations, with the iterations counted once.
bool timePlacement(Run& r, const Combo& c, const Step& s) {
  const CollCounts k = rowCounts(r, c, s.row);
  ResultRow& row = r.table[static_cast<size_t>(s.row)];
  if (r.loopStep != r.step) {
    r.loopStep = r.step;
    r.loopLibrary = readLibraryCount(r.comm);
    r.loopT0 = Clock::now();
  }
  if (!runOps(r, c, k, s.inPlace, r.opt.iters)) return false;
  const LibraryCount library = countSince(r.loopLibrary, readLibraryCount(r.comm));
  const auto t1 = Clock::now();
  const double sec =
      maxOverRanks(r, std::chrono::duration<double>(t1 - r.loopT0).count() / r.opt.iters);
  PlacementResult& out = s.inPlace ? row.ip : row.oop;
  out.timeUs = sec * 1.0e6;
  out.library = library;
  computeBandwidth(row.bytes, sec, r.tool->busBwFactor(r.nranks), &out.algBw, &out.busBw);
  return true;
}

// This rank's wrong elements after a checked run; the first one goes to stderr.
long long countWrong(Run& r, const Combo& c, const CollCounts& k, bool inPlace) {
  if (r.tool->rootOnlyResult && r.rank != c.root) return 0;
  const unsigned char* got = recvBuffer(r, k, typeSize(c.type), inPlace);
  size_t first = 0;
  const long long wrong =
      static_cast<long long>(countMismatches(got, r.expected.get(), k.recv, c.type, &first));
  if (wrong > 0) {
    std::fprintf(stderr,
                 "[rank %d] %s: %s %s root %d count %zu %s: %lld wrong elements, first at "
                 "[%zu]: got 0x%s expected 0x%s\n",
                 r.rank, r.tool->name, typeName(c.type), r.tool->usesOps ? opName(c.op) : "none",
                 c.root, k.param, inPlace ? "in-place" : "out-of-place", wrong, first,
                 elementHex(got, first, c.type).c_str(),
                 elementHex(r.expected.get(), first, c.type).c_str());
  }
  return wrong;
}

bool checkPlacement(Run& r, const Combo& c, const Step& s) {
  const CollCounts k = rowCounts(r, c, s.row);
  ResultRow& row = r.table[static_cast<size_t>(s.row)];
  PlacementResult& out = s.inPlace ? row.ip : row.oop;
  out.wrong = -1;
  if (r.opt.check && r.tool->expectedPerSize) {
    r.tool->fillExpected(r.expected.get(), k.recv, c.type, c.op, c.root, r.rank, r.nranks);
  }
  for (int rep = 0; rep < r.opt.check; ++rep) {
    // Restore the input (an in-place run overwrote it; a buggy out-of-place run might have).
    r.tool->fillInput(r.send.get(), k.send, c.type, c.op, c.root, r.rank, r.nranks);
    prepareRecv(r, k, typeSize(c.type), s.inPlace);
    if (!runOps(r, c, k, s.inPlace, 1)) return false;
    out.wrong = sumOverRanks(r, countWrong(r, c, k, s.inPlace));
    if (out.wrong) break;
  }
  return true;
}

void printRow(Run& r, int index) {
  const bool again = r.printed[static_cast<size_t>(index)] != 0;
  r.printed[static_cast<size_t>(index)] = 1;
  if (!r.reporter) return;
  if (again) std::printf("# the row of that size again, redone after the rebuild:\n");
  std::printf("%s\n", formatRow(r.table[static_cast<size_t>(index)]).c_str());
  std::fflush(stdout);
}

bool runStep(Run& r, const Step& s) {
  const Combo& c = r.combos[static_cast<size_t>(s.combo)];
  if (c.root >= r.nranks) return true;  // -r all, and a shrink took this root away
  switch (s.kind) {
    case StepKind::kBegin:
      return beginCombo(r, c);
    case StepKind::kWarmup:
      return warmUp(r, c);
    case StepKind::kSync:
      return syncPlacement(r, c, s);
    case StepKind::kTimed:
      return timePlacement(r, c, s);
    case StepKind::kCheck:
      return checkPlacement(r, c, s);
    case StepKind::kRow:
      printRow(r, s.row);
      return true;
  }
  return true;
}

// Every type x op x root: begin, warm up, then every size, out-of-place then in-place.
void planSteps(Run& r) {
  const std::vector<size_t> sizes = sizeSteps(r.opt);
  std::vector<int> roots;
  if (!r.tool->usesRoot) {
    roots.push_back(-1);
  } else if (r.opt.allRoots) {
    for (int p = 0; p < r.nranks; ++p) roots.push_back(p);
  } else {
    roots.push_back(r.opt.root);
  }
  const std::vector<ftcclRedOp_t> ops =
      r.tool->usesOps ? r.opt.ops : std::vector<ftcclRedOp_t>{ftcclSum};
  for (ftcclDataType_t type : r.opt.types) {
    for (ftcclRedOp_t op : ops) {
      for (int root : roots) {
        const int combo = static_cast<int>(r.combos.size());
        r.combos.push_back(Combo{type, op, root});
        r.steps.push_back(Step{StepKind::kBegin, combo, -1, false});
        r.steps.push_back(Step{StepKind::kWarmup, combo, -1, false});
        for (size_t size : sizes) {
          const int index = static_cast<int>(r.table.size());
          const CollCounts k = countsFor(r, type, size);
          ResultRow row;
          row.count = k.param;
          row.bytes = std::max(k.send, k.recv) * typeSize(type);
          row.type = type;
          row.redop = r.tool->usesOps ? opName(op) : "none";
          row.root = r.tool->usesRoot ? root : -1;
          r.table.push_back(row);
          r.rowSize.push_back(size);
          for (bool inPlace : {false, true}) {
            for (StepKind kind : {StepKind::kSync, StepKind::kTimed, StepKind::kCheck}) {
              r.steps.push_back(Step{kind, combo, index, inPlace});
            }
          }
          r.steps.push_back(Step{StepKind::kRow, combo, index, false});
        }
      }
    }
  }
  r.printed.assign(r.table.size(), 0);
}

// Takes the agreed step and the new numbering after a rebuild or an activation, and sets
// up again the combo that step belongs to (the failed op left the buffers undefined).
void adoptRecovery(Run& r) {
  r.faultArmed = false;  // an activated spare holding the victim's number must not repeat it
  ftcclCommUserRank(r.comm, &r.rank);
  ftcclCommCount(r.comm, &r.nranks);
  if (r.step < static_cast<long>(r.steps.size())) {
    fillCombo(r, r.combos[static_cast<size_t>(r.steps[static_cast<size_t>(r.step)].combo)]);
  }
}

// Runs the steps from r.step. After a peer failure (with --spares / --recover): drain the
// stream (its error would come back at the next synchronize), rebuild, and go on.
bool runSteps(Run& r) {
  while (r.step < static_cast<long>(r.steps.size())) {
    if (runStep(r, r.steps[static_cast<size_t>(r.step)])) {
      ++r.step;
      continue;
    }
    if (!r.recovery || !r.recovery->pending()) return false;
    if (r.stream) ftcclStreamSynchronize(r.stream);
    if (!r.recovery->recover(r.comm, &r.step, &r.reporter)) return false;
    adoptRecovery(r);
  }
  return true;
}

void allocBuffers(Run& r) {
  r.bufBytes = std::max<size_t>((r.opt.maxBytes + 63) / 64 * 64, 64);
  r.send = allocBuffer(r.bufBytes);
  r.recv = allocBuffer(r.bufBytes);
  if (r.opt.check) r.expected = allocBuffer(r.bufBytes);
}

// The busbw of the timed loop that the failure interrupted, as the reporter measured it.
std::string hitLoop(const Run& r) {
  const long s = r.recovery->firstFailedStep();
  if (s < 0 || r.steps[static_cast<size_t>(s)].kind != StepKind::kTimed) {
    return "n/a (the failure hit no timed loop)";
  }
  const Step& step = r.steps[static_cast<size_t>(s)];
  const ResultRow& row = r.table[static_cast<size_t>(step.row)];
  const PlacementResult& p = step.inPlace ? row.ip : row.oop;
  char text[160];
  std::snprintf(text, sizeof text, "%.4f GB/s (the %zu B %s loop: %d iters in %.1f ms)", p.busBw,
                row.bytes, step.inPlace ? "in-place" : "out-of-place", r.opt.iters,
                p.timeUs * r.opt.iters / 1000.0);
  return text;
}

// The rows that ran (a shrink can take a root away), the #wrong total and the average busbw.
struct Totals {
  std::vector<ResultRow> rows;
  long long wrong = 0;
  double avgBusBw = 0;
};

Totals totals(const Run& r) {
  Totals t;
  double busBwSum = 0;
  for (size_t k = 0; k < r.table.size(); ++k) {
    if (!r.printed[k]) continue;
    const ResultRow& row = r.table[k];
    t.rows.push_back(row);
    for (const PlacementResult* p : {&row.oop, &row.ip}) {
      if (p->wrong > 0) t.wrong += p->wrong;
      busBwSum += p->busBw;
    }
  }
  if (!t.rows.empty()) t.avgBusBw = busBwSum / static_cast<double>(2 * t.rows.size());
  return t;
}

// The reporter's closing lines and JSON; false when the JSON could not be written.
bool report(Run& r, const Totals& t) {
  // nccl-tests counts failed tests here; we print the total of the #wrong column.
  std::printf("# Out of bounds values : %lld %s\n", t.wrong, t.wrong ? "FAILED" : "OK");
  std::printf("# Avg bus bandwidth    : %g \n#\n", t.avgBusBw);
  if (r.recovery) {
    for (const std::string& line : r.recovery->summaryLines(hitLoop(r))) {
      std::printf("%s\n", line.c_str());
    }
    if (r.recovery->rebuilds() > 0) removeFaultStamp();  // every survivor has read it
  }
  std::fflush(stdout);
  if (r.opt.jsonFile.empty()) return true;
  const std::string json = resultsJson(r.tool->name, r.nranks, t.rows, t.avgBusBw, t.wrong);
  FILE* f = std::fopen(r.opt.jsonFile.c_str(), "w");
  if (f == nullptr || std::fwrite(json.data(), 1, json.size(), f) != json.size() ||
      std::fclose(f) != 0) {
    std::fprintf(stderr, "%s: cannot write %s: %s\n", r.tool->name, r.opt.jsonFile.c_str(),
                 std::strerror(errno));
    return false;
  }
  return true;
}

// --spares / --recover: every live process says whether its run after the rebuild was
// right, since the launcher's exit status cannot tell (a victim died on purpose).
int printVerdict(const Run& r, int status, const std::string& why) {
  std::string problem = why;
  if (problem.empty()) problem = r.recovery->problem();
  if (problem.empty()) problem = r.recovery->unexpected();
  if (problem.empty() && status != 0) problem = "wrong values or an ftccl error (see above)";
  const bool pass = problem.empty() && status == 0;
  std::printf("PERF_VERDICT rank=%d %s %s rank %d of %d, %s%s%s\n", r.process,
              pass ? "PASS" : "FAIL", r.spare ? "activated spare," : "rank,", r.rank, r.nranks,
              r.recovery->brief().c_str(), problem.empty() ? "" : ": ", problem.c_str());
  std::fflush(stdout);
  return pass ? 0 : 1;
}

// Stops after an ftccl error; with --spares / --recover, says so in the verdict first.
int failRun(Run& r) {
  if (r.recovery) printVerdict(r, 1, r.recovery->problem());
  return fail(r);
}

// A spare waits; true with *done set when it stood down (every rank left in order).
bool awaitActivation(Run& r, bool* done) {
  bool activated = false;
  if (!r.recovery->standby(r.comm, &activated, &r.step, &r.reporter)) return false;
  *done = !activated;
  if (activated) adoptRecovery(r);
  return true;
}

// Leaves in order: waits for queued work, frees everything. Returns the exit status.
int finish(Run& r, int status) {
  if (r.stream && !ok(r, ftcclStreamDestroy(r.stream), "ftcclStreamDestroy")) status = 1;
  r.stream = nullptr;
  if (!ok(r, ftcclCommDestroy(r.comm), "ftcclCommDestroy")) status = 1;
  r.comm = nullptr;
  r.send.reset();
  r.recv.reset();
  r.expected.reset();
  if (r.mpiUp) {
    MPI_Finalize();
    r.mpiUp = false;
  }
  return status;
}

int perfMainImpl(Run& r, int argc, char** argv) {
  std::string error;
  ParseStatus st = parseOptions(argc, argv, &r.opt, &error);
  if (st == ParseStatus::kOk) {
    error = recoveryUsageError(r.opt);
    if (!error.empty()) st = ParseStatus::kError;
  }
  if (st != ParseStatus::kOk) {
    if (launcherRank() == 0) {
      if (st == ParseStatus::kError) std::fprintf(stderr, "%s: %s\n", r.tool->name, error.c_str());
      printUsage(st == ParseStatus::kHelp ? stdout : stderr, r.tool->name);
    }
    return st == ParseStatus::kHelp ? 0 : 2;
  }
  prepareFaultPlan(r.opt.fault);

  if (!bootstrap(r, &argc, &argv)) return fail(r);
  if (r.tool->usesRoot && !r.opt.allRoots && r.opt.root >= r.nranks) {
    if (isRoot(r)) {
      std::fprintf(stderr, "%s: invalid root %d for %d ranks\n", r.tool->name, r.opt.root,
                   r.nranks);
    }
    if (r.stream) ftcclStreamDestroy(r.stream);
    ftcclCommDestroy(r.comm);
    if (r.mpiUp) MPI_Finalize();
    return 2;
  }
  if (r.opt.recovery.enabled) r.recovery = std::make_unique<Recovery>(r.opt.fault, r.spare);
  r.reporter = isRoot(r);
  r.faultArmed = !r.spare;

  allocBuffers(r);  // a spare too, before it waits: it joins without delay
  planSteps(r);
  if (r.spare) {
    bool done = false;
    if (!awaitActivation(r, &done)) return failRun(r);
    if (done) return finish(r, 0);  // never needed: stand down quietly
  } else {
    printPreamble(r);
  }
  if (!runSteps(r)) return failRun(r);

  const Totals t = totals(r);
  int status = 0;
  if (r.reporter && !report(r, t)) status = 1;
  if (t.wrong > 0) status = 1;
  status = finish(r, status);
  if (r.recovery) status = printVerdict(r, status, "");
  return status;
}

}  // namespace

int perfMain(int argc, char** argv, const CollTool& tool) {
  setvbuf(stdout, nullptr, _IOLBF, 0);  // every line shows up as it is printed
  Run r;
  r.tool = &tool;
  try {
    return perfMainImpl(r, argc, argv);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "[rank %d] %s: out of memory (buffers of %zu bytes)\n", r.rank, tool.name,
                 r.bufBytes);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[rank %d] %s: %s\n", r.rank, tool.name, e.what());
  } catch (...) {
    std::fprintf(stderr, "[rank %d] %s: unknown exception\n", r.rank, tool.name);
  }
  return fail(r);
}

}  // namespace ftperf
