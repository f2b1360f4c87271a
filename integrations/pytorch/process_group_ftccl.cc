#include "process_group_ftccl.h"

#include <ATen/core/ivalue.h>
#include <Python.h>

#include <algorithm>
#include <stdexcept>

#include "tensor_types.h"

namespace ftccl_torch {
namespace {

// Releases the GIL for its lifetime when this thread holds it.
class ReleaseGil {
 public:
  ReleaseGil() : state_(Py_IsInitialized() && PyGILState_Check() ? PyEval_SaveThread() : nullptr) {}
  ~ReleaseGil() {
    if (state_ != nullptr) PyEval_RestoreThread(state_);
  }

 private:
  PyThreadState* state_;
};

// The Work of one queued operation: torch's future-wrapping Work does not rethrow a
// failure from wait() (a plain dist.all_reduce would return as if it had succeeded).
class FtcclWork final : public c10d::Work {
 public:
  FtcclWork(c10::intrusive_ptr<c10::ivalue::Future> future, c10d::OpType type)
      : c10d::Work(-1, type), future_(std::move(future)) {}
  bool isCompleted() override { return future_->completed(); }
  bool isSuccess() const override { return future_->completed() && !future_->hasError(); }
  std::exception_ptr exception() const override { return future_->exception_ptr(); }
  std::vector<at::Tensor> result() override { return future_->value().toTensorVector(); }
  // ftccl bounds the wait (a failure is found within the failure timeout, and the
  // group's timeout is its op timeout), so `timeout` is not needed here.
  bool wait(std::chrono::milliseconds timeout) override {
    future_->waitAndThrow();
    return true;
  }
  c10::intrusive_ptr<c10::ivalue::Future> getFuture() override { return future_; }

 private:
  c10::intrusive_ptr<c10::ivalue::Future> future_;
};

}  // namespace

ProcessGroupFtccl::ProcessGroupFtccl(ftcclComm_t comm, int rank, int size)
    : c10d::ProcessGroup(rank, size), comm_(comm), worker_([this] { work(); }) {}

// An orderly leave when the group is healthy (the others must not take the exit for a
// failure); after a failure, abort: there is nobody left to leave in order with.
ProcessGroupFtccl::~ProcessGroupFtccl() {
  {
    // The last reference may go from Python (DDP's reducer) with the GIL held, while a
    // queued operation's future runs Python callbacks that need it: let go of it.
    ReleaseGil unlocked;
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return queue_.empty() && !busy_; });
    stopping_ = true;
  }
  changed_.notify_all();
  worker_.join();
  ftcclResult_t asyncError = ftcclSuccess;
  ftcclCommGetAsyncError(comm_, &asyncError);
  if (asyncError == ftcclSuccess) {
    ftcclCommDestroy(comm_);
  } else {
    ftcclCommAbort(comm_);
  }
}

void ProcessGroupFtccl::work() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    changed_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping
    Job job = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    job();
    job = nullptr;  // its tensors may need the GIL to go: not under mutex_
    lock.lock();
    busy_ = false;
    changed_.notify_all();
  }
}

std::string ProcessGroupFtccl::failure(const char* name, ftcclResult_t result) const {
  std::string why = ftcclGetLastError(comm_);
  return std::string("ftccl ") + name + " failed on rank " + std::to_string(getRank()) + ": " +
         ftcclGetErrorString(result) + (why.empty() ? "" : ": " + why);
}

