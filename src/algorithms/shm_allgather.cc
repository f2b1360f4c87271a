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
//
// The hierarchical all-reduce's last intra-node phase is the same op over the ring's
// uneven parts of one buffer, planned by the largest part as the reduce-scatter is.
#include <algorithm>
#include <utility>
#include <vector>

#include "algorithms/collective.h"
#include "algorithms/ring_phases.h"
#include "algorithms/shm_steps.h"

namespace ftccl {
namespace {

class ShmAllGather final : public ShmCollective {
 public:
  // args.count is the largest part; this rank's part comes from `input`, every part
  // ends in `buffer` at its offset.
  ShmAllGather(NodeMemory& memory, const CollectiveArgs& args, std::vector<Segment> parts,
               const void* input, void* buffer, uint32_t* nextSeq)
      : ShmCollective(memory, args, CollectiveKind::kAllGather),
        parts_(std::move(parts)),
        input_(input),
        buffer_(buffer) {
    plan(slotElems(), nextSeq);
  }

 private:
  // Where chunk chunk_ of `rank`'s part goes in the output, and how many elements.
  uint8_t* outputOf(int rank) const {
    return at(buffer_, parts_[static_cast<size_t>(rank)].offset + chunkFirst());
  }
  size_t partChunk(int rank) const {
    const size_t count = parts_[static_cast<size_t>(rank)].count;
    return std::min(chunkCount(), count - std::min(count, chunkFirst()));
  }

  void contribute() override { copy(slotOf(me()), at(input_, chunkFirst()), partChunk(me())); }

  void copyLocal() override {
    const uint8_t* in = at(input_, chunkFirst());
    if (in != outputOf(me())) copy(outputOf(me()), in, partChunk(me()));
  }

  bool readPeers() override {
    for (int r = 0; r < ranks(); ++r) {
      if (r != me()) copy(outputOf(r), slotOf(r), partChunk(r));
    }
    return false;
  }

  const std::vector<Segment> parts_;  // one per local rank
  const void* const input_;
  void* const buffer_;
};

}  // namespace

std::unique_ptr<Collective> makeShmAllGather(NodeMemory& memory, const CollectiveArgs& args,
                                             uint32_t* nextSeq) {
  return std::make_unique<ShmAllGather>(memory, args, equalParts(memory.localSize(), args.count),
                                        args.sendbuff, args.recvbuff, nextSeq);
}

std::unique_ptr<Collective> makeShmAllGatherPhase(NodeMemory& memory, const CollectiveArgs& args,
                                                  std::vector<Segment> parts, const void* input,
                                                  void* buffer, uint32_t* nextSeq) {
  CollectiveArgs phase = args;
  phase.count = largestPart(parts);
  return std::make_unique<ShmAllGather>(memory, phase, std::move(parts), input, buffer, nextSeq);
}

}  // namespace ftccl
