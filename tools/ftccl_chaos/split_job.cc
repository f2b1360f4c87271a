// A chaos workload with several communicators: every process holds the world
// communicator (ranks and hot spares), and the ranks split it into two children (even and
// odd ranks) every few steps, run checked all-reduces on their child, and destroy it. A
// fault from outside may then strike during a split, while a child and the world are both
// in use, or during a rebuild. After any failure each survivor aborts its child, rebuilds
// the world (onto spares, or shrinking), agrees on the step to go on from, and goes on.
//
// It prints the lines tools/ftccl_chaos reads from the perf tools: "[rank R] split_job:
// ftcclX failed: ..." for an error, "... N wrong elements ..." for a wrong result, and
// one "PERF_VERDICT rank=P PASS|FAIL ..." per process that lives to the end.
//
// With --joiners J the last J processes start without a rank: they wait for the join id
// that rank 0 writes (after init and after each rebuild) into FTCCL_CHAOS_DIR, join the
// spare pool with ftcclCommJoinAsSpare a moment later, and stand by like the spares, so
// a fault may strike while one joins.
//
// usage (under ftccl_run, FTCCL_RANK/FTCCL_NRANKS/FTCCL_COMM_ID set):
//   split_job --spares S [--joiners J] [--steps N] [--split-every K] [--count C]
//             [--no-shrink]
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "ftccl.h"

namespace {

struct Options {
  int spares = 0;
  int joiners = 0;
  long steps = 2000;
  long splitEvery = 10;
  size_t count = 4096;
  bool shrink = true;
};

struct State {
  int process = -1;  // FTCCL_RANK: the launcher's index
  ftcclComm_t world = nullptr;
  int rank = -1, nranks = 0;
  long step = 0;
  int rebuilds = 0;
  bool holdsState = true;  // an activated spare has none until the first agreement
  std::string problem;
};

bool parse(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (a == "--no-shrink") {
      o->shrink = false;
      continue;
    }
    if (v == nullptr) return false;
    ++i;
    if (a == "--spares")
      o->spares = std::atoi(v);
    else if (a == "--joiners")
      o->joiners = std::atoi(v);
    else if (a == "--steps")
      o->steps = std::atol(v);
    else if (a == "--split-every")
      o->splitEvery = std::max(1L, std::atol(v));
    else if (a == "--count")
      o->count = static_cast<size_t>(std::atol(v));
    else
      return false;
  }
  return o->spares >= 0 && o->joiners >= 0 && o->steps > 0;
}

bool isFailure(ftcclResult_t r) { return r == ftcclRemoteError || r == ftcclTimeout; }

// "[rank R] split_job: CALL failed: ..." (the error the chaos tool reads as clear).
void reportError(State& s, ftcclResult_t r, const char* call, ftcclComm_t comm) {
  std::printf("[rank %d] split_job: %s failed: %s (%d): %s\n", s.rank, call, ftcclGetErrorString(r),
              static_cast<int>(r), ftcclGetLastError(comm));
  std::fflush(stdout);
  if (s.problem.empty()) s.problem = std::string(call) + " failed";
}

// An error other than a peer's failure is reported; a peer's failure is noted (the
// caller recovers from it).
ftcclResult_t note(State& s, ftcclResult_t r, const char* call, ftcclComm_t comm) {
  if (r != ftcclSuccess && !isFailure(r)) {
    reportError(s, r, call, comm);
  } else if (isFailure(r)) {
    std::printf("[rank %d] # failure detected: %s: %s\n", s.rank, call, ftcclGetLastError(comm));
  }
  std::fflush(stdout);
  return r;
}

// Every rank contributes step + rank + i % 7 at element i: the sum is known exactly.
ftcclResult_t checkedAllReduce(State& s, ftcclComm_t comm, size_t count, long step,
                               const char* what) {
  int rank = 0, n = 0;
  ftcclCommUserRank(comm, &rank);
  ftcclCommCount(comm, &n);
  std::vector<int32_t> data(count);
  for (size_t i = 0; i < count; ++i) data[i] = static_cast<int32_t>(step + rank + i % 7);
  ftcclResult_t r =
      note(s, ftcclAllReduce(data.data(), data.data(), count, ftcclInt32, ftcclSum, comm, nullptr),
           what, comm);
  if (r != ftcclSuccess) return r;
  long wrong = 0;
  for (size_t i = 0; i < count; ++i) {
    int64_t expected = int64_t{n} * (step + static_cast<int64_t>(i % 7)) + int64_t{n} * (n - 1) / 2;
    if (data[i] != static_cast<int32_t>(expected)) ++wrong;
  }
  if (wrong > 0) {
    std::printf("[rank %d] split_job: %s at step %ld: %ld wrong elements\n", s.rank, what, step,
                wrong);
    s.problem = "wrong values";
  }
  return r;
}

