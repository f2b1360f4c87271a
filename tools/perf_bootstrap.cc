// How the ranks of a perf tool find each other (MPI, FTCCL_COMM_ID, or one rank alone),
// and the preamble that says so; see perf_run.h.
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "perf_run.h"

namespace ftperf {
namespace {

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

// With --spares / --recover, the communicator has config.nSpares spares (the last
// processes, rank -1 until activated) and shrinks when more ranks fail than spares remain.
ftcclResult_t initComm(Run& r, const ftcclUniqueId& id, ftcclComm_t* comm) {
  if (!r.opt.recovery.enabled) return ftcclCommInitRank(comm, r.nranks, id, r.rank);
  ftcclConfig_t config = FTCCL_CONFIG_INITIALIZER;
  config.nSpares = r.opt.recovery.spares;
  config.shrinkWhenNoSpares = 1;
  return ftcclCommInitRankConfig(comm, r.nranks, id, r.process, &config);
}

}  // namespace

// Our rank as the launcher sees it, before any bootstrap: only it prints usage errors.
int launcherRank() {
  int rank = 0;
  if (envOrNull("FTCCL_COMM_ID") && envInt("FTCCL_RANK", &rank)) return rank;
  if (envInt("OMPI_COMM_WORLD_RANK", &rank) || envInt("PMI_RANK", &rank) ||
      envInt("PMIX_RANK", &rank))
    return rank;
  return 0;
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

}  // namespace ftperf
