// Rebuild onto hot spares: the ranks run a fixed number of checked all-reduces; faults
// are injected on a schedule; after each failure every member rebuilds, takes the
// iteration counter from the lowest survivor, and goes on. Spares wait in
// ftcclCommStandby and join when activated; those never needed stand down when the
// ranks leave. No MPI after the fault (ranks come from ftccl_run or mpirun's env).
//
// usage: spares_mp --spares S [--iters N] [--kill P@ITER]... [--kill-in-rebuild P]
//                  [--expect-ranks N] [--expect-expelled P] [--joiners J] [--no-shrink]
//                  [--victim LIST] [--stamp FILE]
//   P is the process index (FTCCL_RANK or OMPI_COMM_WORLD_RANK): ranks 0..n-S-1 first,
//   then the spares. --kill P@ITER: P kills itself at iteration ITER (if it holds a
//   rank then). --kill-in-rebuild P: P kills itself as soon as it sees a failure,
//   before its rebuild returns (a second failure during the rebuild). --expect-expelled
//   P: P is stopped and resumed by the launcher after the others rebuilt; it must be
//   expelled, and prints EXPELLED rank=P PASS|FAIL instead of a verdict. --joiners J:
//   the last J processes are not at init; process 0 hands out a join id (through a
//   file next to the stamp) after its first rebuild, when the pool may have run dry,
//   and they join the pool with ftcclCommJoinAsSpare. --no-shrink: once the pool is
//   dry a failure must end the communicator with a clear ftcclRemoteError; a survivor
//   that gets it passes ("ended") without finishing its iterations.
// Each process that lives to the end prints one line
//   VERDICT rank=P PASS|FAIL final rank R of N, epoch E, recovery_ms=...
// (the launcher's exit status is not trusted; the test script checks every verdict).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "fault_stamp.h"
#include "ftccl.h"

namespace {

using faulttest::nowMs;

struct Options {
  int spares = 0;
  int iters = 600;
  std::map<int, int> killAt;  // process -> iteration
  int killInRebuild = -1;
  int expectRanks = -1;
  int expectExpelled = -1;  // this process is stopped and resumed into an old epoch
  int joiners = 0;          // the last processes join the pool later (JoinAsSpare)
  bool noShrink = false;    // shrinkWhenNoSpares = 0: with the pool dry, rebuild must fail
  std::string stampFile;
};

bool parse(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--spares")
      o->spares = std::atoi(next().c_str());
    else if (a == "--iters")
      o->iters = std::atoi(next().c_str());
    else if (a == "--kill") {
      std::string v = next();
      size_t at = v.find('@');
      if (at == std::string::npos) return false;
      o->killAt[std::atoi(v.substr(0, at).c_str())] = std::atoi(v.substr(at + 1).c_str());
    } else if (a == "--kill-in-rebuild")
      o->killInRebuild = std::atoi(next().c_str());
    else if (a == "--expect-ranks")
      o->expectRanks = std::atoi(next().c_str());
    else if (a == "--expect-expelled")
      o->expectExpelled = std::atoi(next().c_str());
    else if (a == "--joiners")
      o->joiners = std::atoi(next().c_str());
    else if (a == "--no-shrink")
      o->noShrink = true;
    else if (a == "--victim")
      next();  // the test script's bookkeeping
    else if (a == "--stamp")
      o->stampFile = next();
    else
      return false;
  }
  return true;
}

// The first victim records when it died, so survivors can report the whole recovery:
// fault -> the retried collective completed.
[[noreturn]] void die(const Options& o) {
  faulttest::writeStamp(o.stampFile, /*keepFirst=*/true);
  raise(SIGKILL);
  std::_Exit(1);
}

class Member {
 public:
  Member(const Options& o, int process, ftcclComm_t comm) : o_(o), process_(process), comm_(comm) {}

