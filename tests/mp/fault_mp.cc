// Fault tests: one rank is killed, stopped or cut off; every survivor must see its
// operation fail fast with ftcclRemoteError (or ftcclTimeout), name the culprit, and
// then fail every later op at once and destroy promptly. No MPI: ranks come from
// ftccl_run (FTCCL_COMM_ID, FTCCL_RANK, FTCCL_NRANKS), since MPI calls among
// survivors would hang after a death.
//
// usage: fault_mp --fault kill|stop|drop|none --victim R[,R2]
//                 [--when idle|small|large|bcast|reduce|allgather|reducescatter|sendrecv]
//                 [--algo ring|tree|hier|rd] [--nodes K] [--at-iter K] [--external] [--bound-ms MS]
// --algo forces the all-reduce algorithm; --nodes K puts the ranks on K virtual nodes
// (FTCCL_NODE_ID), for the hierarchical one.
// The victim injects the fault on itself at iteration K (after writing its clock to
// the stamp file, so survivors can report detection latency), unless --external (the
// launcher injects it). Each survivor prints
//   VERDICT rank=R PASS result=... latency_ms=... error=...
// and the test script demands one PASS per survivor.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fault_stamp.h"
#include "ftccl.h"

namespace {

using faulttest::nowMs;

struct Options {
  std::string fault = "kill";
  bool rebuild = false;  // survivors rebuild (shrink) and verify collectives after
  std::set<int> victims;
  std::string when = "small";
  int atIter = 20;
  bool external = false;
  double boundMs = 10000;
  std::string stampFile;
  std::string algo;
  int nodes = 0;
};

bool parse(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--fault")
      o->fault = next();
    else if (a == "--victim") {
      std::stringstream in(next());
      std::string item;
      while (std::getline(in, item, ',')) o->victims.insert(std::atoi(item.c_str()));
    } else if (a == "--when")
      o->when = next();
    else if (a == "--at-iter")
      o->atIter = std::atoi(next().c_str());
    else if (a == "--external")
      o->external = true;
    else if (a == "--bound-ms")
      o->boundMs = std::atof(next().c_str());
    else if (a == "--stamp")
      o->stampFile = next();
    else if (a == "--rebuild")
      o->rebuild = true;
    else if (a == "--algo")
      o->algo = next();
    else if (a == "--nodes")
      o->nodes = std::atoi(next().c_str());
    else
      return false;
  }
  return true;
}

// The victim records when it injected the fault, then injects it.
void injectFault(const Options& o) {
  faulttest::writeStamp(o.stampFile, /*keepFirst=*/false);
  if (o.fault == "kill") raise(SIGKILL);
  if (o.fault == "stop") raise(SIGSTOP);
  if (o.fault == "drop") raise(SIGUSR2);
}

