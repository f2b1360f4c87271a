// All-reduce over the node's shared memory (issue 26, docs/shared-memory.md): no
// messages, no tag matching; the flags and slots of transports/node_memory.h, whose
// contract (sequences, what ready and done promise) every step below keeps.
//
// Small buffers, one flag round (one sequence): each rank copies its input into its
// slot and publishes ready; once every rank's ready reaches the sequence, each rank
// reduces all n slots into its output itself and publishes done. Every rank reads n
// slots of the buffer's size, which is the least latency and, for small buffers, the
// least work. Up to 200 bytes the input travels in the rank's message lines instead of
// its slot (node_memory.h): the bytes come with the sequence in the same cache lines,
// one crossing between cores where a flag and a slot cost two one after the other
// (2 ranks, 8 B: 0.57 -> 0.45 us).
//
// Large buffers, pipelined (one sequence per chunk of a slot's size): each rank copies
// its chunk in, all but its own slice, and publishes ready; rank r reduces slice r of
// the chunk from every other rank's slot and its own input into slice r of its own slot
// (free: only r reads slice r of any slot, and r wrote nothing there), copies it to its
// output and publishes done; then it copies every other slice from its owner's slot
// once that owner's done is seen. Per rank and byte: read 3 - 1/n, write 2, against n
// reads per byte in one round. The next chunk goes to the other slot, so a fast rank
// fills it while slower ones still copy out. From kShmStreamBytes the copies into the
// output bypass the cache (copyStreaming): a plain store first reads the line it
// writes, traffic a buffer far larger than the cache pays for nothing.
//
// Same bits on every rank: each slice is reduced once, by one rank, in local rank order
// (((s0 op s1) op s2) ...) with src/reduce's kernels, and everyone copies it; Avg
// divides the finished sum by the local size once, as the transport's algorithms do.
// Right for a communicator whose ranks share one node (core uses it only there).
//
// The steps, flags, waits and the check that ranks called one op alike are
// shm_steps.h's, shared with the other shared-memory collectives.
#include <cstdlib>

#include "algorithms/collective.h"
#include "algorithms/shm_steps.h"
#include "reduce/reduce.h"

namespace ftccl {
namespace {

// Up to this size a buffer takes the one-round path (when it fits a slot): reading all
// n slots costs less than a second flag round below it.
constexpr size_t kOneRoundBytes = 32 * 1024;

class ShmAllReduce final : public ShmCollective {
 public:
  ShmAllReduce(NodeMemory& memory, const CollectiveArgs& args, uint32_t* nextSeq,
               size_t streamBytes)
      : ShmCollective(memory, args, CollectiveKind::kAllReduce) {
    oneRound_ = args.count * elemSize_ <= kOneRoundBytes && args.count <= slotElems();
    plan(oneRound_ ? args.count : slotElems(), nextSeq);
    if (oneRound_ && elemSize_) sendInLines(args.sendbuff, args.count * elemSize_);
    if (!oneRound_ && args.count * elemSize_ >= streamBytes) streamOutput();
  }

 private:
  // Pipelined, this rank's own slice stays out: only it would read it, and it reads it
  // from its input (at 2 ranks that halves what goes in).
  void contribute() override {
    const uint8_t* in = at(args_.sendbuff, chunkFirst());
    if (oneRound_) {
      copy(slotOf(me()), in, chunkCount());
      return;
    }
    size_t first = 0, count = 0;
    slice(me(), chunkCount(), &first, &count);
    copy(slotOf(me()), in, first);
    size_t rest = first + count;
    copy(at(slotOf(me()), rest), at(in, rest), chunkCount() - rest);
  }

  // One round: all n slots into the output. Pipelined: slice r, with r's part from its
  // input, into r's own slot (slice r of any slot is read only by rank r, and r's is
  // free: nothing went in there), then into the output (never reduced into the output
  // itself, which may be the input: the rank order of the fold is kept), then done; the
  // other slices come in collect().
  bool readPeers() override {
    if (inLines()) {
      reduceLines(args_.recvbuff, chunkCount());
      return false;
    }
    if (oneRound_) {
      reduceSlots(args_.recvbuff, 0, chunkCount());
      return false;
    }
    size_t first = 0, count = 0;
    slice(me(), chunkCount(), &first, &count);
    uint8_t* reduced = at(slotOf(me()), first);
    reduceSlots(reduced, first, count, at(args_.sendbuff, chunkFirst() + first));
    // Done first: peers read the slot, written with plain stores, and nothing rewrites
    // it before two sequences on; they need not wait for this copy (or its fence).
    memory_.publishDone(seq_);
    copyOut(at(args_.recvbuff, chunkFirst() + first), reduced, count);
    return true;
  }

  bool oneRound_ = false;
};

}  // namespace

std::unique_ptr<Collective> makeShmAllReduce(NodeMemory& memory, const CollectiveArgs& args,
                                             uint32_t* nextSeq, size_t streamBytes) {
  return std::make_unique<ShmAllReduce>(memory, args, nextSeq, streamBytes);
}

}  // namespace ftccl