c10::intrusive_ptr<c10d::Work> ProcessGroupFtccl::enqueue(c10d::OpType type, const char* name,
                                                          std::vector<at::Tensor> outputs,
                                                          std::function<ftcclResult_t()> run) {
  auto future =
      c10::make_intrusive<c10::ivalue::Future>(c10::ListType::create(c10::TensorType::get()));
  Job job = [this, future, name, outputs = std::move(outputs), run = std::move(run)]() mutable {
    try {
      ftcclResult_t result = run();
      if (result == ftcclSuccess) {
        future->markCompleted(c10::IValue(outputs));
      } else {
        future->setError(std::make_exception_ptr(std::runtime_error(failure(name, result))));
      }
    } catch (...) {  // a check that threw, or a callback of the future
      if (!future->completed()) future->setError(std::current_exception());
    }
  };
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(job));
  }
  changed_.notify_all();
  return c10::make_intrusive<FtcclWork>(future, type);
}

c10::intrusive_ptr<c10d::Work> ProcessGroupFtccl::broadcast(std::vector<at::Tensor>& tensors,
                                                            const c10d::BroadcastOptions& opts) {
  checkSingle(tensors, "broadcast");
  at::Tensor t = tensors[0];
  const int root = static_cast<int>(opts.rootRank);
  return enqueue(c10d::OpType::BROADCAST, "broadcast", {t}, [this, t, root] {
    return ftcclBroadcast(t.data_ptr(), t.data_ptr(), t.numel(), dataTypeOf(t), root, comm_,
                          nullptr);
  });
}

// BAND, BOR, BXOR are no ftccl ops: gather every contribution and combine them here
// (into `t` when `keep`).
ftcclResult_t ProcessGroupFtccl::reduceBitwise(const c10d::ReduceOp& op, at::Tensor& t, bool keep) {
  at::Tensor gathered = at::empty({getSize() * t.numel()}, t.options());
  ftcclResult_t r =
      ftcclAllGather(t.data_ptr(), gathered.data_ptr(), t.numel(), dataTypeOf(t), comm_, nullptr);
  if (r == ftcclSuccess && keep) combineBitwise(op, gathered, getSize(), t);
  return r;
}

