// Shared code of the nccl-tests-style benchmarks (all_reduce_perf, broadcast_perf,
// reduce_perf, all_gather_perf, reduce_scatter_perf, sendrecv_perf).
//
// Uses only the public C API (ftccl.h) and MPI. A tool describes its collective in a
// CollTool (how to run it, its bus bandwidth factor, its inputs and expected output)
// and hands it to perfMain(), which does the rest: argument parsing, bootstrap,
// buffers, timing, data checks, nccl-tests-compatible output and the JSON report.
//
// The pieces: perf_types.h (element types, input patterns, checks), perf_options.h (the
// command line), perf_report.h (the table and the JSON); perfMain() itself is perf_run.cc.
#pragma once

#include <cstddef>

#include "ftccl.h"
#include "perf_options.h"
#include "perf_report.h"
#include "perf_types.h"

namespace ftperf {

// ---------------------------------------------------------------------------------
// The tool description and the shared main.
// ---------------------------------------------------------------------------------
// The buffers of one operation, in elements (nccl-tests' getCollByteCount). The size
// column is the larger buffer, the count column the count passed to the call. In place,
// one buffer (the larger) holds both: the send data starts rank * sendInPlaceOffset into
// it and the result rank * recvInPlaceOffset (AllGather sends from its own block of the
// gathered buffer; ReduceScatter leaves its block of the scattered buffer in place).
struct CollCounts {
  size_t send = 0;
  size_t recv = 0;
  size_t param = 0;
  size_t sendInPlaceOffset = 0;
  size_t recvInPlaceOffset = 0;
};

struct CollTool {
  const char* name;      // "all_reduce_perf"
  const char* collName;  // "ftcclAllReduce", for error messages
  bool usesOps;          // iterate -o (else the redop column says "none")
  bool usesRoot;         // iterate -r (else the root column says -1)
  double (*busBwFactor)(int nranks);
  // Enqueues one operation of `count` (CollCounts::param) elements; in place, sendbuff and
  // recvbuff point into the same buffer (equal unless the counts set in-place offsets).
  ftcclResult_t (*run)(const void* sendbuff, void* recvbuff, size_t count, ftcclDataType_t type,
                       ftcclRedOp_t op, int root, ftcclComm_t comm, ftcclStream_t stream);
  // buf[0..count) = this rank's input (count = CollCounts::send). Must depend on the
  // element index only, not on count.
  void (*fillInput)(void* buf, size_t count, ftcclDataType_t type, ftcclRedOp_t op, int root,
                    int rank, int nranks);
  // buf[0..count) = this rank's expected output (count = CollCounts::recv), same prefix
  // rule unless expectedPerSize.
  void (*fillExpected)(void* buf, size_t count, ftcclDataType_t type, ftcclRedOp_t op, int root,
                       int rank, int nranks);
  // The buffers for `count` = size / type size elements over nranks; send and recv may
  // round `count` down, never up (the buffers are allocated for the largest size). Null:
  // `count` elements each way, in place at offset 0 (AllReduce, Broadcast, Reduce).
  void (*counts)(size_t count, int nranks, CollCounts* out) = nullptr;
  // The expected output depends on the size, not only on the element index (the blocks of
  // AllGather / ReduceScatter move with the count): computed again for every checked size.
  bool expectedPerSize = false;
  // Only the root's receive buffer holds a result (Reduce): other ranks check nothing.
  bool rootOnlyResult = false;
};

// Everything but the collective-specific parts. Never throws; returns the exit status.
int perfMain(int argc, char** argv, const CollTool& tool);

}  // namespace ftperf