// One step: the world all-reduce, and every splitEvery steps a split, two all-reduces on
// the child (whose size each rank reads from it), and its destroy.
ftcclResult_t runStep(State& s, const Options& o) {
  ftcclResult_t r = checkedAllReduce(s, s.world, o.count, s.step, "ftcclAllReduce (world)");
  if (r != ftcclSuccess || s.step % o.splitEvery != 0) return r;
  ftcclComm_t child = nullptr;
  r = note(s, ftcclCommSplit(s.world, s.rank % 2, s.rank, &child, nullptr), "ftcclCommSplit",
           s.world);
  if (r != ftcclSuccess) {
    if (child != nullptr) ftcclCommAbort(child);
    return r;
  }
  for (int k = 0; k < 2 && r == ftcclSuccess; ++k) {
    r = checkedAllReduce(s, child, o.count / 2 + 1, s.step + k, "ftcclAllReduce (child)");
  }
  // A failed child is aborted (its peers may be gone), a healthy one left in order.
  ftcclResult_t ended = r == ftcclSuccess ? ftcclCommDestroy(child) : ftcclCommAbort(child);
  if (r == ftcclSuccess) r = note(s, ended, "ftcclCommDestroy (child)", nullptr);
  return r;
}

// Where rank 0 leaves a join id for the joiners (the chaos tool's run directory).
std::string joinIdPath() {
  const char* dir = std::getenv("FTCCL_CHAOS_DIR");
  return std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/split_job-" +
         std::to_string(getppid()) + ".joinid";
}

// Rank 0 (after init and each rebuild): a fresh join id, written whole (rename).
void publishJoinId(const State& s, const Options& o) {
  if (o.joiners == 0 || s.rank != 0) return;
  ftcclUniqueId id;
  if (ftcclCommGetJoinId(s.world, &id) != ftcclSuccess) return;
  std::string path = joinIdPath(), temporary = path + ".tmp";
  if (FILE* f = std::fopen(temporary.c_str(), "wb")) {
    bool whole = std::fwrite(&id, sizeof(id), 1, f) == 1;
    if (std::fclose(f) == 0 && whole) std::rename(temporary.c_str(), path.c_str());
  }
}

// After a failure: rebuild the world until an agreement on the step holds.
bool recover(State& s, const Options* options) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    ftcclRebuildInfo_t info;
    ftcclResult_t r = ftcclCommRebuild(s.world, &info);
    if (r != ftcclSuccess) {
      reportError(s, r, "ftcclCommRebuild", s.world);  // expelled, or no spare and no shrink
      return false;
    }
    ++s.rebuilds;
    ftcclCommUserRank(s.world, &s.rank);
    ftcclCommCount(s.world, &s.nranks);
    publishJoinId(s, *options);
    long mine = s.holdsState ? s.step : LONG_MAX;
    long agreed = mine;
    r = note(s, ftcclAllReduce(&mine, &agreed, 1, ftcclInt64, ftcclMin, s.world, nullptr),
             "ftcclAllReduce (resync)", s.world);
    if (r == ftcclSuccess) {
      s.step = agreed;
      s.holdsState = true;
      return true;
    }
    if (!isFailure(r)) return false;
  }
  s.problem = "8 rebuilds in a row failed to resynchronise";
  return false;
}

