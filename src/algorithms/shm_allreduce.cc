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
// The steps, flags, waits and the check that ranks called one op alike are
// shm_steps.h's, shared with the other shared-memory collectives.
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
  ShmAllReduce(NodeMemory& memory, const CollectiveArgs& args, uint32_t* nextSeq)
      : ShmCollective(memory, args, CollectiveKind::kAllReduce) {
    oneRound_ = args.count * elemSize_ <= kOneRoundBytes && args.count <= slotElems();
    plan(oneRound_ ? args.count : slotElems(), nextSeq);
  }

 private:
  void contribute() override { copy(slotOf(me()), at(args_.sendbuff, chunkFirst()), chunkCount()); }

  // One round: all n slots into the output. Pipelined: slice r into the output and back
  // into r's own slot (slice r of any slot is read only by rank r, which has read them
  // all by then), then done; the other slices come in collect().
  bool readPeers() override {
    if (oneRound_) {
      reduceSlots(args_.recvbuff, 0, chunkCount());
      return false;
    }
    size_t first = 0, count = 0;
    slice(me(), chunkCount(), &first, &count);
    uint8_t* out = at(args_.recvbuff, chunkFirst() + first);
    reduceSlots(out, first, count);
    copy(at(slotOf(me()), first), out, count);
    memory_.publishDone(seq_);
    return true;
  }

  bool oneRound_ = false;
};

}  // namespace

std::unique_ptr<Collective> makeShmAllReduce(NodeMemory& memory, const CollectiveArgs& args,
                                             uint32_t* nextSeq) {
  return std::make_unique<ShmAllReduce>(memory, args, nextSeq);
}

}  // namespace ftccl
