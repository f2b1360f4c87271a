// Reduce over the node's shared memory (issue 26, docs/shared-memory.md): every rank's
// slot read by the root, with the flags of transports/node_memory.h and the steps of
// shm_steps.h.
//
// Small buffers (any at 2 ranks), one flag round per chunk: each rank copies its chunk into its
// slot and publishes ready; once every rank's ready reached the chunk, the root reduces all n slots
// into its output. The others only publish and wait: their ready for the next chunk is what lets
// the root know they finished with older slots, and the contract wants every rank to see every
// ready before completing a chunk.
//
// Large buffers from 3 ranks, the work split (as the pipelined all-reduce): once every
// ready reached the chunk, rank r reduces slice r of every slot; the root into its
// output, the others into their own slot (then done), whose slices the root copies out
// as each done comes. The root's memory traffic per byte drops from 3n - 1 (copy in,
// n - 1 reductions) to 7 - 5/n, and the n reductions run at once. A non-root rank has
// no output to reduce into (its recvbuff may be null), nor may it fold in place over
// its own slot (rank r >= 2 would overwrite its input before folding it in), so it
// folds into its slot for the next sequence and copies back: free to write, since it
// saw every ready reach this sequence (every peer finished reading that slot's older
// sequence), and it writes its own next chunk there only after this one. Slice r of
// any slot is read only by rank r, so the copy back is safe as well.
//
// Same bits as the all-reduce: each element is reduced in local rank order
// (((s0 op s1) op s2) ...) with src/reduce's kernels by one rank; Avg divides the
// finished sum by the local size once. The root is a LOCAL rank and part of the op's
// description, so ranks that name different roots all fail. Non-roots never touch
// recvbuff.
#include "algorithms/collective.h"
#include "algorithms/shm_steps.h"

namespace ftccl {
namespace {

// Above this size, and from 3 ranks, the reduction is split across the ranks. At 2
// the root would trade half a reduction for a second flag round and a copy (traffic 4.5
// against 5): for 1 MiB one round measured 20% faster (110 against 135 us, 2-core VM,
// spinning as the driver does). At 4 the root's traffic halves (5.75 against 11), yet
// one round measured 10-20% faster there too, with 4 ranks sharing 2 cores, where
// total work counts and nothing runs in parallel: to measure on a node with a core
// per rank before trusting either.
constexpr size_t kOneRoundBytes = 32 * 1024;
constexpr int kSplitFromRanks = 3;

class ShmReduce final : public ShmCollective {
 public:
  ShmReduce(NodeMemory& memory, const CollectiveArgs& args, uint32_t* nextSeq)
      : ShmCollective(memory, args, CollectiveKind::kReduce) {
    split_ = args.count * elemSize_ > kOneRoundBytes && memory.localSize() >= kSplitFromRanks;
    plan(slotElems(), nextSeq);
  }

 private:
  bool isRoot() const { return me() == args_.root; }

  void contribute() override { copy(slotOf(me()), at(args_.sendbuff, chunkFirst()), chunkCount()); }

  bool readPeers() override {
    if (!split_) {
      if (isRoot()) reduceSlots(at(args_.recvbuff, chunkFirst()), 0, chunkCount());
      return false;
    }
    size_t first = 0, count = 0;
    slice(me(), chunkCount(), &first, &count);
    if (isRoot()) {
      reduceSlots(at(args_.recvbuff, chunkFirst() + first), first, count);
      return true;  // the other slices come in collect()
    }
    uint8_t* scratch = at(memory_.slot(me(), slotIndexOf(seq_ + 1)), first);
    reduceSlots(scratch, first, count);
    copy(at(slotOf(me()), first), scratch, count);
    return false;  // done, published next, says the slice is in the slot
  }

  bool split_ = false;
};

}  // namespace

std::unique_ptr<Collective> makeShmReduce(NodeMemory& memory, const CollectiveArgs& args,
                                          uint32_t* nextSeq) {
  return std::make_unique<ShmReduce>(memory, args, nextSeq);
}

}  // namespace ftccl