// One op of the kind under test; `buf` holds nranks * count floats.
ftcclResult_t runOp(const Options& o, std::vector<float>& buf, size_t count, int rank, int nranks,
                    ftcclComm_t comm) {
  float* b = buf.data();
  if (o.when == "bcast") return ftcclBroadcast(b, b, count, ftcclFloat32, 0, comm, nullptr);
  if (o.when == "reduce") return ftcclReduce(b, b, count, ftcclFloat32, ftcclSum, 0, comm, nullptr);
  if (o.when == "allgather") {
    return ftcclAllGather(b + rank * count, b, count, ftcclFloat32, comm, nullptr);
  }
  if (o.when == "reducescatter") {
    return ftcclReduceScatter(b, b + rank * count, count, ftcclFloat32, ftcclMax, comm, nullptr);
  }
  if (o.when == "sendrecv") {  // a ring shift: every rank sends and receives at once
    ftcclGroupStart();
    ftcclSend(b, count, ftcclFloat32, (rank + 1) % nranks, comm, nullptr);
    ftcclRecv(b + count, count, ftcclFloat32, (rank + nranks - 1) % nranks, comm, nullptr);
    return ftcclGroupEnd();
  }
  return ftcclAllReduce(b, b, count, ftcclFloat32, ftcclAvg, comm, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, &o)) {
    std::fprintf(stderr, "bad arguments\n");
    return 2;
  }
  int rank = faulttest::processIndex();
  int nranks = faulttest::processCount();
  if (rank < 0 || nranks < 1) {
    std::fprintf(stderr, "run me under ftccl_run (FTCCL_RANK/FTCCL_NRANKS unset)\n");
    return 2;
  }
  bool victim = o.victims.count(rank) != 0;
  if (o.nodes > 0) {
    setenv("FTCCL_NODE_ID", ("vnode" + std::to_string(rank * o.nodes / nranks)).c_str(), 1);
  }
  ftcclConfig_t config = FTCCL_CONFIG_INITIALIZER;
  // The launcher injects an external fault at a fixed time, which must fall after init:
  // no calibration there (it takes up to a second on a loaded 2-core machine).
  std::string algo = o.algo.empty() && o.external ? "ring" : o.algo;
  std::string spec = "allreduce:" + algo;
  if (!algo.empty()) config.algorithm = spec.c_str();
  ftcclUniqueId id;
  ftcclComm_t comm = nullptr;
  if (ftcclGetUniqueId(&id) != ftcclSuccess ||
      ftcclCommInitRankConfig(&comm, nranks, id, rank, &config)) {
    std::printf("VERDICT rank=%d FAIL init: %s\n", rank, ftcclGetLastError(nullptr));
    return 1;
  }
  // Every rank is past init before any victim moves: a victim that dies while a slow
  // rank still receives init's last broadcast from it fails that rank's init (a CI run
  // did so), which is not what these tests are about.
  float one = 1.0f, ranks = 0.0f;
  if (ftcclAllReduce(&one, &ranks, 1, ftcclFloat32, ftcclSum, comm, nullptr) != ftcclSuccess ||
      ranks != static_cast<float>(nranks)) {
    std::printf("VERDICT rank=%d FAIL settling all-reduce: %s\n", rank, ftcclGetLastError(comm));
    return 1;
  }
  size_t count = o.when == "large" ? (64u << 20) / sizeof(float) : 1024;
  bool parts = o.when == "allgather" || o.when == "reducescatter" || o.when == "sendrecv";
  std::vector<float> buf(count * (parts ? nranks + 1 : 1), 1.0f);
  ftcclResult_t result = ftcclSuccess;
  double failedAt = 0, opStart = 0;
  double start = nowMs();
  if (o.fault == "leave") {
    // An orderly leave is never a failure: the leaver destroys its communicator and
    // exits; the others stay idle for several failure timeouts and must see no error.
    if (victim) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      ftcclResult_t r = ftcclCommDestroy(comm);
      std::printf("VICTIM rank=%d left result=%d\n", rank, static_cast<int>(r));
      return r == ftcclSuccess ? 0 : 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(o.boundMs)));
    ftcclResult_t async = ftcclSuccess;
    ftcclCommGetAsyncError(comm, &async);
    ftcclCommDestroy(comm);
    bool pass = async == ftcclSuccess;
    std::printf("VERDICT rank=%d %s after a peer's orderly leave: async error %s\n", rank,
                pass ? "PASS" : "FAIL", ftcclGetErrorString(async));
    return pass ? 0 : 1;
  }
  if (o.when == "idle") {
    // No operation in flight: the failure must still be noticed (GetAsyncError).
    if (victim && !o.external) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      injectFault(o);
    }
    while (nowMs() - start < o.boundMs + 5000) {
      ftcclResult_t async = ftcclSuccess;
      ftcclCommGetAsyncError(comm, &async);
      if (async != ftcclSuccess) {
        result = async;
        failedAt = nowMs();
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  } else {
    for (int iter = 0; iter < 1000000; ++iter) {
      if (victim && !o.external && iter == o.atIter) injectFault(o);
      opStart = nowMs();
      result = runOp(o, buf, count, rank, nranks, comm);
      if (result != ftcclSuccess) {
        failedAt = nowMs();
        break;
      }
      if (nowMs() - start > 120000) break;
    }
  }
  if (victim) {
    // A dropped victim lives on, cut off: it must fail too, then leave. With --rebuild
    // it must be expelled (a minority of one may not form a communicator of its own).
    if (o.rebuild && o.fault == "drop") {
      ftcclResult_t rb = ftcclCommRebuild(comm, nullptr);
      std::string why = ftcclGetLastError(comm);
      bool expelled = rb == ftcclRemoteError && why.find("majority") != std::string::npos;
      std::printf("EXPELLED rank=%d %s: %s\n", rank, expelled ? "PASS" : "FAIL", why.c_str());
    }
    std::printf("VICTIM rank=%d result=%d\n", rank, static_cast<int>(result));
    ftcclCommAbort(comm);
    return 0;
  }
  std::string error = ftcclGetLastError(comm);
  double stamp = faulttest::readStamp(o.stampFile);
  // Self-injected faults stamp their time; with --external the failing op's own
  // duration bounds the detection latency from above.
  double latency = stamp > 0                                          ? failedAt - stamp
                   : (o.external && o.when != "idle" && failedAt > 0) ? failedAt - opStart
                                                                      : -1;
  std::vector<std::string> problems;
  if (result != ftcclRemoteError && result != ftcclTimeout) {
    problems.push_back(std::string("result ") + ftcclGetErrorString(result));
  }
  // The message names a culprit (some victim) with its pid, and how it was detected.
  bool named = false;
  for (int v : o.victims)
    named = named || error.find("rank " + std::to_string(v) + " ") != std::string::npos;
  if (!named) problems.push_back("error does not name the failed rank");
  if (error.find("pid") == std::string::npos) problems.push_back("error does not name the pid");
  if (latency > o.boundMs) problems.push_back("detected after " + std::to_string(latency) + " ms");
  if (o.rebuild && problems.empty()) {
    // Shrink onto the survivors, then the collectives must be right on the new group.
    double r0 = nowMs();
    ftcclRebuildInfo_t info{};
    ftcclResult_t rb = ftcclCommRebuild(comm, &info);
    double rebuildMs = nowMs() - r0;
    int newRank = -1, newCount = 0, nFailed = 0, failed[8] = {0};
    ftcclCommUserRank(comm, &newRank);
    ftcclCommCount(comm, &newCount);
    ftcclCommFailedRanks(comm, failed, 8, &nFailed);
    int want = nranks - static_cast<int>(o.victims.size());
    if (rb != ftcclSuccess) problems.push_back(std::string("rebuild: ") + ftcclGetLastError(comm));
    if (info.nranks != want || newCount != want || !info.shrunk || info.epoch < 1) {
      problems.push_back("rebuild info: nranks " + std::to_string(info.nranks) + " count " +
                         std::to_string(newCount) + " shrunk " + std::to_string(info.shrunk));
    }
    std::set<int> lost(failed, failed + std::min(nFailed, 8));
    if (lost != o.victims) problems.push_back("FailedRanks does not list the victims");
    int expectRank = rank;
    for (int v : o.victims) expectRank -= v < rank ? 1 : 0;
    if (newRank != expectRank) problems.push_back("new rank " + std::to_string(newRank));
    for (int round = 0; round < 20 && problems.empty(); ++round) {
      std::vector<int32_t> x(100003, newRank + 1 + round);
      if (ftcclAllReduce(x.data(), x.data(), x.size(), ftcclInt32, ftcclSum, comm, nullptr)) {
        problems.push_back(std::string("all-reduce after rebuild: ") + ftcclGetLastError(comm));
        break;
      }
      int32_t expect = want * (want + 1) / 2 + want * round;
      if (x[0] != expect || x.back() != expect) problems.push_back("wrong sum after rebuild");
    }
    std::printf(
        "VERDICT rank=%d %s rebuilt: new rank %d of %d, epoch %llu, rebuild_ms=%.1f "
        "latency_ms=%.1f %s\n",
        rank, problems.empty() ? "PASS" : "FAIL", newRank, newCount, info.epoch, rebuildMs, latency,
        problems.empty() ? "" : problems[0].c_str());
    std::fflush(stdout);
    ftcclCommDestroy(comm);
    return problems.empty() ? 0 : 1;
  }
  // Revoked: later ops fail at once, the async error says so.
  double t0 = nowMs();
  ftcclResult_t later =
      ftcclAllReduce(buf.data(), buf.data(), 1, ftcclFloat32, ftcclSum, comm, nullptr);
  if (later == ftcclSuccess) problems.push_back("an op after the failure succeeded");
  if (nowMs() - t0 > 1000) problems.push_back("an op after the failure did not fail at once");
  ftcclResult_t async = ftcclSuccess;
  ftcclCommGetAsyncError(comm, &async);
  if (async == ftcclSuccess) problems.push_back("GetAsyncError reports success");
  double d0 = nowMs();
  if (ftcclCommDestroy(comm) != ftcclSuccess) problems.push_back("destroy failed");
  double destroyMs = nowMs() - d0;
  if (destroyMs > 5000) problems.push_back("destroy took " + std::to_string(destroyMs) + " ms");

  std::string why;
  for (auto& p : problems) why += (why.empty() ? "" : "; ") + p;
  std::printf("VERDICT rank=%d %s result=%s latency_ms=%.1f destroy_ms=%.1f error=\"%s\"%s%s\n",
              rank, problems.empty() ? "PASS" : "FAIL", ftcclGetErrorString(result), latency,
              destroyMs, error.c_str(), why.empty() ? "" : " problems: ", why.c_str());
  std::fflush(stdout);
  return problems.empty() ? 0 : 1;
}
