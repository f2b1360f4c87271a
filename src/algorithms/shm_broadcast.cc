// Broadcast over the node's shared memory (issue 26, docs/shared-memory.md): the root's
// slot read by all, with the flags of transports/node_memory.h and the steps of
// shm_steps.h.
//
// One sequence per chunk of a slot's size: the root copies its chunk into its slot and
// publishes ready; every other rank publishes ready at once (it contributes nothing, but
// its ready promises it finished reading the root's slot for older sequences, which is
// what lets the root refill that slot two chunks later without a wait of its own), and
// copies the chunk out once every rank's ready reached it. Per byte: the root writes
// its slot once (and its own output when not in place), each other rank reads it once:
// the least a copy through shared memory can do. With two slots the root fills chunk
// t + 1 while the others still copy chunk t out.
//
// Every rank waits for every ready, not only the root's: the contract (no rank
// completes a chunk before all ready reached it) is what makes the slots of this op and
// of whatever collective follows safe to overwrite. The root is a LOCAL rank and part
// of the op's description, so ranks that name different roots all fail.
#include "algorithms/collective.h"
#include "algorithms/shm_steps.h"

namespace ftccl {
namespace {

class ShmBroadcast final : public ShmCollective {
 public:
  ShmBroadcast(NodeMemory& memory, const CollectiveArgs& args, uint32_t* nextSeq)
      : ShmCollective(memory, args, CollectiveKind::kBroadcast) {
    plan(slotElems(), nextSeq);
  }

 private:
  bool isRoot() const { return me() == args_.root; }

  void contribute() override {
    if (isRoot()) copy(slotOf(me()), at(args_.sendbuff, chunkFirst()), chunkCount());
  }

  // The root's own output while the others still come (in place: nothing to do).
  void copyLocal() override {
    if (isRoot() && args_.sendbuff != args_.recvbuff) {
      copy(at(args_.recvbuff, chunkFirst()), at(args_.sendbuff, chunkFirst()), chunkCount());
    }
  }

  bool readPeers() override {
    if (!isRoot()) copy(at(args_.recvbuff, chunkFirst()), slotOf(args_.root), chunkCount());
    return false;
  }
};

}  // namespace

std::unique_ptr<Collective> makeShmBroadcast(NodeMemory& memory, const CollectiveArgs& args,
                                             uint32_t* nextSeq) {
  return std::make_unique<ShmBroadcast>(memory, args, nextSeq);
}

}  // namespace ftccl
