// Reduce-scatter over the node's shared memory (issue 26, docs/shared-memory.md): block
// r of every rank's slot read by rank r, with the flags of transports/node_memory.h and
// the steps of shm_steps.h.
//
// NCCL's layout: each rank sends n parts of `count` elements (part p at p * count) and
// receives `count`, part r reduced over all ranks on rank r (in place: recvbuff is
// sendbuff + r * count). A chunk carries the same element range of all n parts: a slot
// is cut into n blocks of a slot's n-th (on cache lines), block p holding part p's
// range, so every slot is full whatever n, and the op takes one sequence per block's
// worth of a part. Each rank copies its blocks in (out of place all but its own, which
// only it reads, from its input) and publishes ready; once every rank's ready reached
// the chunk, rank r reduces block r of every slot into its output and publishes done.
// Per rank and output byte: n reads and one write, the least a reduction of n inputs
// can do, all ranks reducing at once; with two slots a rank fills chunk t + 1 while
// slower ones still reduce chunk t. In place, a chunk's output overwrites only its own
// part's range of the input, which is in the slot by then.
//
// Each element is reduced in local rank order (((s0 op s1) op s2) ...) with
// src/reduce's kernels, by the one rank that receives it; Avg divides the finished sum
// by the local size once, as the transport's algorithms do.
//
// Single copy (2 local ranks, parts from kShmSingleCopyReducePartBytes to
// kShmSingleCopyReduceMaxPartBytes, where the memory has it: collective.h): one sequence
// for the whole op. Each rank puts its input's address in its slot (PublishedBuffer),
// reads its own part of the other's input straight from the other's process, a slot's
// worth at a time, into its slot of the next sequence (a scratch nobody reads), reduces
// that with its own part into its output in rank order, publishes done ("finished
// reading yours") and returns once the other's done came. The operands of the
// reduction are then in this rank's cache, where over the slots one of them is in the
// other core's (the ring over UCX, which also reads the peer's buffer through the
// kernel, beat the slots at 64-256 KiB for that reason). An aborted rank marks its
// buffer released, as the all-gather's (shm_allgather.cc).
//
// The hierarchical all-reduce's first intra-node phase is the same op over the ring's
// uneven parts of one buffer (ring_phases.h): parts differ by an element at most, the
// op plans by the largest (its description's count), and a smaller part's last chunk
// is one element shorter or empty.
#include <algorithm>
#include <utility>
#include <vector>

#include "algorithms/collective.h"
#include "algorithms/ring_phases.h"
#include "algorithms/shm_steps.h"
#include "reduce/reduce.h"

namespace ftccl {
namespace {

class ShmReduceScatter final : public ShmCollective {
 public:
  // args.count is the largest part; part r of `input` ends reduced in `out` on rank r.
  ShmReduceScatter(NodeMemory& memory, const CollectiveArgs& args, std::vector<Segment> parts,
                   const void* input, void* out, uint32_t* nextSeq)
      : ShmCollective(memory, args, CollectiveKind::kReduceScatter),
        parts_(std::move(parts)),
        input_(input),
        out_(out),
        ownFromInput_(!overlaps(ownPart(), parts_[static_cast<size_t>(me())].count)),
        singleCopy_(singleCopyFits(memory, args)) {
    plan(singleCopy_ ? args.count : blockElems(ranks()), nextSeq);
    if (singleCopy_) releaseByMark();
  }

 private:
  // Elements of part p in this chunk: chunkCount() or fewer for a smaller part.
  size_t partChunk(int p) const {
    const size_t count = parts_[static_cast<size_t>(p)].count;
    return std::min(chunkCount(), count - std::min(count, chunkFirst()));
  }

  const uint8_t* ownPart() const { return at(input_, parts_[static_cast<size_t>(me())].offset); }
  // Whether `count` elements from `from` share a byte with this rank's output.
  bool overlaps(const uint8_t* from, size_t count) const {
    const auto* out = static_cast<const uint8_t*>(out_);
    const size_t bytes = parts_[static_cast<size_t>(me())].count * elemSize_;
    return from < out + bytes && out < from + count * elemSize_;
  }

