// The perf tools' results and their formatting: the nccl-tests table (header and rows),
// the bandwidths, and the JSON report (-J).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "ftccl.h"

namespace ftperf {

// What the library itself counted during a timed loop (ftcclCommGetStats, this rank).
struct LibraryCount {
  bool valid = false;
  unsigned long long ops = 0, bytes = 0, sentBytes = 0;
  double timeUs = 0;  // time inside the ops
};

struct PlacementResult {
  double timeUs = 0;
  double algBw = 0;      // GB/s
  double busBw = 0;      // GB/s
  long long wrong = -1;  // -1: not checked
  LibraryCount library;
};

struct ResultRow {
  size_t bytes = 0;
  size_t count = 0;
  ftcclDataType_t type = ftcclFloat32;
  std::string redop;  // "sum"..., "none" for broadcast
  int root = -1;      // -1 for collectives without a root
  PlacementResult oop;
  PlacementResult ip;
};

// algbw = bytes / time (GB/s, 1e9); busbw = algbw * factor. 0 when time is 0.
void computeBandwidth(size_t bytes, double seconds, double busFactor, double* algBw, double* busBw);
std::string formatTimeUs(double us);  // nccl-tests: %7.0f / %7.1f / %7.2f
std::string formatTableHeader();      // the three "#" column header lines
std::string formatRow(const ResultRow& row);
std::string resultsJson(const char* tool, int nranks, const std::vector<ResultRow>& rows,
                        double avgBusBw, long long wrongTotal);

}  // namespace ftperf
