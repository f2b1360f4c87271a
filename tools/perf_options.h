// The perf tools' command line: nccl-tests' flags and defaults, plus --fault, --slow,
// --spares and --recover; the usage text, and the message sizes a run steps through.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

#include "ftccl.h"
#include "perf_fault.h"
#include "perf_recovery.h"

namespace ftperf {

// --slow RANK:MS: rank RANK sleeps MS ms before each of its operations (a straggler on
// purpose, for the straggler detector).
struct SlowPlan {
  int rank = -1;
  int ms = 0;
  bool enabled() const { return rank >= 0; }
};

struct Options {
  size_t minBytes = 32u << 20;
  size_t maxBytes = 32u << 20;
  size_t stepBytes = 1u << 20;  // -i: additive step, used when stepFactor <= 1
  size_t stepFactor = 1;        // -f: multiplicative step when > 1
  int iters = 20;
  int warmupIters = 5;
  int check = 1;  // number of checked runs per size and placement; 0 disables
  std::vector<ftcclRedOp_t> ops{ftcclSum};
  std::vector<ftcclDataType_t> types{ftcclFloat32};
  int root = 0;
  bool allRoots = false;  // -r all (or -1)
  bool blocking = false;  // -z 1: the NULL stream, every call blocks
  std::string jsonFile;   // -J
  FaultPlan fault;        // --fault kill|stop|drop:RANK:ITER
  RecoveryPlan recovery;  // --spares S, --recover
  SlowPlan slow;          // --slow RANK:MS
};

enum class ParseStatus { kOk, kHelp, kError };
// Parses argv[1..argc). On kError, *error says why.
ParseStatus parseOptions(int argc, char* const* argv, Options* opts, std::string* error);
// "8", "1.5K", "64M", "2G", "64MB" (powers of 1024) -> bytes; false on garbage.
bool parseSize(const char* text, size_t* bytes);
// strtol (base 0) of all of `text`, within [lo, hi]; false on garbage or out of range.
bool parseInt(const char* text, long lo, long hi, long* out);
bool parseTypes(const std::string& text, std::vector<ftcclDataType_t>* out);  // name|all
bool parseOps(const std::string& text, std::vector<ftcclRedOp_t>* out);       // name|all
// The sizes min, min*f (or min+i), ... <= max; stops when a step would not grow.
std::vector<size_t> sizeSteps(const Options& opts);
void printUsage(FILE* out, const char* prog);

}  // namespace ftperf
