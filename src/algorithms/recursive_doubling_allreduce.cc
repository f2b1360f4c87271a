// Recursive doubling all-reduce (schedule in recursive_doubling.h).
//
// Why: small all-reduces are all latency. The ring pays 2(n-1) message latencies and
// the double tree 2 log2(n); recursive doubling pays log2(n) (+2 when n is not a power
// of two), which halves the tree's at 4 and 8 ranks. It sends the whole buffer every
// round (log2(n) S against the ring's 2(n-1)/n S), so the tuner gives it small sizes.
//
// Each round posts the send of recvbuff and the receive of the partner's partial into
// staging together, then combines once both completed, so the send never reads memory
// being written. Both partners compute lower ranks' partial (op) higher ranks' partial,
// so they hold the same bits after every round and every rank ends with the same
// result (every op is commutative, so this order is a safeguard, not a necessity;
// float32/64 NaN payloads are left to the compiler, see src/reduce). Avg divides once,
// before the result goes back to a folded rank.
//
// A round's message goes as pieces of at most 8 KiB (kPieceBytes), all posted at once:
// the transport sends such messages eagerly, where a larger one takes a rendezvous
// handshake (a round trip, and a sleep and a wake when ranks share cores) that made
// the 32 KiB all-reduce on 4 ranks cost 100 us instead of about 60. Above 64 pieces
// (512 KiB) a round is one message: 64 rendezvous pieces in flight at once hung a
// 16 MiB all-reduce on 4 ranks in 3 runs of 6 (not understood yet; see the note).
//
// A buffer larger than the staging memory runs the whole schedule once per staging-
// sized chunk, one after another (messages of one pair and key arrive in posting
// order, so pieces and chunks cannot mix). Tolerates abort() at any point.
#include <algorithm>
#include <cstring>
#include <vector>

#include "algorithms/collective.h"
#include "algorithms/inflight.h"
#include "algorithms/recursive_doubling.h"
#include "reduce/reduce.h"

namespace ftccl {
namespace {

constexpr size_t kPieceBytes = 8 * 1024;
constexpr size_t kMaxPieces = 64;

class RecursiveDoublingAllReduce final : public Collective {
 public:
  RecursiveDoublingAllReduce(Transport& transport, const Scratch& scratch,
                             const CollectiveArgs& args)
      : transport_(transport),
        args_(args),
        elemSize_(dataTypeSize(args.type)),
        staging_(scratch.base),
        inFlight_(transport) {
    size_t stagingBytes = scratch.slotBytes * static_cast<size_t>(std::max(scratch.slots, 0));
    int n = transport.size();
    if (n == 1 || args.count == 0) return;
    if (stagingBytes < elemSize_) {
      setup_ = invalidArgument("recursive doubling all-reduce: scratch too small");
      return;
    }
    chunkElems_ = stagingBytes / elemSize_;
    chunks_ = (args.count + chunkElems_ - 1) / chunkElems_;
    buildSteps(doublingPlan(n, transport.rank()));
  }

  Status progress(bool* done) override {
    *done = false;
    FTCCL_CHECK(setup_);
    if (!started_) {
      started_ = true;
      if (args_.count && args_.sendbuff != args_.recvbuff) {
        std::memcpy(args_.recvbuff, args_.sendbuff, args_.count * elemSize_);
      }
    }
    while (chunk_ < chunks_) {
      if (step_ == steps_.size()) {
        ++chunk_;
        step_ = 0;
        continue;
      }
      bool finished = false;
      FTCCL_CHECK(advance(steps_[step_], &finished));
      if (!finished) return Status::ok();
      ++step_;
    }
    *done = true;
    return Status::ok();
  }

  void abort() override { inFlight_.abort(); }
  std::vector<int> pendingPeers() const override { return inFlight_.pendingPeers(); }
  uint64_t progressMark() const override { return inFlight_.progressMark(); }

 private:
  enum class Combine { kNone, kPartnerFirst, kMineFirst };
  struct Step {
    int peer = -1;
    bool send = false;
    bool recv = false;
    bool recvIntoResult = false;  // a folded rank's result; else the partner's partial
    Combine combine = Combine::kNone;
    bool finishAvg = false;  // the last combine: the result is complete
  };

  void buildSteps(const DoublingPlan& plan) {
    int rank = transport_.rank();
    if (plan.role == DoublingPlan::kFolds) {
      steps_.push_back(Step{plan.neighbour, true, false, false, Combine::kNone, false});
      steps_.push_back(Step{plan.neighbour, false, true, true, Combine::kNone, false});
      return;
    }
    if (plan.role == DoublingPlan::kAbsorbs) {
      steps_.push_back(Step{plan.neighbour, false, true, false, Combine::kPartnerFirst, false});
    }
    for (int partner : plan.partners) {
      Combine order = partner < rank ? Combine::kPartnerFirst : Combine::kMineFirst;
      steps_.push_back(Step{partner, true, true, false, order, false});
    }
    steps_.back().finishAvg = args_.op == ftcclAvg;
    if (plan.role == DoublingPlan::kAbsorbs) {
      steps_.push_back(Step{plan.neighbour, true, false, false, Combine::kNone, false});
    }
  }

  // Posts the step for the current chunk if nothing is posted, then tests it; combines
  // once both of its transfers completed.
  Status advance(const Step& step, bool* finished) {
    size_t first = chunk_ * chunkElems_;
    size_t count = std::min(chunkElems_, args_.count - first);
    uint8_t* result = static_cast<uint8_t*>(args_.recvbuff) + first * elemSize_;
    if (inFlight_.idle(0)) {
      MessageKey key = args_.key(0);
      size_t bytes = count * elemSize_;
      size_t pieceElems = std::max<size_t>(
          1, (bytes <= kPieceBytes * kMaxPieces ? kPieceBytes : bytes) / elemSize_);
      uint8_t* into = step.recvIntoResult ? result : staging_;
      for (size_t at = 0; at < count; at += pieceElems) {
        size_t offset = at * elemSize_, length = std::min(pieceElems, count - at) * elemSize_;
        if (step.send) FTCCL_CHECK(inFlight_.send(0, step.peer, result + offset, length, key));
        if (step.recv) FTCCL_CHECK(inFlight_.recv(0, step.peer, into + offset, length, key));
      }
    }
    bool done = false;
    FTCCL_CHECK(inFlight_.testAll(0, &done));
    if (!done) return Status::ok();
    if (step.combine == Combine::kPartnerFirst) {
      reduce(result, staging_, result, count, args_.type, args_.op);
    } else if (step.combine == Combine::kMineFirst) {
      reduce(result, result, staging_, count, args_.type, args_.op);
    }
    if (step.finishAvg) divideBy(result, count, args_.type, transport_.size());
    *finished = true;
    return Status::ok();
  }

  Transport& transport_;
  CollectiveArgs args_;
  size_t elemSize_;
  uint8_t* staging_;
  Status setup_;
  size_t chunkElems_ = 1, chunks_ = 0;
  std::vector<Step> steps_;
  size_t chunk_ = 0, step_ = 0;
  bool started_ = false;
  InFlight inFlight_;  // the current step's pieces
};

}  // namespace

std::unique_ptr<Collective> makeRecursiveDoublingAllReduce(Transport& transport,
                                                           const Scratch& scratch,
                                                           const CollectiveArgs& args) {
  return std::make_unique<RecursiveDoublingAllReduce>(transport, scratch, args);
}

}  // namespace ftccl
