// Observability under mpirun (4 ranks): ftcclCommGetStats counts exactly what was called,
// and an op timeout names the rank that has not reached the op and the ranks inside it.
// Prints one verdict line per rank ("VERDICT rank=R PASS ..."), as run_mp.sh demands.
#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "mp_checks.h"

using namespace mpcheck;

namespace {

// As the header says: ask the length, leave slack (the JSON may grow in between).
std::string getStats(ftcclComm_t comm) {
  size_t length = 0;
  if (!ok(ftcclCommGetStats(comm, nullptr, 0, &length), comm, "GetStats(length)")) return "";
  std::string json(length + 1024, '\0');
  size_t written = 0;
  if (!ok(ftcclCommGetStats(comm, &json[0], json.size(), &written), comm, "GetStats")) return "";
  json.resize(written);
  if (json.empty() || json.front() != '{' || json.back() != '}' ||
      json.find('\0') != std::string::npos) {
    fail("GetStats wrote no JSON object of the length it gave: " + json);
  }
  return json;
}

// The API's contract, and counts that match the calls exactly.
void checkStats(ftcclComm_t comm) {
  ++gCases;
  size_t length = 0;
  char small[8];
  if (ftcclCommGetStats(comm, small, sizeof small, &length) != ftcclInvalidArgument ||
      small[0] != '\0' || length <= sizeof small) {
    fail("GetStats into 8 bytes must be ftcclInvalidArgument with the length needed");
  }
  if (ftcclCommGetStats(comm, nullptr, 0, nullptr) != ftcclInvalidArgument) {
    fail("GetStats without length must be refused");
  }
  constexpr int kCalls = 7;
  constexpr size_t kCount = 1000;  // floats
  std::vector<float> data(kCount, 1.0f);
  for (int i = 0; i < kCalls; ++i) {
    ok(ftcclAllReduce(data.data(), data.data(), kCount, ftcclFloat32, ftcclSum, comm, nullptr),
       comm, "AllReduce");
  }
  ok(ftcclBroadcast(data.data(), data.data(), 10, ftcclInt32, 0, comm, nullptr), comm, "Broadcast");
  std::string json = getStats(comm);
  std::string want = "\"allreduce\":{\"ops\":" + std::to_string(kCalls) +
                     ",\"bytes\":" + std::to_string(kCalls * kCount * 4) + ",";
  if (json.find(want) == std::string::npos) fail("stats lack " + want + ": " + json);
  if (json.find("\"broadcast\":{\"ops\":1,\"bytes\":40,") == std::string::npos) {
    fail("stats lack the broadcast: " + json);
  }
  if (json.find("\"rank\":" + std::to_string(gRank) + ",\"nranks\":" + std::to_string(gRanks)) ==
      std::string::npos) {
    fail("stats lack rank and nranks: " + json);
  }
}

// Rank 2 stays away from the next all-reduce; the others' op times out, and each one's
// error names rank 2 as not having reached it, and the other three as inside it.
void checkHangDiagnosis(ftcclComm_t comm) {
  ++gCases;
  std::vector<float> data(4096, 1.0f);
  MPI_Barrier(MPI_COMM_WORLD);
  if (gRank == 2) {
    std::this_thread::sleep_for(std::chrono::seconds(8));  // its health thread still answers
    ftcclAllReduce(data.data(), data.data(), data.size(), ftcclFloat32, ftcclSum, comm, nullptr);
    return;  // whatever it returns: the others have given up on this op
  }
  ftcclResult_t r =
      ftcclAllReduce(data.data(), data.data(), data.size(), ftcclFloat32, ftcclSum, comm, nullptr);
  std::string error = ftcclGetLastError(comm);
  if (r != ftcclTimeout) {
    fail(std::string("the stuck op returned ") + ftcclGetErrorString(r) + ": " + error);
    return;
  }
  // "Op N: not reached by rank 2 (finished op N-1, idle for T ms); inside it: ..."
  // (no std::regex: GCC 12 warns inside <regex> under -O3 and AddressSanitizer)
  size_t at = error.find(". Op ");
  unsigned long op =
      at == std::string::npos ? 0 : std::strtoul(error.c_str() + at + 5, nullptr, 10);
  std::string want =
      ": not reached by rank 2 (finished op " + std::to_string(op - 1) + ", idle for ";
  size_t inAt = error.find("; inside it: ");
  if (at == std::string::npos || op == 0 || error.find(want, at) == std::string::npos ||
      inAt == std::string::npos) {
    fail("no diagnosis naming rank 2 in: " + error);
    return;
  }
  std::string inside = error.substr(inAt + 13, error.find(';', inAt + 13) - (inAt + 13));
  for (int r2 : {0, 1, 3}) {
    std::string who = "rank " + std::to_string(r2) + (r2 == gRank ? " (this rank)" : "") + " (step";
    if (inside.find(who) == std::string::npos) fail("'" + who + "' not inside: " + error);
  }
  if (inside.find("rank 2") != std::string::npos) fail("rank 2 said inside: " + error);
  std::printf("rank %d: %s\n", gRank, error.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &gRank);
  MPI_Comm_size(MPI_COMM_WORLD, &gRanks);
  if (gRanks != 4) {
    if (gRank == 0) std::fprintf(stderr, "observability_mp needs 4 ranks\n");
    MPI_Finalize();
    return 2;
  }
  ftcclUniqueId id;
  if (gRank == 0 && ftcclGetUniqueId(&id) != ftcclSuccess) MPI_Abort(MPI_COMM_WORLD, 1);
  MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
  ftcclConfig_t config = FTCCL_CONFIG_INITIALIZER;
  config.opTimeoutMs = 3000;  // far above any op here, even on 2 busy cores
  ftcclComm_t comm = nullptr;
  if (!ok(ftcclCommInitRankConfig(&comm, gRanks, id, gRank, &config), nullptr, "init")) {
    std::printf("VERDICT rank=%d FAIL init\n", gRank);
    MPI_Finalize();
    return 1;
  }
  checkStats(comm);
  checkHangDiagnosis(comm);
  MPI_Barrier(MPI_COMM_WORLD);
  ftcclCommAbort(comm);  // revoked: nothing to wait for
  std::printf("VERDICT rank=%d %s cases=%d failures=%d\n", gRank, gFailures ? "FAIL" : "PASS",
              gCases, gFailures);
  std::fflush(stdout);
  MPI_Finalize();
  return gFailures ? 1 : 0;
}