  // Ranks run iterations from `iter_`; returns when all are done or on a problem.
  bool run() {
    while (iter_ < o_.iters) {
      int rank = -1, n = 0;
      ftcclCommUserRank(comm_, &rank);
      ftcclCommCount(comm_, &n);
      auto kill = o_.killAt.find(process_);
      if (kill != o_.killAt.end() && kill->second == iter_) die(o_);
      // Every 50th iteration a pipelined 4 MiB op, else a small one.
      size_t count = iter_ % 50 == 25 ? (1u << 20) : 4099;
      std::vector<int32_t> x(count, (rank + 1) * (iter_ % 97 + 1));
      ftcclResult_t r =
          ftcclAllReduce(x.data(), x.data(), count, ftcclInt32, ftcclSum, comm_, nullptr);
      if (r == ftcclRemoteError || r == ftcclTimeout) {
        if (!recover()) return false;
        continue;  // the iteration is redone from the resynchronised counter
      }
      if (r != ftcclSuccess) return fail(std::string("all-reduce: ") + ftcclGetLastError(comm_));
      int32_t expect = n * (n + 1) / 2 * (iter_ % 97 + 1);
      if (x[0] != expect || x[count / 2] != expect || x.back() != expect) {
        return fail("iteration " + std::to_string(iter_) + ": sum " + std::to_string(x[0]) +
                    " != " + std::to_string(expect) + " with " + std::to_string(n) + " ranks");
      }
      if (recovering_) {  // the first op after a rebuild completed
        double stamp = faulttest::readStamp(o_.stampFile);
        if (stamp > 0) recoveryMs_ = nowMs() - stamp;
        recovering_ = false;
      }
      ++iter_;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
  }

  // A spare waits; once activated it resynchronises and runs like any rank.
  bool standby(bool* activated) {
    int on = 0;
    if (ftcclCommStandby(comm_, &on) != ftcclSuccess) {
      return fail(std::string("standby: ") + ftcclGetLastError(comm_));
    }
    *activated = on == 1;
    if (!*activated) return true;
    recovering_ = true;
    hasState_ = false;
    // A failure during the resync: rebuild (recover resynchronises), then run.
    if (!resync() && (!problem_.empty() || !recover())) return false;
    return run();
  }

  // Rebuild (again, while failures keep coming), then take the counter from the
  // lowest rank not lost: it held valid state, whatever the numbering did.
  bool recover() {
    if (process_ == o_.killInRebuild) die(o_);
    recovering_ = true;
    for (int attempt = 0; attempt < 5; ++attempt) {
      ftcclRebuildInfo_t info{};
      ftcclResult_t rb = ftcclCommRebuild(comm_, &info);
      if (process_ == o_.expectExpelled) reportExpulsion(rb);
      if (rb != ftcclSuccess) {
        std::string why = ftcclGetLastError(comm_);
        if (o_.noShrink && rb == ftcclRemoteError && why.find("no spare") != std::string::npos) {
          ended_ = true;  // the expected end: no spare left and no shrink
          return false;
        }
        return fail("rebuild: " + why);
      }
      ++rebuilds_;
      epoch_ = info.epoch;
      if (resync()) {
        if (process_ == 0 && o_.joiners > 0) publishJoinId();
        return true;
      }
      if (!problem_.empty()) return false;
    }
    return fail("five rebuilds in a row failed to resynchronise");
  }

  // The counter comes by broadcast from the lowest rank that held it before the
  // rebuild (not a replacement). Who that is cannot be told from FailedRanks alone by a
  // spare (it does not know how many were replaced or dropped), so the members agree on
  // it with a min all-reduce first.
  bool resync() {
    int rank = -1, n = 0;
    ftcclCommUserRank(comm_, &rank);
    ftcclCommCount(comm_, &n);
    int32_t root = hasState_ ? rank : n;
    ftcclResult_t r = ftcclAllReduce(&root, &root, 1, ftcclInt32, ftcclMin, comm_, nullptr);
    int64_t counter = iter_;
    if (r == ftcclSuccess) {
      if (root >= n) return fail("no member held the counter before the rebuild");
      r = ftcclBroadcast(&counter, &counter, 1, ftcclInt64, root, comm_, nullptr);
    }
    if (r == ftcclRemoteError || r == ftcclTimeout) return false;  // another failure: rebuild
    if (r != ftcclSuccess) return fail(std::string("resync: ") + ftcclGetLastError(comm_));
    iter_ = static_cast<int>(counter);
    hasState_ = true;
    return true;
  }

  // Written once, atomically (rename), for the joiners to pick up.
  void publishJoinId() {
    if (joinIdPublished_) return;
    ftcclUniqueId id;
    if (ftcclCommGetJoinId(comm_, &id) != ftcclSuccess) {
      fail(std::string("GetJoinId: ") + ftcclGetLastError(comm_));
      return;
    }
    std::string file = o_.stampFile + ".joinid", partial = file + ".partial";
    if (FILE* f = std::fopen(partial.c_str(), "wb")) {
      std::fwrite(&id, sizeof(id), 1, f);
      std::fclose(f);
      std::rename(partial.c_str(), file.c_str());
    }
    joinIdPublished_ = true;
  }

  // A process resumed into an old epoch gets a permanent error and ends there.
  [[noreturn]] void reportExpulsion(ftcclResult_t rb) {
    std::string why = ftcclGetLastError(comm_);
    bool expelled = rb == ftcclRemoteError && why.find("expelled") != std::string::npos;
    std::printf("EXPELLED rank=%d %s: %s\n", process_, expelled ? "PASS" : "FAIL", why.c_str());
    std::fflush(stdout);
    ftcclCommAbort(comm_);
    std::_Exit(0);
  }

  bool fail(const std::string& why) {
    problem_ = why;
    return false;
  }

  const std::string& problem() const { return problem_; }
  bool ended() const { return ended_; }
  int rebuilds() const { return rebuilds_; }
  double recoveryMs() const { return recoveryMs_; }

 private:
  const Options& o_;
  int process_;
  ftcclComm_t comm_;
  int iter_ = 0;
  bool hasState_ = true;  // false for an activated spare until it resynchronised
  bool joinIdPublished_ = false;
  bool ended_ = false;
  int rebuilds_ = 0;
  unsigned long long epoch_ = 0;
  bool recovering_ = false;
  double recoveryMs_ = -1;
  std::string problem_;
};

// A joiner waits for process 0's join id, then joins the spare pool.
ftcclResult_t joinLater(const Options& o, ftcclComm_t* comm, ftcclConfig_t* config) {
  std::string file = o.stampFile + ".joinid";
  ftcclUniqueId id;
  for (int waited = 0; waited < 120000; waited += 10) {
    if (FILE* f = std::fopen(file.c_str(), "rb")) {
      size_t got = std::fread(&id, sizeof(id), 1, f);
      std::fclose(f);
      if (got == 1) return ftcclCommJoinAsSpare(comm, id, config);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return ftcclTimeout;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, &o)) {
    std::fprintf(stderr, "bad arguments\n");
    return 2;
  }
  int process = faulttest::processIndex();
  int processes = faulttest::processCount();
  int nranks = processes - o.spares - o.joiners;
  if (process < 0 || nranks < 1 || o.stampFile.empty()) {
    std::fprintf(stderr, "run me under ftccl_run or mpirun with --spares < processes\n");
    return 2;
  }
  ftcclUniqueId id;
  ftcclComm_t comm = nullptr;
  ftcclConfig_t config = FTCCL_CONFIG_INITIALIZER;
  config.nSpares = o.spares;
  config.shrinkWhenNoSpares = o.noShrink ? 0 : 1;
  bool joiner = process >= nranks + o.spares;
  ftcclResult_t init = joiner ? joinLater(o, &comm, &config)
                       : ftcclGetUniqueId(&id) != ftcclSuccess
                           ? ftcclInternalError
                           : ftcclCommInitRankConfig(&comm, nranks, id, process, &config);
  if (init != ftcclSuccess) {
    std::printf("VERDICT rank=%d FAIL %s: %s\n", process, joiner ? "join" : "init",
                ftcclGetLastError(nullptr));
    return 1;
  }
  int rank = -2;
  ftcclCommUserRank(comm, &rank);
  Member member(o, process, comm);
  bool ok = true, activated = false;
  std::string role;
  if (process < nranks) {
    ok = rank == process ? member.run() : member.fail("user rank " + std::to_string(rank));
    role = "rank";
  } else {
    ok = rank == -1 ? member.standby(&activated)
                    : member.fail("a spare has rank " + std::to_string(rank));
    role =
        std::string(joiner ? "joined " : "") + (activated ? "activated spare" : "spare stood down");
  }
  if (member.ended() && member.problem().empty()) {
    ok = true;
    role += " ended: no spare left and no shrink";
  } else if (o.noShrink && ok && (process < nranks || activated)) {
    ok = member.fail("the pool ran dry without shrink, yet the communicator went on");
  }
  int finalRank = -1, n = 0;
  ftcclCommUserRank(comm, &finalRank);
  ftcclCommCount(comm, &n);
  if (ok && !member.ended() && o.expectRanks > 0 && finalRank >= 0 && n != o.expectRanks) {
    ok = member.fail("ended with " + std::to_string(n) + " ranks, expected " +
                     std::to_string(o.expectRanks));
  }
  std::printf("VERDICT rank=%d %s %s: final rank %d of %d, rebuilds %d, recovery_ms=%.1f %s\n",
              process, ok ? "PASS" : "FAIL", role.c_str(), finalRank, n, member.rebuilds(),
              member.recoveryMs(), member.problem().c_str());
  std::fflush(stdout);
  ftcclCommDestroy(comm);
  return ok ? 0 : 1;
}
