// All-gather over the node's shared memory (issue 26, docs/shared-memory.md): every
// rank's slot read by all, with the flags of transports/node_memory.h and the steps of
// shm_steps.h.
//
// NCCL's layout: each rank sends `count` elements and receives n * count, rank r's part
// at r * count (in place: sendbuff is recvbuff + r * count). One sequence per chunk of a
// slot's size of a part: each rank copies its part's chunk into its slot and publishes
// ready, copies the chunk into its own part of the output (unless in place) while the
// others come, and once every rank's ready reached the chunk copies every other rank's
// slot out. Per byte of the output: one read of a slot, one write, the least a copy
// through shared memory can do; every slot carries a full chunk, so the op takes as
// few flag rounds as its parts have slots' worths. With two slots a rank fills chunk
// t + 1 while slower ones still copy chunk t out. The result is a copy: the same bits
// on every rank.
#include "algorithms/collective.h"
#include "algorithms/shm_steps.h"

namespace ftccl {
namespace {

class ShmAllGather final : public ShmCollective {
 public:
  ShmAllGather(NodeMemory& memory, const CollectiveArgs& args, uint32_t* nextSeq)
      : ShmCollective(memory, args, CollectiveKind::kAllGather) {
    plan(slotElems(), nextSeq);
  }

 private:
  // Where chunk chunk_ of `rank`'s part goes in the output.
  uint8_t* outputOf(int rank) const {
    return at(args_.recvbuff, static_cast<size_t>(rank) * args_.count + chunkFirst());
  }

  void contribute() override { copy(slotOf(me()), at(args_.sendbuff, chunkFirst()), chunkCount()); }

  void copyLocal() override {
    const uint8_t* in = at(args_.sendbuff, chunkFirst());
    if (in != outputOf(me())) copy(outputOf(me()), in, chunkCount());
  }

  bool readPeers() override {
    for (int r = 0; r < ranks(); ++r) {
      if (r != me()) copy(outputOf(r), slotOf(r), chunkCount());
    }
    return false;
  }
};

}  // namespace

std::unique_ptr<Collective> makeShmAllGather(NodeMemory& memory, const CollectiveArgs& args,
                                             uint32_t* nextSeq) {
  return std::make_unique<ShmAllGather>(memory, args, nextSeq);
}

}  // namespace ftccl