c10::intrusive_ptr<c10d::Work> ProcessGroupFtccl::allreduce(std::vector<at::Tensor>& tensors,
                                                            const c10d::AllreduceOptions& opts) {
  checkSingle(tensors, "allreduce");
  at::Tensor t = tensors[0];
  const c10d::ReduceOp op = opts.reduceOp;
  if (isBitwise(op)) {
    checkBitwise(t);
    return enqueue(c10d::OpType::ALLREDUCE, "allreduce", {t},
                   [this, t, op]() mutable { return reduceBitwise(op, t, /*keep=*/true); });
  }
  const ftcclRedOp_t redOp = redOpOf(op, t);
  return enqueue(c10d::OpType::ALLREDUCE, "allreduce", {t}, [this, t, redOp] {
    return ftcclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(), dataTypeOf(t), redOp, comm_,
                          nullptr);
  });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupFtccl::allreduce_coalesced(
    std::vector<at::Tensor>& tensors, const c10d::AllreduceCoalescedOptions& opts) {
  TORCH_CHECK(!tensors.empty(), "ftccl: allreduce_coalesced of no tensor");
  for (const at::Tensor& t : tensors) checkTensor(t, "allreduce_coalesced");
  const c10d::ReduceOp op = opts.reduceOp;
  TORCH_CHECK(!isBitwise(op), "ftccl: allreduce_coalesced with a bitwise op");
  std::vector<ftcclRedOp_t> ops;
  for (const at::Tensor& t : tensors) ops.push_back(redOpOf(op, t));
  return enqueue(c10d::OpType::ALLREDUCE_COALESCED, "allreduce_coalesced", tensors,
                 [this, tensors, ops] {
                   for (size_t i = 0; i < tensors.size(); ++i) {
                     const at::Tensor& t = tensors[i];
                     ftcclResult_t r = ftcclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(),
                                                      dataTypeOf(t), ops[i], comm_, nullptr);
                     if (r != ftcclSuccess) return r;
                   }
                   return ftcclSuccess;
                 });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupFtccl::reduce(std::vector<at::Tensor>& tensors,
                                                         const c10d::ReduceOptions& opts) {
  checkSingle(tensors, "reduce");
  at::Tensor t = tensors[0];
  const int root = static_cast<int>(opts.rootRank);
  const c10d::ReduceOp op = opts.reduceOp;
  if (isBitwise(op)) {
    checkBitwise(t);
    return enqueue(c10d::OpType::REDUCE, "reduce", {t}, [this, t, op, root]() mutable {
      return reduceBitwise(op, t, /*keep=*/getRank() == root);
    });
  }
  const ftcclRedOp_t redOp = redOpOf(op, t);
  return enqueue(c10d::OpType::REDUCE, "reduce", {t}, [this, t, redOp, root] {
    return ftcclReduce(t.data_ptr(), t.data_ptr(), t.numel(), dataTypeOf(t), redOp, root, comm_,
                       nullptr);
  });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupFtccl::allgather(
    std::vector<std::vector<at::Tensor>>& outputs, std::vector<at::Tensor>& inputs,
    const c10d::AllgatherOptions& opts) {
  checkSingle(inputs, "allgather");
  TORCH_CHECK(outputs.size() == 1 && static_cast<int>(outputs[0].size()) == getSize(),
              "ftccl: allgather needs one list of ", getSize(), " output tensors");
  at::Tensor in = inputs[0];
  std::vector<at::Tensor> outs = outputs[0];
  for (const at::Tensor& o : outs) {
    TORCH_CHECK(o.numel() == in.numel() && o.scalar_type() == in.scalar_type(),
                "ftccl: allgather outputs must match the input's size and dtype");
    checkTensor(o, "allgather");
  }
  return enqueue(c10d::OpType::ALLGATHER, "allgather", outs, [this, in, outs]() mutable {
    at::Tensor flat = at::empty({getSize() * in.numel()}, in.options());
    ftcclResult_t r =
        ftcclAllGather(in.data_ptr(), flat.data_ptr(), in.numel(), dataTypeOf(in), comm_, nullptr);
    if (r != ftcclSuccess) return r;
    at::Tensor parts = flat.view({getSize(), -1});
    for (int i = 0; i < getSize(); ++i) outs[i].copy_(parts[i].view_as(outs[i]));
    return ftcclSuccess;
  });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupFtccl::_allgather_base(
    at::Tensor& output, at::Tensor& input, const c10d::AllgatherOptions& opts) {
  checkTensor(input, "_allgather_base");
  checkTensor(output, "_allgather_base");
  TORCH_CHECK(
      output.numel() == getSize() * input.numel() && output.scalar_type() == input.scalar_type(),
      "ftccl: _allgather_base output must hold size x input elements of its dtype");
  at::Tensor in = input, out = output;
  return enqueue(c10d::OpType::_ALLGATHER_BASE, "_allgather_base", {out}, [this, in, out] {
    return ftcclAllGather(in.data_ptr(), out.data_ptr(), in.numel(), dataTypeOf(in), comm_,
                          nullptr);
  });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupFtccl::reduce_scatter(
    std::vector<at::Tensor>& outputs, std::vector<std::vector<at::Tensor>>& inputs,
    const c10d::ReduceScatterOptions& opts) {
  checkSingle(outputs, "reduce_scatter");
  TORCH_CHECK(inputs.size() == 1 && static_cast<int>(inputs[0].size()) == getSize(),
              "ftccl: reduce_scatter needs one list of ", getSize(), " input tensors");
  at::Tensor out = outputs[0];
  for (const at::Tensor& in : inputs[0]) {
    TORCH_CHECK(in.numel() == out.numel() && in.scalar_type() == out.scalar_type(),
                "ftccl: reduce_scatter inputs must match the output's size and dtype");
    checkTensor(in, "reduce_scatter");
  }
  at::Tensor flat = at::cat(inputs[0]).contiguous();  // a copy: `out` may alias an input
  return _reduce_scatter_base(out, flat, opts);
}

c10::intrusive_ptr<c10d::Work> ProcessGroupFtccl::_reduce_scatter_base(
    at::Tensor& output, at::Tensor& input, const c10d::ReduceScatterOptions& opts) {
  checkTensor(input, "_reduce_scatter_base");
  checkTensor(output, "_reduce_scatter_base");
  TORCH_CHECK(
      input.numel() == getSize() * output.numel() && output.scalar_type() == input.scalar_type(),
      "ftccl: _reduce_scatter_base input must hold size x output elements");
  TORCH_CHECK(!isBitwise(opts.reduceOp), "ftccl: reduce_scatter with a bitwise op");
  at::Tensor in = input, out = output;
  const ftcclRedOp_t redOp = redOpOf(opts.reduceOp, out);
  return enqueue(c10d::OpType::_REDUCE_SCATTER_BASE, "_reduce_scatter_base", {out},
                 [this, in, out, redOp] {
                   return ftcclReduceScatter(in.data_ptr(), out.data_ptr(), out.numel(),
                                             dataTypeOf(out), redOp, comm_, nullptr);
                 });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupFtccl::barrier(const c10d::BarrierOptions& opts) {
  at::Tensor token = at::zeros({1}, at::kByte);
  return enqueue(c10d::OpType::BARRIER, "barrier", {}, [this, token] {
    return ftcclAllReduce(token.data_ptr(), token.data_ptr(), 1, ftcclUint8, ftcclMax, comm_,
                          nullptr);
  });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupFtccl::send(std::vector<at::Tensor>& tensors,
                                                       int dstRank, int tag) {
  checkSingle(tensors, "send");
  at::Tensor t = tensors[0];
  return enqueue(c10d::OpType::SEND, "send", {t}, [this, t, dstRank] {
    return ftcclSend(t.data_ptr(), t.numel(), dataTypeOf(t), dstRank, comm_, nullptr);
  });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupFtccl::recv(std::vector<at::Tensor>& tensors,
                                                       int srcRank, int tag) {
  checkSingle(tensors, "recv");
  at::Tensor t = tensors[0];
  return enqueue(c10d::OpType::RECV, "recv", {t}, [this, t, srcRank] {
    return ftcclRecv(t.data_ptr(), t.numel(), dataTypeOf(t), srcRank, comm_, nullptr);
  });
}

RebuildResult ProcessGroupFtccl::rebuild() {
  {
    // Queued operations fail at once on a revoked communicator: let them drain.
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return queue_.empty() && !busy_; });
  }
  ftcclRebuildInfo_t info{};
  ftcclResult_t r = ftcclCommRebuild(comm_, &info);
  if (r != ftcclSuccess) throw std::runtime_error(failure("rebuild", r));
  RebuildResult result;
  result.epoch = info.epoch;
  result.nranks = info.nranks;
  result.replaced = info.nReplaced;
  result.sparesLeft = info.sparesLeft;
  result.shrunk = info.shrunk != 0;
  std::vector<int> failed(info.nFailed > 0 ? info.nFailed : 0);
  int n = 0;
  if (!failed.empty() && ftcclCommFailedRanks(comm_, failed.data(), static_cast<int>(failed.size()),
                                              &n) != ftcclSuccess) {
    n = 0;  // better none than made up
  }
  failed.resize(std::min<size_t>(failed.size(), static_cast<size_t>(n)));
  result.failedRanks = failed;
  int rank = -1;
  ftcclCommUserRank(comm_, &rank);
  if (result.shrunk || info.nranks != getSize() || rank != getRank()) {
    throw std::runtime_error(
        "ftccl rebuild shrank the group to " + std::to_string(info.nranks) + " ranks (rank " +
        std::to_string(getRank()) + " is now " + std::to_string(rank) +
        "): a torch process group keeps its size; create a new one (no spare was left)");
  }
  return result;
}

}  // namespace ftccl_torch
