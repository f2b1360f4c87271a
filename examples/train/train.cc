// train: data-parallel SGD that survives the death of a rank (DESIGN.md section 4).
//
//   ftccl_run -n P -- train [--steps N] [--spares S] [--kill-rank R --kill-step K]
//                           [--dim D] [--batch B] [--lr LR] [--seed X] [--log-every N]
//                           [--out FILE] [--quiet]
//
// The model is a linear regression on synthetic data. Every sample is a pure function
// of (seed, step, global sample index), and rank r of n takes samples
// [r*B/n, (r+1)*B/n) of each step, so the gradient sum (and hence the run) is bitwise
// reproducible for a given number of ranks, whichever processes hold them. Each step
// all-reduces the local gradient (its last element is the local loss) and applies the
// same SGD update on every rank. The loss falls by about a factor 1 - 0.75 B/D per
// step, so the verdict's 10x needs enough steps when D is much larger than B.
//
// The last S of the P processes are hot spares. When a collective fails with
// ftcclRemoteError or ftcclTimeout, every member rebuilds the communicator (a spare
// takes the dead rank's number, or the group shrinks when none is left), then all
// members take the parameters and the step counter of one member that still holds
// valid state, and training goes on from there. With spares the result is bitwise
// equal to a run without faults.
//
// Every process ends with "TRAIN_VERDICT rank=R PASS|FAIL ...", R being FTCCL_RANK;
// the final rank 0 prints "train: steps=... final_loss=... wall_ms=... faults=...".
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ftccl.h"

namespace {

using Clock = std::chrono::steady_clock;

double nowMs() {
  return std::chrono::duration<double, std::milli>(Clock::now().time_since_epoch()).count();
}

// ---------------------------------------------------------------------------------
// Command line and environment

struct Options {
  long steps = 200;
  int spares = 0;
  int killRank = -1;  // FTCCL_RANK of the process that kills itself
  long killStep = -1;
  int dim = 4096;
  int batch = 256;
  double lr = -1;  // < 0: 0.5 * batch, see Problem
  uint64_t seed = 1;
  long logEvery = 20;
  std::string out;
  bool quiet = false;
};

// A decimal in [minValue, INT_MAX], so that every option fits in an int.
bool parseLong(const char* text, long minValue, long* out) {
  char* end = nullptr;
  long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || value < minValue || value > INT_MAX) return false;
  *out = value;
  return true;
}

bool parse(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quiet") {
      o->quiet = true;
      continue;
    }
    if (i + 1 >= argc) return false;
    const char* v = argv[++i];
    long n = 0;
    if (a == "--out") {
      o->out = v;
    } else if (a == "--lr") {
      o->lr = std::atof(v);
      if (!(o->lr > 0)) return false;
    } else if (!parseLong(v, 0, &n)) {
      return false;
    } else if (a == "--steps" && n >= 1) {
      o->steps = n;
    } else if (a == "--spares") {
      o->spares = static_cast<int>(n);
    } else if (a == "--kill-rank") {
      o->killRank = static_cast<int>(n);
    } else if (a == "--kill-step") {
      o->killStep = n;
    } else if (a == "--dim" && n >= 1 && n <= (1 << 26)) {
      o->dim = static_cast<int>(n);
    } else if (a == "--batch" && n >= 1 && n <= (1 << 24)) {
      o->batch = static_cast<int>(n);
    } else if (a == "--seed") {
      o->seed = static_cast<uint64_t>(n);
    } else if (a == "--log-every" && n >= 1) {
      o->logEvery = n;
    } else {
      return false;
    }
  }
  return true;
}

int envInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

// ---------------------------------------------------------------------------------
// The synthetic problem: y = w* . x with x uniform, scaled so that |x| ~ 1. For such
// samples least-squares SGD on the batch mean is stable up to a step of about B (for
// B << D); half of that converges fast without oscillating.