// A joiner: waits for a join id and joins a moment later. A join through a member that
// died fails (after the bootstrap timeout); it is tried again only with another id, the
// one the next rank 0 publishes after its rebuild. If none comes (the job ended first),
// or rank 0 marks the job ended (a ".ended" file), the joiner gives up and stands down:
// it never was a member. 25 s at most, inside the chaos tool's hang bound.
ftcclResult_t joinPool(State& s, ftcclConfig_t* config, bool* gaveUp) {
  std::this_thread::sleep_for(std::chrono::milliseconds(50 + s.process * 37 % 400));
  ftcclResult_t r = ftcclInternalError;
  ftcclUniqueId failed;
  bool tried = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(25);
  while (std::chrono::steady_clock::now() < deadline) {
    ftcclUniqueId id;
    FILE* f = std::fopen(joinIdPath().c_str(), "rb");
    bool read = f != nullptr && std::fread(&id, sizeof(id), 1, f) == 1;
    if (f != nullptr) std::fclose(f);
    if (FILE* ended = std::fopen((joinIdPath() + ".ended").c_str(), "rb")) {
      std::fclose(ended);  // rank 0 finished the job: nothing left to join
      *gaveUp = true;
      return r;
    }
    if (read && !(tried && std::memcmp(&id, &failed, sizeof(id)) == 0)) {
      r = ftcclCommJoinAsSpare(&s.world, id, config);
      if (r == ftcclSuccess) return r;
      std::printf("[process %d] # join failed; waiting for another join id: %s\n", s.process,
                  ftcclGetLastError(nullptr));
      failed = id;
      tried = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  *gaveUp = tried;
  return r;
}

int verdict(const State& s, bool pass, const char* role) {
  std::printf(
      "PERF_VERDICT rank=%d %s %s, rank %d of %d, rebuilds %d, detection_ms -1.00, "
      "recovery_ms -1.00%s%s\n",
      s.process, pass ? "PASS" : "FAIL", role, s.rank, s.nranks, s.rebuilds,
      s.problem.empty() ? "" : ": ", s.problem.c_str());
  std::fflush(stdout);
  return pass ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  Options o;
  const char* rankText = std::getenv("FTCCL_RANK");
  const char* sizeText = std::getenv("FTCCL_NRANKS");
  const bool help = argc > 1 && (!std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help"));
  if (help || !parse(argc, argv, &o) || rankText == nullptr || sizeText == nullptr) {
    std::fprintf(help ? stdout : stderr,
                 "usage (under ftccl_run): split_job --spares S [--joiners J] [--steps N] "
                 "[--split-every K] [--count C] [--no-shrink]\n"
                 "A chaos workload of split communicators (tools/ftccl_chaos runs it).\n");
    return help ? 0 : 2;
  }
  State s;
  s.process = std::atoi(rankText);
  int processes = std::atoi(sizeText);
  ftcclUniqueId id;
  if (ftcclGetUniqueId(&id) != ftcclSuccess) {
    std::printf("[rank %d] split_job: ftcclGetUniqueId failed: %s\n", s.process,
                ftcclGetLastError(nullptr));
    return 1;
  }
  ftcclConfig_t config = FTCCL_CONFIG_INITIALIZER;
  config.nSpares = o.spares;
  config.shrinkWhenNoSpares = o.shrink ? 1 : 0;
  bool joiner = s.process >= processes - o.joiners;
  ftcclConfig_t joinConfig = FTCCL_CONFIG_INITIALIZER;  // the pool's size is the members'
  joinConfig.shrinkWhenNoSpares = config.shrinkWhenNoSpares;
  bool gaveUp = false;
  ftcclResult_t r = joiner ? joinPool(s, &joinConfig, &gaveUp)
                           : ftcclCommInitRankConfig(&s.world, processes - o.spares - o.joiners, id,
                                                     s.process, &config);
  if (r != ftcclSuccess && gaveUp) {
    std::printf(
        "[process %d] # no member to join through before the job ended; standing "
        "down\n",
        s.process);
    return 0;
  }
  if (r != ftcclSuccess) {
    std::printf("[rank %d] split_job: %s failed: %s (%d): %s\n", s.process,
                joiner ? "ftcclCommJoinAsSpare" : "ftcclCommInitRank", ftcclGetErrorString(r),
                static_cast<int>(r), ftcclGetLastError(nullptr));
    return 1;
  }
  ftcclCommUserRank(s.world, &s.rank);
  ftcclCommCount(s.world, &s.nranks);
  publishJoinId(s, o);
  const char* role = s.rank < 0 ? "activated spare" : "rank";
  if (s.rank < 0) {
    int activated = 0;
    r = ftcclCommStandby(s.world, &activated);
    if (r != ftcclSuccess) {
      reportError(s, r, "ftcclCommStandby", s.world);
      ftcclCommAbort(s.world);
      return verdict(s, false, role);
    }
    if (activated == 0) {  // never needed
      ftcclCommDestroy(s.world);
      return 0;
    }
    s.holdsState = false;
    ftcclCommUserRank(s.world, &s.rank);
    ftcclCommCount(s.world, &s.nranks);
    publishJoinId(s, o);  // an activated spare may be the new rank 0
    s.rebuilds = 1;
    long mine = LONG_MAX, agreed = 0;
    r = ftcclAllReduce(&mine, &agreed, 1, ftcclInt64, ftcclMin, s.world, nullptr);
    if (r == ftcclSuccess) {
      s.step = agreed;
      s.holdsState = true;
    } else if (!isFailure(r) || !recover(s, &o)) {
      if (s.problem.empty()) reportError(s, r, "ftcclAllReduce (resync)", s.world);
      ftcclCommAbort(s.world);
      return verdict(s, false, role);
    }
  }
  while (s.step < o.steps && s.problem.empty()) {
    r = runStep(s, o);
    if (r == ftcclSuccess) {
      ++s.step;
    } else if (!isFailure(r) || !recover(s, &o)) {
      if (s.problem.empty()) reportError(s, r, "ftcclAllReduce (world)", s.world);
      break;
    }
  }
  bool pass = s.problem.empty() && s.step >= o.steps;
  if (o.joiners > 0 && s.rank == 0) {  // no more joins: a joiner still waiting stands down
    if (FILE* ended = std::fopen((joinIdPath() + ".ended").c_str(), "wb")) std::fclose(ended);
  }
  if (pass) {
    r = ftcclCommDestroy(s.world);
    if (r != ftcclSuccess) {
      note(s, r, "ftcclCommDestroy", nullptr);
      pass = false;
    }
  } else {
    ftcclCommAbort(s.world);
  }
  return verdict(s, pass, role);
}
