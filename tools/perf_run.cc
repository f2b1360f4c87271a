// perfMain(), the shared main of the perf tools, and the calls every piece of the run
// makes; see perf_run.h.
#include "perf_run.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace ftperf {

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

namespace {

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
