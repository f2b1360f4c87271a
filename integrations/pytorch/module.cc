// The Python module behind ftccl_torch: creates ftccl process groups for
// torch.distributed (backend "ftccl"), rebuilds them after a failure, and lets a spare
// wait for its rank.
#include <pybind11/chrono.h>
#include <torch/extension.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "process_group_ftccl.h"

namespace ftccl_torch {
namespace {

constexpr const char* kIdKey = "ftccl_unique_id";

// A spare activated by waitAsSpare, for the process group the script creates next.
std::mutex pendingMutex;
ftcclComm_t pendingComm = nullptr;
int pendingRank = -1;

// nSpares and the other settings: FTCCL_SPARES and the other FTCCL_* variables. The
// group's timeout becomes ftccl's op timeout (unless FTCCL_OP_TIMEOUT_MS says
// otherwise): a peer that left in order mid-collective cannot block the rest for good.
ftcclConfig_t configFor(std::chrono::milliseconds timeout) {
  ftcclConfig_t config = FTCCL_CONFIG_INITIALIZER;
  if (std::getenv("FTCCL_OP_TIMEOUT_MS") == nullptr && timeout.count() > 0) {
    config.opTimeoutMs = static_cast<int>(std::min<int64_t>(timeout.count(), INT_MAX));
  }
  return config;
}

void check(ftcclResult_t r, const std::string& what, ftcclComm_t comm) {
  if (r == ftcclSuccess) return;
  throw std::runtime_error("ftccl " + what + ": " + ftcclGetErrorString(r) + ": " +
                           ftcclGetLastError(comm));
}

// The id: built by every process from FTCCL_COMM_ID when set (spares need it: they
// join without the store's group), else made by rank 0 and passed through the store.
ftcclUniqueId uniqueId(const c10::intrusive_ptr<c10d::Store>& store, int rank) {
  ftcclUniqueId id;
  if (std::getenv("FTCCL_COMM_ID") != nullptr || rank == 0) {
    check(ftcclGetUniqueId(&id), "unique id", nullptr);
    if (std::getenv("FTCCL_COMM_ID") == nullptr) {
      const auto* bytes = reinterpret_cast<const uint8_t*>(id.internal);
      store->set(kIdKey, std::vector<uint8_t>(bytes, bytes + sizeof(id.internal)));
    }
    return id;
  }
  std::vector<uint8_t> bytes = store->get(kIdKey);
  TORCH_CHECK(bytes.size() == sizeof(id.internal), "ftccl: a malformed unique id in the store");
  std::memcpy(id.internal, bytes.data(), bytes.size());
  return id;
}

c10::intrusive_ptr<c10d::ProcessGroup> createProcessGroup(
    const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
    std::chrono::milliseconds timeout) {
  {
    std::lock_guard<std::mutex> lock(pendingMutex);
    if (pendingComm != nullptr) {
      TORCH_CHECK(rank == pendingRank, "ftccl: this spare was activated as rank ", pendingRank,
                  ", not ", rank);
      int count = 0;
      ftcclCommCount(pendingComm, &count);
      TORCH_CHECK(count == size, "ftccl: the activated communicator has ", count, " ranks, not ",
                  size);
      ftcclComm_t comm = pendingComm;
      pendingComm = nullptr;
      return c10::make_intrusive<ProcessGroupFtccl>(comm, rank, size);
    }
  }
  ftcclUniqueId id;
  {
    py::gil_scoped_release release;
    id = uniqueId(store, rank);
  }
  ftcclConfig_t config = configFor(timeout);
  ftcclComm_t comm = nullptr;
  {
    py::gil_scoped_release release;  // blocks until every rank arrived
    check(ftcclCommInitRankConfig(&comm, size, id, rank, &config), "init", nullptr);
  }
  return c10::make_intrusive<ProcessGroupFtccl>(comm, rank, size);
}

// A spare: joins communicator FTCCL_COMM_ID as process size + index and waits; returns
// the rank it was given, or -1 when the job ended without needing it.
int waitAsSpare(int size, int index) {
  TORCH_CHECK(std::getenv("FTCCL_COMM_ID") != nullptr,
              "ftccl: a spare needs FTCCL_COMM_ID=host:port (set for every process)");
  py::gil_scoped_release release;
  ftcclUniqueId id;
  check(ftcclGetUniqueId(&id), "unique id", nullptr);
  ftcclConfig_t config = configFor(std::chrono::milliseconds(0));
  ftcclComm_t comm = nullptr;
  check(ftcclCommInitRankConfig(&comm, size, id, size + index, &config), "spare init", nullptr);
  int activated = 0;
  ftcclResult_t standby = ftcclCommStandby(comm, &activated);
  if (standby != ftcclSuccess) {
    std::string why = std::string("ftccl standby: ") + ftcclGetErrorString(standby) + ": " +
                      ftcclGetLastError(comm);
    ftcclCommAbort(comm);
    throw std::runtime_error(why);
  }
  if (activated == 0) {
    ftcclCommDestroy(comm);
    return -1;
  }
  int rank = -1;
  ftcclCommUserRank(comm, &rank);
  std::lock_guard<std::mutex> lock(pendingMutex);
  pendingComm = comm;
  pendingRank = rank;
  return rank;
}

py::dict rebuild(const c10::intrusive_ptr<c10d::ProcessGroup>& group) {
  auto* pg = dynamic_cast<ProcessGroupFtccl*>(group.get());
  TORCH_CHECK(pg != nullptr, "ftccl: rebuild() takes an ftccl process group");
  RebuildResult r;
  {
    py::gil_scoped_release release;
    r = pg->rebuild();
  }
  py::dict out;
  out["epoch"] = r.epoch;
  out["nranks"] = r.nranks;
  out["replaced"] = r.replaced;
  out["spares_left"] = r.sparesLeft;
  out["failed_ranks"] = r.failedRanks;
  return out;
}

}  // namespace
}  // namespace ftccl_torch

PYBIND11_MODULE(_ftccl_torch, m) {
  m.doc() = "ftccl process groups for torch.distributed";
  m.def("create_process_group", &ftccl_torch::createProcessGroup, py::arg("store"), py::arg("rank"),
        py::arg("size"), py::arg("timeout"));
  m.def("wait_as_spare", &ftccl_torch::waitAsSpare, py::arg("world_size"), py::arg("index"));
  m.def("rebuild", &ftccl_torch::rebuild, py::arg("group"));
}
