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
// Single copy (2 local ranks, parts from kShmSingleCopyPartBytes, where the memory has
// it: collective.h): one sequence for the whole op. Each rank puts its part's address in
// its slot (PublishedBuffer), copies its own part out, reads the other's part straight
// from the other's process into its output, publishes done ("finished reading yours")
// and returns once the other's done came: until then its own buffer must not change.
// Done cannot also say "released" as the broadcast root's does, so a rank whose op ends
// first marks its published buffer released instead, and a reader that sees the mark
// after its read fails. Two copies of a part instead of three, one flag round more.
//
// The hierarchical all-reduce's last intra-node phase is the same op over the ring's
// uneven parts of one buffer, planned by the largest part as the reduce-scatter is.
#include <algorithm>
#include <utility>
#include <vector>

#include "algorithms/collective.h"
#include "algorithms/ring_phases.h"
#include "algorithms/shm_steps.h"
#include "reduce/reduce.h"

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
        buffer_(buffer),
        singleCopy_(singleCopyFits(memory, args)) {
    plan(singleCopy_ ? args.count : slotElems(), nextSeq);
    if (singleCopy_) releaseByMark();
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

  // One peer: with several readers at once the kernel's page pinning lost (collective.h).
  static bool singleCopyFits(const NodeMemory& memory, const CollectiveArgs& args) {
    const size_t part = args.count * dataTypeSize(args.type);
    return memory.singleCopy() && memory.localSize() == 2 && part >= kShmSingleCopyPartBytes &&
           sizeof(PublishedBuffer) <= memory.slotBytes();
  }
  size_t partBytes(int rank) const { return parts_[static_cast<size_t>(rank)].count * elemSize_; }

  void contribute() override {
    if (!singleCopy_) {
      copy(slotOf(me()), at(input_, chunkFirst()), partChunk(me()));
      return;
    }
    publishBuffer(input_, partBytes(me()));
  }

  void copyLocal() override {
    const uint8_t* in = at(input_, chunkFirst());
    if (in != outputOf(me())) copy(outputOf(me()), in, partChunk(me()));
  }

  bool readPeers() override {
    if (singleCopy_) return readPeerBuffer();
    for (int r = 0; r < ranks(); ++r) {
      if (r != me()) copy(outputOf(r), slotOf(r), partChunk(r));
    }
    return false;
  }

  // Single copy: the other rank's part straight from its buffer, a piece per call (the
  // driver sees revocation between them), then done ("finished reading yours"), and a
  // wait for the other's done: it reads this rank's buffer meanwhile.
  bool readPeerBuffer() {
    const int peer = 1 - me();
    const size_t bytes = partBytes(peer);
    const size_t piece = std::min(bytes - readBytes(), 16 * memory_.slotBytes());
    Status read = readPublished(peer, bytes, readBytes(), outputOf(peer) + readBytes(), piece);
    if (!read.isOk()) {
      fail(read);
      return false;
    }
    return morePieces(piece, bytes) ? false : finishedReading();
  }

  void collect(int) override {}  // single copy: the second phase only waits

  const std::vector<Segment> parts_;  // one per local rank
  const void* const input_;
  void* const buffer_;
  const bool singleCopy_;
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
