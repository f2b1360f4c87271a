// Broadcast over the node's shared memory (issue 26, docs/shared-memory.md): the root's
// slot read by all, with the flags of transports/node_memory.h and the steps of
// shm_steps.h.
//
// One sequence per chunk of a slot's size: the root copies its chunk into its slot and
// publishes ready; every other rank publishes ready at once (it contributes nothing, but
// its ready promises it finished reading the root's slot for older sequences, which is
// what lets the root refill that slot two chunks later without a wait of its own), and
// copies the chunk out once every rank's ready reached it. Per byte: the root writes
// its slot once (and its own output when not in place), each other rank reads it once.
// With two slots the root fills chunk t + 1 while the others still copy chunk t out.
//
// Single copy (from kShmSingleCopyBytes to kShmSingleCopyMaxBytes, at 2 local ranks,
// where the memory has it: collective.h says why): one sequence for the whole op. The
// root puts its buffer's address in its slot, stamped with the time (the reader's read
// then needs no look at the root's pidfd: PeerReader); the other rank reads the buffer
// straight from the root's process into its output (NodeMemory::readPeer, in pieces),
// makes sure the root has not released it meanwhile (its done flag: an aborted root
// publishes done, and may then reuse the buffer), and publishes done. The root returns
// only once that done came: until then its buffer must not change. The reader waits for
// no done (the slots' contract needs only the ready flags). One copy per byte, no pass
// through a slot, and one flag round instead of one per chunk: a 256 KiB broadcast
// between two ranks had its two copies in series (one chunk).
//
// Every rank waits for every ready, not only the root's: the contract (no rank
// completes a chunk before all ready reached it) is what makes the slots of this op and
// of whatever collective follows safe to overwrite. The root is a LOCAL rank and part
// of the op's description, so ranks that name different roots all fail.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

#include "algorithms/collective.h"
#include "algorithms/shm_steps.h"

namespace ftccl {
namespace {

class ShmBroadcast final : public ShmCollective {
 public:
  ShmBroadcast(NodeMemory& memory, const CollectiveArgs& args, uint32_t* nextSeq)
      : ShmCollective(memory, args, CollectiveKind::kBroadcast),
        singleCopy_(memory.singleCopy() && memory.localSize() <= kShmSingleCopyMaxRanks &&
                    elemSize_ && args.count * elemSize_ >= kShmSingleCopyBytes &&
                    args.count * elemSize_ <= kShmSingleCopyMaxBytes &&
                    sizeof(PublishedBuffer) <= memory.slotBytes()) {
    plan(singleCopy_ ? args.count : slotElems(), nextSeq);
    if (singleCopy_ && isRoot()) releaseOnAbort();
  }

 private:
  bool isRoot() const { return me() == args_.root; }
  size_t bytes() const { return args_.count * elemSize_; }

  void contribute() override {
    if (!isRoot()) return;
    if (singleCopy_) {
      publishBuffer(args_.sendbuff, bytes());
    } else {
      copy(slotOf(me()), at(args_.sendbuff, chunkFirst()), chunkCount());
    }
  }

  // The root's own output while the others still come (in place: nothing to do).
  void copyLocal() override {
    if (isRoot() && args_.sendbuff != args_.recvbuff) {
      copy(at(args_.recvbuff, chunkFirst()), at(args_.sendbuff, chunkFirst()), chunkCount());
    }
  }

  bool readPeers() override {
    if (!singleCopy_) {
      if (!isRoot()) copy(at(args_.recvbuff, chunkFirst()), slotOf(args_.root), chunkCount());
      return false;
    }
    if (isRoot()) return true;  // done once every reader's done came
    // 16 slots per call (morePieces: a multi-GiB read is no one silent system call).
    const size_t piece = std::min(bytes() - readBytes(), 16 * memory_.slotBytes());
    Status read =
        readPublished(args_.root, bytes(), readBytes(), at(args_.recvbuff, 0) + readBytes(), piece);
    if (!read.isOk()) {
      fail(read);
      return false;
    }
    (void)morePieces(piece, bytes());
    return false;  // done: published as the chunk ends, what the root waits for
  }

  void collect(int) override {}  // single copy: the root's second phase only waits

  const bool singleCopy_;
};

}  // namespace

std::unique_ptr<Collective> makeShmBroadcast(NodeMemory& memory, const CollectiveArgs& args,
                                             uint32_t* nextSeq) {
  return std::make_unique<ShmBroadcast>(memory, args, nextSeq);
}

}  // namespace ftccl
