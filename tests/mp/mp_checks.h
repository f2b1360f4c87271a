// What the mpirun correctness programs share: this rank's place, case and failure
// counts, and the checks that report a failure once (the first 20 on stderr).
#pragma once

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ftccl.h"
#include "perf_common.h"

namespace mpcheck {

inline int gRank = 0, gRanks = 1;
inline int gCases = 0, gFailures = 0;

inline void fail(const std::string& what) {
  ++gFailures;
  if (gFailures <= 20) std::fprintf(stderr, "rank %d: FAIL %s\n", gRank, what.c_str());
}

inline bool ok(ftcclResult_t r, ftcclComm_t comm, const std::string& what) {
  if (r == ftcclSuccess) return true;
  fail(what + ": " + ftcclGetErrorString(r) + ": " + ftcclGetLastError(comm));
  return false;
}

// Every rank's fillReduceInput, combined in rank order: the exact answer.
inline std::vector<uint8_t> expectedReduction(size_t count, ftcclDataType_t type, ftcclRedOp_t op,
                                              int nranks) {
  using namespace ftperf;
  std::vector<uint8_t> out(count * typeSize(type) + 1);
  withType(type, [&](auto tag) {
    using T = decltype(tag);
    std::vector<T> acc(count), in(count);
    fillReduceInput(acc.data(), count, type, op, 0, nranks);
    for (int r = 1; r < nranks; ++r) {
      fillReduceInput(in.data(), count, type, op, r, nranks);
      for (size_t i = 0; i < count; ++i) acc[i] = refCombine(op, acc[i], in[i]);
    }
    if (op == ftcclAvg) {
      for (size_t i = 0; i < count; ++i) acc[i] = refAvgFinish(acc[i], nranks);
    }
    if (count) std::memcpy(out.data(), acc.data(), count * sizeof(T));
  });
  return out;
}

inline void check(const void* got, const void* want, size_t count, ftcclDataType_t type,
                  const std::string& name) {
  size_t first = 0;
  size_t wrong = ftperf::countMismatches(got, want, count, type, &first);
  if (wrong) {
    fail(name + ": " + std::to_string(wrong) + " wrong, first at " + std::to_string(first) +
         " got " + ftperf::elementHex(got, first, type) + " want " +
         ftperf::elementHex(want, first, type));
  }
}

}  // namespace mpcheck
