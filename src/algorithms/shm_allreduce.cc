// Small all-reduce over the node's shared memory (issue 26, docs/shared-memory.md): one
// flag round, no messages.
//
// Why: on one node a small all-reduce over the transport pays tag matching and a
// message latency per round (log2(n) rounds at best). Here each rank copies its input
// into its own slot and publishes ready = seq; once every rank's ready reaches seq, each
// rank reduces all n slots into its output itself, then publishes done = seq. Every rank
// reads n slots of the buffer's size, so it is for buffers that fit one slot; the tuner
// routes larger ones elsewhere (progress() refuses them).
//
// Same bits on every rank: each rank combines the slots in local rank order, pairwise
// with src/reduce's kernels (((s0 op s1) op s2) ...), and for Avg divides the finished
// sum by the local size once, as the ring, tree and recursive doubling do.
//
// Slot reuse. Op `seq` writes slot seq % k (k = slotsPerRank()). That slot last held
// this rank's input of op seq - k, which a slower peer may still be reading: a peer
// reads it between seeing ready >= seq - k and publishing done = seq - k. So before
// overwriting, this rank waits until every peer's done reaches seq - k. That is exactly
// enough: done is published after the peer's last read of op seq - k (the release
// store orders those reads before it; our acquire load orders our writes after), and
// nobody reads the slot for op seq - k again, since every later read of it is for
// op seq (and waits for our ready = seq, published after the copy). A peer cannot be
// reading an older use either: done is monotonic. With k >= 2 the wait is already
// satisfied when ops run one after another (finishing op seq - 1 needed every peer's
// ready = seq - 1, published after its done = seq - 2), so double buffering lets a rank
// start op seq while peers still read op seq - 1; with k = 1 it is a real barrier.
// Flags start at 0, so sequences over one memory run 1, 2, 3, ... with no gaps (seq - k
// of the first ops wraps to "already reached"). An op refused by progress() publishes
// nothing: its caller must not count its seq. Count 0 still takes part in the round,
// keeping the sequences of all ranks in step.
//
// Never blocks: progress() checks flags and returns; the op driver sleeps between calls
// (NodeMemory::sleepUntilReady on a pendingPeers() rank: that peer publishes ready = seq
// after its done = seq - 1, so the same sleep also serves the done wait). abort() only
// stops: what this rank published stays, and a peer waiting on it is revoked by health.
#include <cstring>
#include <string>
#include <vector>

#include "algorithms/collective.h"
#include "reduce/reduce.h"
#include "transports/node_memory.h"

namespace ftccl {
namespace {

class ShmAllReduce final : public Collective {
 public:
  ShmAllReduce(NodeMemory& memory, const CollectiveArgs& args, uint32_t seq)
      : memory_(memory),
        args_(args),
        seq_(seq),
        elemSize_(dataTypeSize(args.type)),
        slot_(static_cast<int>(seq % static_cast<uint32_t>(memory.slotsPerRank()))) {}

  Status progress(bool* done) override {
    *done = false;
    if (stage_ == Stage::kDone) {
      *done = true;
      return Status::ok();
    }
    if (stage_ == Stage::kAborted) return Status::ok();
    if (stage_ == Stage::kReuse) {
      FTCCL_CHECK(checkArgs());
      // Every peer finished reading what our slot held for op seq - k.
      uint32_t previous = seq_ - static_cast<uint32_t>(memory_.slotsPerRank());
      if (!allReached(previous, &NodeMemory::doneReached)) return Status::ok();
      size_t bytes = args_.count * elemSize_;
      if (bytes) std::memcpy(memory_.slot(memory_.localRank(), slot_), args_.sendbuff, bytes);
      memory_.describe(slot_, mine());
      memory_.publishReady(seq_);
      stage_ = Stage::kReady;
      cursor_ = 0;
      ++mark_;
    }
    if (!allReached(seq_, &NodeMemory::readyReached)) return Status::ok();
    FTCCL_CHECK(checkPeersAgree());
    reduceSlots();
    memory_.publishDone(seq_);
    stage_ = Stage::kDone;
    ++mark_;
    *done = true;
    return Status::ok();
  }

  void abort() override {
    if (stage_ != Stage::kDone) stage_ = Stage::kAborted;
  }

