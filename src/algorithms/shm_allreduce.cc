// All-reduce over the node's shared memory (issue 26, docs/shared-memory.md): no
// messages, no tag matching; the flags and slots of transports/node_memory.h, whose
// contract (sequences, what ready and done promise) every step below keeps.
//
// Small buffers, one flag round (one sequence): each rank copies its input into its
// slot and publishes ready; once every rank's ready reaches the sequence, each rank
// reduces all n slots into its output itself and publishes done. Every rank reads n
// slots of the buffer's size, which is the least latency and, for small buffers, the
// least work.
//
// Large buffers, pipelined (one sequence per chunk of a slot's size): each rank copies
// its chunk in and publishes ready; rank r reduces slice r of the chunk from every
// rank's slot into its output, copies that reduced slice back into its own slot and
// publishes done; then it copies every other slice from its owner's slot once that
// owner's done is seen. Per rank and byte: read 3 + 1/n, write 2 + 1/n (with n slots
// read only for one slice each), against n reads per byte in one round. The next chunk
// goes to the other slot, so a fast rank fills it while slower ones still copy out.
// Writing the reduced slice back over one's own input is safe: slice r of any slot is
// read only by rank r, and it has read all of them (into its output) first.
//
// Same bits on every rank: each slice is reduced once, by one rank, in local rank order
// (((s0 op s1) op s2) ...) with src/reduce's kernels, and everyone copies it; Avg
// divides the finished sum by the local size once, as the transport's algorithms do.
// Right for a communicator whose ranks share one node (core uses it only there).
//
// Never blocks: progress() checks flags and returns; waitForPeers() sleeps on the flag
// of the first rank it waits for. abort() only stops: what this rank published stays,
// and a peer waiting on it is revoked by health. Ranks that call one op differently all
// fail with ftcclInvalidUsage: each describes the op in its slot, and each compares
// every rank's description before reading their data.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "algorithms/collective.h"
#include "reduce/reduce.h"
#include "transports/node_memory.h"

namespace ftccl {
namespace {

// Up to this size a buffer takes the one-round path (when it fits a slot): reading all
// n slots costs less than a second flag round below it.
constexpr size_t kOneRoundBytes = 32 * 1024;
// Slices of a chunk start on cache lines, so two ranks never write one line.
constexpr size_t kSliceAlign = 64;

class ShmAllReduce final : public Collective {
 public:
  ShmAllReduce(NodeMemory& memory, const CollectiveArgs& args, uint32_t* nextSeq)
      : memory_(memory), args_(args), elemSize_(dataTypeSize(args.type)) {
    size_t bytes = args.count * elemSize_;
    slotElems_ = elemSize_ ? memory.slotBytes() / elemSize_ : 0;
    oneRound_ = bytes <= kOneRoundBytes && args.count <= slotElems_;
    chunks_ = oneRound_ || slotElems_ == 0 ? 1 : (args.count + slotElems_ - 1) / slotElems_;
    seq_ = *nextSeq;
    *nextSeq += static_cast<uint32_t>(chunks_);
  }

  Status progress(bool* done) override {
    *done = false;
    if (stage_ == Stage::kAborted) return Status::ok();
    if (!checked_) {
      FTCCL_CHECK(checkArgs());
      checked_ = true;
    }
    while (chunk_ < chunks_) {
      if (stage_ == Stage::kCopyIn) copyIn();
      if (stage_ == Stage::kReduce) {
        if (!allReached(seq_, &NodeMemory::readyReached)) return Status::ok();
        FTCCL_CHECK(checkPeersAgree());
        if (oneRound_) {
          reduceAll();
          finishChunk();
          continue;
        }
        reduceMySlice();
        stage_ = Stage::kCopyOut;
        cursor_ = 0;
      }
      if (stage_ == Stage::kCopyOut) {
        if (!copyOutSlices()) return Status::ok();
        finishChunk();
      }
    }
    *done = true;
    return Status::ok();
  }

  void abort() override {
    if (chunk_ < chunks_) stage_ = Stage::kAborted;
  }

  // LOCAL ranks (0..localSize-1): the memory does not know the communicator's numbering.
  std::vector<int> pendingPeers() const override {
    std::vector<int> pending;
    if (stage_ != Stage::kReduce && stage_ != Stage::kCopyOut) return pending;
    for (int r = 0; r < memory_.localSize(); ++r) {
      if (r != memory_.localRank() && !waitedReached(r)) pending.push_back(r);
    }
    return pending;
  }

  uint64_t progressMark() const override { return mark_; }

  bool waitForPeers(int timeoutUs) override {
    if (stage_ != Stage::kReduce && stage_ != Stage::kCopyOut) return false;
    for (int r = cursor_; r < memory_.localSize(); ++r) {
      if (r == memory_.localRank() || waitedReached(r)) continue;
      if (stage_ == Stage::kReduce) {
        (void)memory_.sleepUntilReady(r, seq_, timeoutUs);
      } else {
        (void)memory_.sleepUntilDone(r, seq_, timeoutUs);
      }
      return true;
    }
    return true;  // what it waited for came meanwhile: progress() goes on at once
  }

 private:
  enum class Stage { kCopyIn, kReduce, kCopyOut, kAborted };
  using Reached = bool (NodeMemory::*)(int, uint32_t) const;

