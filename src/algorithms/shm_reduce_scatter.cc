// Reduce-scatter over the node's shared memory (issue 26, docs/shared-memory.md): block
// r of every rank's slot read by rank r, with the flags of transports/node_memory.h and
// the steps of shm_steps.h.
//
// NCCL's layout: each rank sends n parts of `count` elements (part p at p * count) and
// receives `count`, part r reduced over all ranks on rank r (in place: recvbuff is
// sendbuff + r * count). A chunk carries the same element range of all n parts: a slot
// is cut into n blocks of a slot's n-th (on cache lines), block p holding part p's
// range, so every slot is full whatever n, and the op takes one sequence per block's
// worth of a part. Each rank copies its n blocks in and publishes ready; once every
// rank's ready reached the chunk, rank r reduces block r of every slot into its output
// and publishes done. Per rank and output byte: n reads and one write, the least a
// reduction of n inputs can do, all ranks reducing at once; with two slots a rank fills
// chunk t + 1 while slower ones still reduce chunk t. In place, a chunk's output
// overwrites only its own part's range of the input, which is in the slot by then.
//
// Each element is reduced in local rank order (((s0 op s1) op s2) ...) with
// src/reduce's kernels, by the one rank that receives it; Avg divides the finished sum
// by the local size once, as the transport's algorithms do.
#include "algorithms/collective.h"
#include "algorithms/shm_steps.h"

namespace ftccl {
namespace {

class ShmReduceScatter final : public ShmCollective {
 public:
  ShmReduceScatter(NodeMemory& memory, const CollectiveArgs& args, uint32_t* nextSeq)
      : ShmCollective(memory, args, CollectiveKind::kReduceScatter) {
    plan(blockElems(ranks()), nextSeq);
  }

 private:
  void contribute() override {
    for (int p = 0; p < ranks(); ++p) {
      size_t part = static_cast<size_t>(p) * args_.count;
      copy(at(slotOf(me()), static_cast<size_t>(p) * chunkElems_),
           at(args_.sendbuff, part + chunkFirst()), chunkCount());
    }
  }

  bool readPeers() override {
    reduceSlots(at(args_.recvbuff, chunkFirst()), static_cast<size_t>(me()) * chunkElems_,
                chunkCount());
    return false;
  }
};

}  // namespace

std::unique_ptr<Collective> makeShmReduceScatter(NodeMemory& memory, const CollectiveArgs& args,
                                                 uint32_t* nextSeq) {
  return std::make_unique<ShmReduceScatter>(memory, args, nextSeq);
}

}  // namespace ftccl