  // LOCAL ranks (0..localSize-1), not communicator ranks: the memory does not know the
  // mapping, the caller translates. Those whose done (before the copy) or ready (after)
  // has not reached what this rank waits for.
  std::vector<int> pendingPeers() const override {
    std::vector<int> pending;
    if (stage_ != Stage::kReuse && stage_ != Stage::kReady) return pending;
    uint32_t previous = seq_ - static_cast<uint32_t>(memory_.slotsPerRank());
    for (int r = 0; r < memory_.localSize(); ++r) {
      if (r == memory_.localRank()) continue;
      bool reached = stage_ == Stage::kReuse ? memory_.doneReached(r, previous)
                                             : memory_.readyReached(r, seq_);
      if (!reached) pending.push_back(r);
    }
    return pending;
  }

  uint64_t progressMark() const override { return mark_; }

 private:
  enum class Stage { kReuse, kReady, kDone, kAborted };
  using Reached = bool (NodeMemory::*)(int, uint32_t) const;

  Status checkArgs() const {
    if (elemSize_ == 0 || !isValidRedOp(args_.op)) {
      return invalidArgument("shm all-reduce: invalid data type or reduction op");
    }
    if (args_.count > memory_.slotBytes() / elemSize_) {
      return invalidArgument("shm all-reduce: " + std::to_string(args_.count) +
                             " elements do not fit a slot of " +
                             std::to_string(memory_.slotBytes()) + " bytes");
    }
    return Status::ok();
  }

  NodeMemory::OpDescriptor mine() const {
    NodeMemory::OpDescriptor d;
    d.count = args_.count;
    d.seq = seq_;
    d.opSeq = args_.opSeq;
    d.signature = args_.signature;
    d.type = static_cast<uint32_t>(args_.type);
    d.op = static_cast<uint32_t>(args_.op);
    return d;
  }

  // Every peer called this op as this rank did (each compares all, so all fail alike).
  Status checkPeersAgree() {
    const NodeMemory::OpDescriptor want = mine();
    for (int r = 0; r < memory_.localSize(); ++r) {
      const NodeMemory::OpDescriptor got = memory_.descriptor(r, slot_);
      if (got == want) continue;
      stage_ = Stage::kAborted;
      return invalidUsage(
          "shm all-reduce: local rank " + std::to_string(r) + " called op " +
          std::to_string(got.seq) + " with " + std::to_string(got.count) + " elements, type " +
          std::to_string(got.type) + ", op " + std::to_string(got.op) + ", but local rank " +
          std::to_string(memory_.localRank()) + " with " + std::to_string(want.count) +
          " elements, type " + std::to_string(want.type) + ", op " + std::to_string(want.op) +
          " (the ranks called one all-reduce differently)");
    }
    return Status::ok();
  }

  // Whether every other rank's flag reached `seq`; ranks seen there are not checked
  // again (flags only advance), and each one seen advances the progress mark.
  bool allReached(uint32_t seq, Reached reached) {
    for (; cursor_ < memory_.localSize(); ++cursor_) {
      if (cursor_ == memory_.localRank()) continue;
      if (!(memory_.*reached)(cursor_, seq)) return false;
      ++mark_;
    }
    return true;
  }

  // recvbuff = slot 0 (op) slot 1 (op) ... in local rank order; Avg divided once at the end.
  void reduceSlots() {
    size_t count = args_.count;
    if (count == 0) return;
    int n = memory_.localSize();
    const uint8_t* first = memory_.slot(0, slot_);
    if (n == 1) {
      std::memcpy(args_.recvbuff, first, count * elemSize_);
    } else {
      reduce(args_.recvbuff, first, memory_.slot(1, slot_), count, args_.type, args_.op);
      for (int r = 2; r < n; ++r) {
        reduce(args_.recvbuff, args_.recvbuff, memory_.slot(r, slot_), count, args_.type, args_.op);
      }
    }
    if (args_.op == ftcclAvg) divideBy(args_.recvbuff, count, args_.type, n);
  }

  NodeMemory& memory_;
  CollectiveArgs args_;
  uint32_t seq_;
  size_t elemSize_;
  int slot_;
  Stage stage_ = Stage::kReuse;
  int cursor_ = 0;  // the first rank whose flag is not yet seen at the wanted sequence
  uint64_t mark_ = 0;
};

}  // namespace

std::unique_ptr<Collective> makeShmAllReduce(NodeMemory& memory, const CollectiveArgs& args,
                                             uint32_t seq) {
  return std::make_unique<ShmAllReduce>(memory, args, seq);
}

}  // namespace ftccl