  Status checkArgs() const {
    if (elemSize_ == 0 || !isValidRedOp(args_.op)) {
      return invalidArgument("shm all-reduce: invalid data type or reduction op");
    }
    if (memory_.slotsPerRank() < 2 || slotElems_ == 0) {
      return invalidArgument("shm all-reduce: needs 2 slots per rank of at least one element");
    }
    return Status::ok();
  }

  // Elements [first, first + count) of the buffer travel in this chunk.
  size_t chunkFirst() const { return chunk_ * slotElems_; }
  size_t chunkCount() const {
    return oneRound_ ? args_.count : std::min(slotElems_, args_.count - chunkFirst());
  }
  int slotIndex() const {
    return static_cast<int>(seq_ % static_cast<uint32_t>(memory_.slotsPerRank()));
  }
  // Slice r of the chunk: [*first, *first + *count), in elements from the chunk's start.
  void slice(int r, size_t* first, size_t* count) const {
    size_t n = static_cast<size_t>(memory_.localSize());
    size_t align = std::max<size_t>(1, kSliceAlign / elemSize_);
    size_t each = (chunkCount() + n - 1) / n;
    each = (each + align - 1) / align * align;
    *first = std::min(chunkCount(), each * static_cast<size_t>(r));
    *count = std::min(chunkCount(), *first + each) - *first;
  }

  uint8_t* at(void* base, size_t element) const {
    return static_cast<uint8_t*>(base) + element * elemSize_;
  }
  const uint8_t* at(const void* base, size_t element) const {
    return static_cast<const uint8_t*>(base) + element * elemSize_;
  }

  // The slot of seq_ was last used by seq_ - 2 at the latest, and finishing seq_ - 1
  // saw every rank's ready reach it: nobody reads it any more (node_memory.h).
  void copyIn() {
    size_t count = chunkCount();
    if (count) {
      std::memcpy(memory_.slot(memory_.localRank(), slotIndex()), at(args_.sendbuff, chunkFirst()),
                  count * elemSize_);
    }
    memory_.describe(slotIndex(), mine());
    memory_.publishReady(seq_);
    stage_ = Stage::kReduce;
    cursor_ = 0;
    ++mark_;
  }

  void finishChunk() {
    memory_.publishDone(seq_);
    ++chunk_;
    ++seq_;
    ++mark_;
    stage_ = Stage::kCopyIn;
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
      const NodeMemory::OpDescriptor got = memory_.descriptor(r, slotIndex());
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

  bool waitedReached(int r) const {
    return stage_ == Stage::kReduce ? memory_.readyReached(r, seq_) : memory_.doneReached(r, seq_);
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

  // out = slot 0 (op) slot 1 (op) ... over [first, first + count) of the chunk.
  void reduceSlots(void* out, size_t first, size_t count) const {
    if (count == 0) return;
    int n = memory_.localSize();
    int index = slotIndex();
    const uint8_t* s0 = at(memory_.slot(0, index), first);
    if (n == 1) {
      std::memmove(out, s0, count * elemSize_);
    } else {
      reduce(out, s0, at(memory_.slot(1, index), first), count, args_.type, args_.op);
      for (int r = 2; r < n; ++r) {
        reduce(out, out, at(memory_.slot(r, index), first), count, args_.type, args_.op);
      }
    }
    if (args_.op == ftcclAvg) divideBy(out, count, args_.type, n);
  }

  void reduceAll() { reduceSlots(args_.recvbuff, 0, chunkCount()); }

  void reduceMySlice() {
    size_t first = 0, count = 0;
    slice(memory_.localRank(), &first, &count);
    uint8_t* out = at(args_.recvbuff, chunkFirst() + first);
    reduceSlots(out, first, count);
    if (count) {
      std::memcpy(at(memory_.slot(memory_.localRank(), slotIndex()), first), out,
                  count * elemSize_);
    }
    memory_.publishDone(seq_);
    ++mark_;
  }

  // Copies each other rank's reduced slice once its done is seen; true when all are.
  bool copyOutSlices() {
    for (; cursor_ < memory_.localSize(); ++cursor_) {
      if (cursor_ == memory_.localRank()) continue;
      if (!memory_.doneReached(cursor_, seq_)) return false;
      size_t first = 0, count = 0;
      slice(cursor_, &first, &count);
      if (count) {
        std::memcpy(at(args_.recvbuff, chunkFirst() + first),
                    at(memory_.slot(cursor_, slotIndex()), first), count * elemSize_);
      }
      ++mark_;
    }
    return true;
  }

  NodeMemory& memory_;
  CollectiveArgs args_;
  size_t elemSize_;
  size_t slotElems_ = 0;  // elements of one slot
  bool oneRound_ = false;
  size_t chunks_ = 1;
  size_t chunk_ = 0;  // the chunk in progress
  uint32_t seq_ = 0;  // its sequence
  bool checked_ = false;
  Stage stage_ = Stage::kCopyIn;
  int cursor_ = 0;  // the first rank whose flag is not yet seen at the wanted sequence
  uint64_t mark_ = 0;
};

}  // namespace

std::unique_ptr<Collective> makeShmAllReduce(NodeMemory& memory, const CollectiveArgs& args,
                                             uint32_t* nextSeq) {
  return std::make_unique<ShmAllReduce>(memory, args, nextSeq);
}

}  // namespace ftccl