// splitmix64: a counter-based generator, so any sample can be made by any rank.
uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// A float in [-1, 1) from the top 24 bits: exact, the same on every machine.
float symmetric(uint64_t bits) {
  return static_cast<float>(bits >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

struct Problem {
  int dim;
  int batch;
  uint64_t seed;
  float lr;
  float scale;  // sqrt(3 / dim): unit expected norm for uniform [-1, 1) entries
  std::vector<float> truth;

  Problem(const Options& o)
      : dim(o.dim),
        batch(o.batch),
        seed(o.seed),
        lr(static_cast<float>(o.lr > 0 ? o.lr : 0.5 * o.batch)),
        scale(std::sqrt(3.0f / static_cast<float>(o.dim))),
        truth(o.dim) {
    uint64_t base = mix(seed ^ 0x7275746877ull);
    for (int i = 0; i < dim; ++i) truth[i] = symmetric(mix(base + i));
  }

  // Sample `index` of step `step` into x; returns its target.
  float sample(long step, long index, float* x) const {
    uint64_t base = mix(mix(seed) ^ mix(static_cast<uint64_t>(step) * 0x100000001ull + index));
    float y = 0;
    for (int i = 0; i < dim; ++i) {
      x[i] = symmetric(mix(base + i)) * scale;
      y += truth[i] * x[i];
    }
    return y;
  }

  // Sums, over this rank's shard of the step, the gradient of 0.5 * (w.x - y)^2 into
  // grad[0, dim) and the loss into grad[dim]. Fixed order: bitwise reproducible.
  void localGradient(const std::vector<float>& w, long step, int rank, int nranks,
                     std::vector<float>* grad) const {
    std::fill(grad->begin(), grad->end(), 0.0f);
    std::vector<float> x(dim);
    long first = static_cast<long>(batch) * rank / nranks;
    long last = static_cast<long>(batch) * (rank + 1) / nranks;
    for (long s = first; s < last; ++s) {
      float y = sample(step, s, x.data());
      float err = -y;
      for (int i = 0; i < dim; ++i) err += w[i] * x[i];
      for (int i = 0; i < dim; ++i) (*grad)[i] += err * x[i];
      (*grad)[dim] += 0.5f * err * err;
    }
  }

  // The SGD update from the all-reduced sums; returns the batch's mean loss.
  float apply(const std::vector<float>& sums, std::vector<float>* w) const {
    float step = lr / static_cast<float>(batch);
    for (int i = 0; i < dim; ++i) (*w)[i] -= step * sums[i];
    return sums[dim] / static_cast<float>(batch);
  }
};

// ---------------------------------------------------------------------------------
// Training state, and how it travels in a resynchronisation

struct State {
  std::vector<float> params;
  long step = 0;         // the next step to run
  float firstLoss = -1;  // the loss of step 0, for the verdict
  float lastLoss = -1;   // the loss of step `step - 1`
  long faults = 0;       // rebuilds so far
  bool valid = false;    // false on a spare until it received a state
};

// The header that precedes the parameters in the resync broadcast.
struct Header {
  int64_t step;
  int64_t faults;
  float firstLoss;
  float lastLoss;
};

std::vector<unsigned char> pack(const State& s) {
  Header h{s.step, s.faults, s.firstLoss, s.lastLoss};
  std::vector<unsigned char> bytes(sizeof h + s.params.size() * sizeof(float));
  std::memcpy(bytes.data(), &h, sizeof h);
  std::memcpy(bytes.data() + sizeof h, s.params.data(), s.params.size() * sizeof(float));
  return bytes;
}

void unpack(const std::vector<unsigned char>& bytes, State* s) {
  Header h;
  std::memcpy(&h, bytes.data(), sizeof h);
  std::memcpy(s->params.data(), bytes.data() + sizeof h, s->params.size() * sizeof(float));
  s->step = h.step;
  s->faults = h.faults;
  s->firstLoss = h.firstLoss;
  s->lastLoss = h.lastLoss;
  s->valid = true;
}

// ---------------------------------------------------------------------------------
// Communicator helpers

// Only a peer's failure (or a stall) is something to recover from; anything else is
// a bug here or in the library.
bool recoverable(ftcclResult_t r) { return r == ftcclRemoteError || r == ftcclTimeout; }

struct Member {
  ftcclComm_t comm = nullptr;
  int process = -1;  // FTCCL_RANK: stable for the life of the process
  int rank = -1;     // in the current epoch
  int nranks = 0;
};

bool refresh(Member* m) {
  return ftcclCommUserRank(m->comm, &m->rank) == ftcclSuccess &&
         ftcclCommCount(m->comm, &m->nranks) == ftcclSuccess;
}

// Why the run failed; empty while all is well.
std::string g_failure;

bool fail(const std::string& why) {
  if (g_failure.empty()) g_failure = why;
  return false;
}

std::string failedList(ftcclComm_t comm) {
  int failed[64];
  int n = 0;
  if (ftcclCommFailedRanks(comm, failed, 64, &n) != ftcclSuccess) return "?";
  std::string text;
  for (int i = 0; i < std::min(n, 64); ++i) text += (i ? "," : "") + std::to_string(failed[i]);
  return text;
}

// Waits for the new epoch. A failed rebuild (expelled, no majority, agreement timed
// out) is final: the library already retries failures that happen during agreement.
bool rebuild(Member* m, State* state, double* rebuildMs) {
  double t0 = nowMs();
  ftcclRebuildInfo_t info{};
  ftcclResult_t r = ftcclCommRebuild(m->comm, &info);
  double ms = nowMs() - t0;
  *rebuildMs += ms;
  if (r != ftcclSuccess) {
    return fail(std::string("rebuild: ") + ftcclGetErrorString(r) + ": " +
                ftcclGetLastError(m->comm));
  }
  int oldRank = m->rank;
  if (!refresh(m)) return fail(std::string("after rebuild: ") + ftcclGetLastError(m->comm));
  ++state->faults;
  std::printf(
      "rebuild: rank %d -> %d of %d, epoch %llu, failed [%s] (old numbering), "
      "replaced %d, shrunk %d, spares left %d, %.1f ms\n",
      oldRank, m->rank, m->nranks, info.epoch, failedList(m->comm).c_str(), info.nReplaced,
      info.shrunk, info.sparesLeft, ms);
  return true;
}

// Everyone takes the state of one member that holds a valid one.
//
// The root. DESIGN.md says "the lowest rank not in the failed list". That is right
// after a rebuild by spares alone: the failed numbers are now held by fresh spares,
// every other number by the same process as before. It is not enough in general:
// after a shrink the failed list is in the old numbering and the survivors were
// renumbered; a rebuild may both replace and shrink; and a spare activated in an
// earlier rebuild whose resync then failed holds a rank number that is not in the
// latest failed list, yet no state. So each member says itself whether it holds a
// valid state, and one all-reduce (min) names the lowest such rank. Every member but
// a spare still waiting for its first state is valid: its state is the outcome of
// the last step whose all-reduce succeeded for it. Members may be one step apart (an
// all-reduce can succeed on some ranks and fail on others), but both states lie on
// the fault-free trajectory, so the run stays deterministic whichever is chosen.
//
// The broadcast lands in a staging buffer: one that fails half way (its buffers are
// undefined) leaves every member's own state, and so its validity, intact.
ftcclResult_t resync(Member* m, State* state, int* root) {
  int32_t candidate = state->valid ? m->rank : INT32_MAX;
  ftcclResult_t r =
      ftcclAllReduce(&candidate, &candidate, 1, ftcclInt32, ftcclMin, m->comm, nullptr);
  if (r != ftcclSuccess) return r;
  if (candidate == INT32_MAX) {
    fail("no surviving member holds the training state");
    return ftcclInternalError;
  }
  *root = candidate;
  std::vector<unsigned char> mine = pack(*state);
  std::vector<unsigned char> staging(mine.size());
  r = ftcclBroadcast(mine.data(), staging.data(), staging.size(), ftcclUint8, *root, m->comm,
                     nullptr);
  if (r == ftcclSuccess) unpack(staging, state);
  return r;
}

// Rebuild and resync, again and again while further failures strike the resync.
bool recover(Member* m, State* state, bool needRebuild, double* rebuildMs) {
  for (int attempt = 0;; ++attempt) {
    if (needRebuild && !rebuild(m, state, rebuildMs)) return false;
    int root = -1;
    ftcclResult_t r = resync(m, state, &root);
    if (r == ftcclSuccess) {
      std::printf("resync: from rank %d, resuming at step %ld\n", root, state->step);
      return true;
    }
    if (!recoverable(r) || attempt >= 16) {
      return fail(std::string("resync: ") + ftcclGetErrorString(r) + ": " +
                  ftcclGetLastError(m->comm));
    }
    std::printf("resync failed (%s), rebuilding again\n", ftcclGetLastError(m->comm));
    needRebuild = true;
  }
}

// ---------------------------------------------------------------------------------
// The training loop

// A fault being recovered from: reported once the run is back at the step it failed
// in, so that "lost" covers detection, rebuild, resync and any step done again.
struct PendingFault {
  bool active = false;
  long step = 0;
  double stepStart = 0;
  double detectMs = 0;
  double rebuildMs = 0;
};

void reportFault(const PendingFault& f, double now, const char* note) {
  std::printf(
      "fault: detected after %.1f ms (from the step start to the error), rebuild "
      "%.1f ms, lost %.1f ms%s\n",
      f.detectMs, f.rebuildMs, now - f.stepStart, note);
}

// Mean step time over the steps since the last log line.
struct Interval {
  double start = 0;
  long steps = 0;
};

bool train(const Options& o, const Problem& problem, Member* m, State* state) {
  std::vector<float> sums(problem.dim + 1);
  PendingFault pending;
  Interval interval{nowMs(), 0};
  while (state->step < o.steps) {
    long step = state->step;
    double stepStart = nowMs();
    if (pending.active && step == pending.step) {
      reportFault(pending, stepStart, "");
      pending.active = false;
    }
    if (m->process == o.killRank && step == o.killStep) {
      std::printf("killing myself (process %d, rank %d) at step %ld\n", m->process, m->rank, step);
      std::fflush(stdout);
      raise(SIGKILL);
    }
    problem.localGradient(state->params, step, m->rank, m->nranks, &sums);
    ftcclResult_t r = ftcclAllReduce(sums.data(), sums.data(), sums.size(), ftcclFloat32, ftcclSum,
                                     m->comm, nullptr);
    if (r != ftcclSuccess) {
      double detectMs = nowMs() - stepStart;
      std::printf("step %ld: %s: %s\n", step, ftcclGetErrorString(r), ftcclGetLastError(m->comm));
      if (!recoverable(r)) return fail("all-reduce: " + std::string(ftcclGetErrorString(r)));
      if (pending.active) reportFault(pending, stepStart, " (cut short by another fault)");
      pending = PendingFault{true, step, stepStart, detectMs, 0};
      if (!recover(m, state, true, &pending.rebuildMs)) return false;
      interval = Interval{nowMs(), 0};
      continue;
    }
    state->lastLoss = problem.apply(sums, &state->params);
    if (step == 0) state->firstLoss = state->lastLoss;
    state->step = step + 1;
    ++interval.steps;
    if (state->step % o.logEvery == 0 || state->step == o.steps) {
      double now = nowMs();
      if (m->rank == 0 && !o.quiet) {
        std::printf("step %ld loss %.6e step_ms %.3f\n", state->step, state->lastLoss,
                    (now - interval.start) / interval.steps);
      }
      interval = Interval{now, 0};
    }
  }
  if (pending.active) reportFault(pending, nowMs(), " (the run ended first)");
  return true;
}

// ---------------------------------------------------------------------------------
// Start and end of a process

bool writeParams(const std::string& path, const std::vector<float>& params) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  size_t n = std::fwrite(params.data(), sizeof(float), params.size(), f);
  return std::fclose(f) == 0 && n == params.size();
}

bool join(const Options& o, int nranks, Member* m) {
  ftcclUniqueId id;
  ftcclConfig_t cfg = FTCCL_CONFIG_INITIALIZER;
  cfg.nSpares = o.spares;
  cfg.shrinkWhenNoSpares = 1;
  if (ftcclGetUniqueId(&id) != ftcclSuccess ||
      ftcclCommInitRankConfig(&m->comm, nranks, id, m->process, &cfg) != ftcclSuccess) {
    return fail(std::string("init: ") + ftcclGetLastError(nullptr));
  }
  return refresh(m) || fail(std::string("init: ") + ftcclGetLastError(m->comm));
}

// A spare waits for a rank, then takes the state from the survivors. *needed is false
// when every active member left in order without needing it.
bool standby(Member* m, State* state, bool* needed) {
  double t0 = nowMs();
  int activated = 0;
  ftcclResult_t r = ftcclCommStandby(m->comm, &activated);
  if (r != ftcclSuccess) return fail(std::string("standby: ") + ftcclGetLastError(m->comm));
  *needed = activated == 1;
  if (!*needed) {
    std::printf("standby: the run ended without needing this spare\n");
    return true;
  }
  if (!refresh(m)) return fail(std::string("after standby: ") + ftcclGetLastError(m->comm));
  std::printf("standby: activated as rank %d of %d after %.1f ms\n", m->rank, m->nranks,
              nowMs() - t0);
  double rebuildMs = 0;
  return recover(m, state, false, &rebuildMs);
}

// The summary, the parameters file and the loss check; records a failure, if any.
bool finish(const Options& o, const Member& m, const State& state, double wallMs) {
  if (m.rank == 0) {
    std::printf("train: steps=%ld final_loss=%.6e wall_ms=%.1f faults=%ld\n", state.step,
                state.lastLoss, wallMs, state.faults);
    if (!o.out.empty() && !writeParams(o.out, state.params)) {
      return fail("cannot write " + o.out);
    }
  }
  if (!(state.lastLoss * 10 < state.firstLoss)) {
    return fail("the loss did not fall 10x: " + std::to_string(state.firstLoss) + " -> " +
                std::to_string(state.lastLoss));
  }
  return true;
}

int verdict(const Member& m, const State& state) {
  bool pass = g_failure.empty();
  std::string what = "spare, never activated";
  if (state.valid) {
    char text[96];
    std::snprintf(text, sizeof text, "first_loss=%.6e final_loss=%.6e", state.firstLoss,
                  state.lastLoss);
    what = text;
  }
  std::printf("TRAIN_VERDICT rank=%d %s comm_rank=%d %s%s%s\n", m.process, pass ? "PASS" : "FAIL",
              m.rank, what.c_str(), pass ? "" : " problem: ", g_failure.c_str());
  std::fflush(stdout);
  return pass ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // whole lines, even through the launcher's pipe
  Options o;
  const bool help = argc > 1 && (!std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help"));
  if (help || !parse(argc, argv, &o)) {
    std::fprintf(help ? stdout : stderr,
                 "usage: ftccl_run -n P -- train [--steps N] [--spares S] [--kill-rank R "
                 "--kill-step K]\n"
                 "         [--dim D] [--batch B] [--lr LR] [--seed X] [--log-every N] "
                 "[--out FILE] [--quiet]\n"
                 "Data-parallel SGD that survives the death of a rank; the last S of the P "
                 "processes\nare hot spares. See the comment at the top of "
                 "examples/train/train.cc.\n");
    return help ? 0 : 2;
  }
  Member m;
  m.process = envInt("FTCCL_RANK", -1);
  int processes = envInt("FTCCL_NRANKS", -1);
  int nranks = processes - o.spares;
  if (m.process < 0 || nranks < 1 || m.process >= processes) {
    std::fprintf(stderr,
                 "train: run me under ftccl_run with more processes than --spares "
                 "(FTCCL_RANK=%d FTCCL_NRANKS=%d)\n",
                 m.process, processes);
    return 2;
  }
  Problem problem(o);
  State state;
  state.params.assign(problem.dim, 0.0f);
  state.valid = m.process < nranks;  // every active rank starts from the same zeros

  bool ok = join(o, nranks, &m);
  double start = nowMs();
  bool needed = true;
  if (ok && m.rank < 0) ok = standby(&m, &state, &needed);
  if (ok && needed) ok = train(o, problem, &m, &state);
  if (ok && needed) finish(o, m, state, nowMs() - start);  // a verdict only: the comm is fine
  if (m.comm != nullptr) {
    // After a failure peers may be gone or stuck: abort, which never waits for them.
    ftcclResult_t r = ok ? ftcclCommDestroy(m.comm) : ftcclCommAbort(m.comm);
    if (r != ftcclSuccess) fail(std::string("destroy: ") + ftcclGetErrorString(r));
  }
  return verdict(m, state);
}
