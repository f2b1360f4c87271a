// Reduce as a pipelined chain ending at the root: root+1 -> root+2 -> ... -> root.
//
// Why a chain: the mirror of the chain broadcast. Every link carries the buffer once,
// so large messages take S/bandwidth plus (n-2) chunk latencies (n-1 hops for one
// chunk); each rank combines its own input into the running partial as it passes, in
// the fixed order root+1, root+2, ..., root. The first rank sends straight from its
// input; a middle rank receives chunk i into staging slot i % slots, combines it with
// its input there and forwards it from the slot, which is reused (its next receive
// posted) only once that send completed; the root combines into recvbuff and, for Avg,
// divides once. Only the root's recvbuff is written (others may pass NULL).
//
// All chunks use channel 0 (in-order delivery); up to `slots` chunks are in flight
// per link (chunks are min(chunkBytes, slotBytes)). Tolerates abort() at any point.
#include <algorithm>
#include <cstring>

#include "algorithms/collective.h"
#include "algorithms/inflight.h"
#include "reduce/reduce.h"

namespace ftccl {
namespace {

class ChainReduce final : public Collective {
 public:
  ChainReduce(Transport& transport, const Scratch& scratch, const PipelineConfig& pipeline,
              const CollectiveArgs& args)
      : transport_(transport),
        inFlight_(transport, kWindows),
        scratch_(scratch),
        args_(args),
        n_(transport.size()),
        elemSize_(dataTypeSize(args.type)) {
    position_ = ((transport.rank() - args.root - 1) % n_ + n_) % n_;
    // A chunk must fit a staging slot (chunkBytes 0: as large as a slot).
    size_t chunkBytes =
        pipeline.chunkBytes ? std::min(pipeline.chunkBytes, scratch.slotBytes) : scratch.slotBytes;
    chunkElems_ = std::max<size_t>(1, chunkBytes / elemSize_);
    nChunks_ = (args.count + chunkElems_ - 1) / chunkElems_;
    slots_ = std::max(1, scratch.slots);
  }

  Status progress(bool* done) override {
    if (n_ == 1) {
      if (args_.count && args_.sendbuff != args_.recvbuff) {
        std::memmove(args_.recvbuff, args_.sendbuff, args_.count * elemSize_);
      }
      *done = true;
      return Status::ok();
    }
    if (nChunks_ && scratch_.slots < 1) return internalError("chain reduce needs a staging slot");
    bool first = position_ == 0, root = position_ == n_ - 1;
    MessageKey key = args_.key(0);
    if (!first) {
      // Post receives ahead while their slots are free.
      size_t freed = root ? received_ : sendsDone_;
      while (recvPosted_ < nChunks_ && recvPosted_ < freed + slots_) {
        FTCCL_CHECK(
            inFlight_.recv(kRecvs, prev(), slotOf(recvPosted_), chunkBytes(recvPosted_), key));
        ++recvPosted_;
      }
      size_t landed = 0;
      FTCCL_CHECK(inFlight_.testOldest(kRecvs, &landed));
      for (; landed; --landed) combine(received_++, root);
    } else {
      received_ = nChunks_;
    }
    if (!root) {
      size_t sent = 0;
      FTCCL_CHECK(inFlight_.testOldest(kSends, &sent));
      sendsDone_ += sent;
      while (sendPosted_ < received_ && inFlight_.count(kSends) < static_cast<size_t>(slots_)) {
        const uint8_t* from =
            first ? input() + sendPosted_ * chunkElems_ * elemSize_ : slotOf(sendPosted_);
        FTCCL_CHECK(inFlight_.send(kSends, next(), from, chunkBytes(sendPosted_), key));
        ++sendPosted_;
      }
    }
    *done = received_ == nChunks_ && (root || (sendPosted_ == nChunks_ && inFlight_.idle(kSends)));
    return Status::ok();
  }

  void abort() override { inFlight_.abort(); }
  std::vector<int> pendingPeers() const override { return inFlight_.pendingPeers(); }
  uint64_t progressMark() const override { return inFlight_.progressMark(); }

 private:
  enum Window { kRecvs, kSends, kWindows };  // InFlight groups, each completing in order
  int prev() const { return (transport_.rank() - 1 + n_) % n_; }
  int next() const { return (transport_.rank() + 1) % n_; }
  const uint8_t* input() const { return static_cast<const uint8_t*>(args_.sendbuff); }
  uint8_t* slotOf(size_t chunk) const { return scratch_.slot(static_cast<int>(chunk % slots_)); }
  size_t chunkCount(size_t i) const { return std::min(chunkElems_, args_.count - i * chunkElems_); }
  size_t chunkBytes(size_t i) const { return chunkCount(i) * elemSize_; }

  // A middle rank folds its input into the slot; the root into recvbuff.
  void combine(size_t chunk, bool root) {
    size_t at = chunk * chunkElems_ * elemSize_, count = chunkCount(chunk);
    uint8_t* into = root ? static_cast<uint8_t*>(args_.recvbuff) + at : slotOf(chunk);
    reduce(into, input() + at, slotOf(chunk), count, args_.type, args_.op);
    if (root && args_.op == ftcclAvg) divideBy(into, count, args_.type, n_);
  }

  Transport& transport_;
  InFlight inFlight_;
  Scratch scratch_;
  CollectiveArgs args_;
  int n_;
  size_t elemSize_;
  int position_ = 0;
  size_t chunkElems_ = 1, nChunks_ = 0;
  int slots_ = 1;
  size_t recvPosted_ = 0, received_ = 0, sendPosted_ = 0, sendsDone_ = 0;
};

}  // namespace

std::unique_ptr<Collective> makeChainReduce(Transport& transport, const Scratch& scratch,
                                            const PipelineConfig& pipeline,
                                            const CollectiveArgs& args) {
  return std::make_unique<ChainReduce>(transport, scratch, pipeline, args);
}

}  // namespace ftccl
