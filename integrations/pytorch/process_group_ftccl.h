// torch.distributed's c10d::ProcessGroup on an ftccl communicator: the backend "ftccl".
//
// Collectives run in issue order on one worker thread per group, each a blocking ftccl
// call; its Work's future then completes with the outputs, or fails with ftccl's own
// message (which names the failed rank, how it was detected and after how long). A
// failure never hangs a caller: ftccl revokes the communicator and every queued
// operation fails at once. CPU tensors, one per call, dense.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <vector>

#include "ftccl.h"

namespace ftccl_torch {

// What ftcclCommRebuild did (ftcclRebuildInfo_t and the lost ranks).
struct RebuildResult {
  uint64_t epoch = 0;
  int nranks = 0;
  int replaced = 0;
  int sparesLeft = 0;
  bool shrunk = false;
  std::vector<int> failedRanks;  // in the numbering before the rebuild
};

class ProcessGroupFtccl : public c10d::ProcessGroup {
 public:
  // Takes `comm` (initialized, holding `rank` of `size`); destroys it at the end.
  ProcessGroupFtccl(ftcclComm_t comm, int rank, int size);
  ~ProcessGroupFtccl() override;

  const std::string getBackendName() const override { return "ftccl"; }

  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& tensors,
                                           const c10d::BroadcastOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor>& tensors,
                                           const c10d::AllreduceOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> allreduce_coalesced(
      std::vector<at::Tensor>& tensors, const c10d::AllreduceCoalescedOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> reduce(std::vector<at::Tensor>& tensors,
                                        const c10d::ReduceOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> allgather(std::vector<std::vector<at::Tensor>>& outputs,
                                           std::vector<at::Tensor>& inputs,
                                           const c10d::AllgatherOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> _allgather_base(at::Tensor& output, at::Tensor& input,
                                                 const c10d::AllgatherOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> reduce_scatter(std::vector<at::Tensor>& outputs,
                                                std::vector<std::vector<at::Tensor>>& inputs,
                                                const c10d::ReduceScatterOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> _reduce_scatter_base(
      at::Tensor& output, at::Tensor& input, const c10d::ReduceScatterOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> barrier(const c10d::BarrierOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> send(std::vector<at::Tensor>& tensors, int dstRank,
                                      int tag) override;
  c10::intrusive_ptr<c10d::Work> recv(std::vector<at::Tensor>& tensors, int srcRank,
                                      int tag) override;

  // After a failure: waits for the automatic rebuild (onto spares: the same ranks and
  // size). Throws when it failed, or when it shrank the group (its size is fixed: make
  // a new process group).
  RebuildResult rebuild();

 private:
  using Job = std::function<void()>;
  // Queues `run` (ftccl calls on the worker thread); the Work completes with `outputs`.
  c10::intrusive_ptr<c10d::Work> enqueue(c10d::OpType type, const char* name,
                                         std::vector<at::Tensor> outputs,
                                         std::function<ftcclResult_t()> run);
  void work();
  ftcclResult_t reduceBitwise(const c10d::ReduceOp& op, at::Tensor& t, bool keep);
  std::string failure(const char* name, ftcclResult_t result) const;

  ftcclComm_t comm_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Job> queue_;
  bool busy_ = false;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace ftccl_torch
