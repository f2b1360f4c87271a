// One run of a perf tool: the state perfMain() works on (Run) and the pieces of the run
// that share it, internal to ftccl_perf_common (the tools include perf_common.h):
//  perf_run.cc:       perfMain(), and the calls every piece makes (ok, barrier, MPI max/sum);
//  perf_bootstrap.cc: how the ranks find each other, and the preamble that says so;
//  perf_steps.cc:     the benchmark as a list of steps, planned, measured, checked, and
//                     taken up again after a rebuild.
#pragma once

// The C API of MPI only: keep Open MPI / MPICH from pulling in their C++ bindings.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "perf_common.h"

namespace ftperf {

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

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<unsigned char, FreeDeleter>;

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

inline bool isRoot(const Run& r) { return r.rank == 0; }

// perf_run.cc: the calls every piece makes.
// false unless `res` is success: a peer failure is noted for the rebuild (--spares), the
// planned fault (--fault) ends this survivor, anything else is printed.
bool ok(Run& r, ftcclResult_t res, const char* what);
bool sync(Run& r);                            // waits for the stream (none with -z 1)
bool barrier(Run& r);                         // MPI's, else an ftccl AllReduce
double maxOverRanks(Run& r, double v);        // under MPI; else v
long long sumOverRanks(Run& r, long long v);  // under MPI; else v
int fail(Run& r);                             // stops after an error; returns 1

// perf_bootstrap.cc: before and while the ranks meet.
int launcherRank();  // our rank per the launcher's environment, before any bootstrap
std::string recoveryUsageError(const Options& o);  // "" when --spares / --recover can run
bool bootstrap(Run& r, int* argc, char*** argv);   // mode, rank, nranks, comm, stream
void printPreamble(Run& r);                        // the "#" lines above the table

// perf_steps.cc: the benchmark.
void allocBuffers(Run& r);   // send, recv (and expected with -c) for the largest size
void planSteps(Run& r);      // r.combos, r.steps, r.table from the options
bool runSteps(Run& r);       // from r.step to the end, rebuilding after a peer failure
void adoptRecovery(Run& r);  // after a rebuild or an activation: the new rank and step

}  // namespace ftperf