  // One peer: with several readers at once the kernel's page pinning lost (collective.h).
  static bool singleCopyFits(const NodeMemory& memory, const CollectiveArgs& args) {
    const size_t part = args.count * dataTypeSize(args.type);
    return memory.singleCopy() && memory.localSize() == 2 &&
           part >= kShmSingleCopyReducePartBytes && part <= kShmSingleCopyReduceMaxPartBytes &&
           sizeof(PublishedBuffer) <= memory.slotBytes();
  }
  size_t inputBytes() const { return (parts_.back().offset + parts_.back().count) * elemSize_; }

  // Only rank r reads block r, so where this rank's own part is not its output (out of
  // place) its block stays out of the slot and is read from the input: a copy of n
  // saved (2 ranks, 4 KiB: half of what goes in).
  void contribute() override {
    if (singleCopy_) return publishBuffer(input_, inputBytes());
    for (int p = 0; p < ranks(); ++p) {
      if (p == me() && ownFromInput_) continue;
      copy(at(slotOf(me()), static_cast<size_t>(p) * chunkElems_),
           at(input_, parts_[static_cast<size_t>(p)].offset + chunkFirst()), partChunk(p));
    }
  }

  bool readPeers() override {
    if (singleCopy_) return readAndReduce();
    reduceSlots(at(out_, chunkFirst()), static_cast<size_t>(me()) * chunkElems_, partChunk(me()),
                ownFromInput_ ? at(ownPart(), chunkFirst()) : nullptr);
    return false;
  }

  // Single copy: a slot's worth of this rank's part of the other's input per call, read
  // into this rank's slot of the next sequence (free: every peer finished reading older
  // ones) and reduced there with its own part into the output, in rank order; then done
  // ("finished reading yours") and a wait for the other's.
  bool readAndReduce() {
    const int peer = 1 - me();
    const Segment& mine = parts_[static_cast<size_t>(me())];
    const size_t bytes = mine.count * elemSize_;
    const size_t piece = std::min(bytes - readBytes(), memory_.slotBytes());
    uint8_t* scratch = memory_.slot(me(), slotIndexOf(seq_ + 1));
    Status read =
        readPublished(peer, inputBytes(), mine.offset * elemSize_ + readBytes(), scratch, piece);
    if (!read.isOk()) {
      fail(read);
      return false;
    }
    const size_t first = readBytes() / elemSize_, count = piece / elemSize_;
    const uint8_t* own = at(ownPart(), first);
    uint8_t* out = at(out_, first);
    reduce(out, me() == 0 ? own : scratch, me() == 0 ? scratch : own, count, args_.type, args_.op);
    if (args_.op == ftcclAvg) divideBy(out, count, args_.type, ranks());
    return morePieces(piece, bytes) ? false : finishedReading();
  }
  void collect(int) override {}  // single copy: the second phase only waits

  const std::vector<Segment> parts_;  // one per local rank
  const void* const input_;
  void* const out_;
  // In place the output is this rank's part of the input, and reduceSlots may write
  // it before reading it: then the part goes through the slot as the others do.
  const bool ownFromInput_;
  const bool singleCopy_;
};

}  // namespace

std::unique_ptr<Collective> makeShmReduceScatter(NodeMemory& memory, const CollectiveArgs& args,
                                                 uint32_t* nextSeq) {
  return std::make_unique<ShmReduceScatter>(memory, args,
                                            equalParts(memory.localSize(), args.count),
                                            args.sendbuff, args.recvbuff, nextSeq);
}

std::unique_ptr<Collective> makeShmReduceScatterPhase(NodeMemory& memory,
                                                      const CollectiveArgs& args,
                                                      std::vector<Segment> parts, const void* input,
                                                      void* out, uint32_t* nextSeq) {
  CollectiveArgs phase = args;
  phase.count = largestPart(parts);
  return std::make_unique<ShmReduceScatter>(memory, phase, std::move(parts), input, out, nextSeq);
}

}  // namespace ftccl
