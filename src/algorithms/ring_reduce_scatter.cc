// Ring reduce-scatter: n-1 steps; at step k rank r sends its running partial of
// segment (r - k - 1) to the next rank and receives the previous rank's partial of
// segment (r - k - 2), which it combines with its own input. After n-1 steps the last
// segment received is r's own: rank r holds segment r reduced over all ranks (NCCL's
// layout; ring.h's all-reduce owns r + 1 instead). Segment s is combined in the fixed
// order s+1, s+2, ..., s on every run.
//
// Why a ring: (n-1) latencies and (n-1)/n of the input in and out of every rank, the
// minimum for a reduce-scatter, so it runs at link bandwidth for large buffers. Unlike
// the all-reduce's first half, the output holds only one segment, so running partials
// live in staging: each channel owns two slots and swaps them every step (receive
// into one while the other's send drains; the received slice is combined in place and
// sent from there next step). The last step combines straight into the output.
// Segment r of the input is read only at that last step, so the NCCL in-place layout
// (out == input + r's offset) needs no copy. Avg divides once, at that last step.
//
// The segment table is a parameter (ring_phases.h): equal parts for NCCL's
// ReduceScatter, the ring's uneven split for the hierarchical all-reduce's intra-node
// phase. Pipelining as in the ring all-reduce: slice c of every segment (slotBytes per
// slice) runs on channel c % channels; channels [0, channels) with channels <= min(
// pipeline.channels, slots / 2, kMaxPipelineChannels). Tolerates abort() at any point.
#include <algorithm>
#include <cstring>
#include <string>

#include "algorithms/inflight.h"
#include "algorithms/ring_phases.h"
#include "reduce/reduce.h"

namespace ftccl {
namespace {

class RingReduceScatter final : public Collective {
 public:
  RingReduceScatter(Transport& transport, const Scratch& scratch, const PipelineConfig& pipeline,
                    OpId id, ftcclDataType_t type, ftcclRedOp_t op, int avgDivisor,
                    std::vector<Segment> segments, const void* input, void* out)
      : scratch_(scratch),
        id_(id),
        type_(type),
        op_(op),
        avgDivisor_(avgDivisor),
        segments_(std::move(segments)),
        input_(static_cast<const uint8_t*>(input)),
        out_(static_cast<uint8_t*>(out)),
        elemSize_(dataTypeSize(type)),
        n_(transport.size()),
        rank_(transport.rank()),
        ring_(n_, rank_, 0) {
    sliceElems_ = std::max<size_t>(1, scratch.slotBytes / elemSize_);
    size_t largest = 0;
    for (const Segment& s : segments_) largest = std::max(largest, s.count);
    nSlices_ = (largest + sliceElems_ - 1) / sliceElems_;
    // Two slots per channel; never more channels than slices or than the budget.
    int channels = std::min({pipeline.channels, scratch.slots / 2, kMaxPipelineChannels});
    channels =
        static_cast<int>(std::min<size_t>(std::max(channels, 1), std::max<size_t>(nSlices_, 1)));
    channels_.resize(channels);
    for (int c = 0; c < channels; ++c) channels_[c].slice = c;
    inFlight_ = std::make_unique<InFlight>(transport, channels);
  }

  Status progress(bool* done) override {
    *done = false;
    if (n_ == 1 || nSlices_ == 0) {
      if (!copied_) finishAlone();
      copied_ = true;
      *done = true;
      return Status::ok();
    }
    if (scratch_.slots < 2) {
      return internalError("ring reduce-scatter needs 2 staging slots, has " +
                           std::to_string(scratch_.slots));
    }
    bool all = true;
    for (size_t c = 0; c < channels_.size(); ++c) {
      FTCCL_CHECK(advance(static_cast<int>(c)));
      all = all && channels_[c].slice >= nSlices_;
    }
    *done = all;
    return Status::ok();
  }

  void abort() override { inFlight_->abort(); }
  std::vector<int> pendingPeers() const override { return inFlight_->pendingPeers(); }
  uint64_t progressMark() const override { return inFlight_->progressMark(); }

 private:
  struct Channel {
    size_t slice = 0;
    int step = 0;
    int sendSlot = 0;  // which of the channel's two slots holds the running partial
  };

  uint8_t* slot(int c, int which) const { return scratch_.slot(2 * c + which); }

  void finishAlone() {
    const Segment& own = segments_[rank_];
    const uint8_t* from = input_ + own.offset * elemSize_;
    if (own.count && from != out_) std::memmove(out_, from, own.count * elemSize_);
    if (avgDivisor_ > 1 && own.count) divideBy(out_, own.count, type_, avgDivisor_);
  }

  Status advance(int c) {
    Channel& ch = channels_[c];
    while (ch.slice < nSlices_) {
      int sendSeg = ring_.reduceScatterSend(ch.step), recvSeg = ring_.reduceScatterRecv(ch.step);
      Segment sendPart = sliceOf(segments_[sendSeg], ch.slice, sliceElems_);
      Segment recvPart = sliceOf(segments_[recvSeg], ch.slice, sliceElems_);
      size_t recvBegin = recvPart.offset - segments_[recvSeg].offset;  // within the output
      if (inFlight_->idle(c)) {
        MessageKey key = id_.key(static_cast<uint32_t>(c));
        if (recvPart.count) {
          FTCCL_CHECK(inFlight_->recv(c, ring_.prev(), slot(c, 1 - ch.sendSlot),
                                      recvPart.count * elemSize_, key));
        }
        if (sendPart.count) {
          const uint8_t* from =
              ch.step == 0 ? input_ + sendPart.offset * elemSize_ : slot(c, ch.sendSlot);
          FTCCL_CHECK(inFlight_->send(c, ring_.next(), from, sendPart.count * elemSize_, key));
        }
      }
      bool stepDone = false;
      FTCCL_CHECK(inFlight_->testAll(c, &stepDone));
      if (!stepDone) return Status::ok();
      if (recvPart.count) {
        uint8_t* staged = slot(c, 1 - ch.sendSlot);
        const uint8_t* mine = input_ + recvPart.offset * elemSize_;
        bool last = ring_.isLastStep(ch.step);
        uint8_t* into = last ? out_ + recvBegin * elemSize_ : staged;
        reduce(into, mine, staged, recvPart.count, type_, op_);
        if (last && avgDivisor_ > 1) divideBy(into, recvPart.count, type_, avgDivisor_);
      }
      ch.sendSlot = 1 - ch.sendSlot;
      if (++ch.step == ring_.stepsPerPhase()) {
        ch.step = 0;
        ch.sendSlot = 0;
        ch.slice += channels_.size();
      }
    }
    return Status::ok();
  }

  Scratch scratch_;
  OpId id_;
  ftcclDataType_t type_;
  ftcclRedOp_t op_;
  int avgDivisor_;
  std::vector<Segment> segments_;
  const uint8_t* input_;
  uint8_t* out_;
  size_t elemSize_;
  int n_, rank_;
  RingPhases ring_;
  size_t sliceElems_ = 1, nSlices_ = 0;
  std::vector<Channel> channels_;
  std::unique_ptr<InFlight> inFlight_;
  bool copied_ = false;
};

}  // namespace

std::unique_ptr<Collective> makeRingReduceScatterPhase(Transport& transport, const Scratch& scratch,
                                                       const PipelineConfig& pipeline, OpId id,
                                                       ftcclDataType_t type, ftcclRedOp_t op,
                                                       int avgDivisor,
                                                       std::vector<Segment> segments,
                                                       const void* input, void* out) {
  return std::make_unique<RingReduceScatter>(transport, scratch, pipeline, id, type, op, avgDivisor,
                                             std::move(segments), input, out);
}

std::unique_ptr<Collective> makeRingReduceScatter(Transport& transport, const Scratch& scratch,
                                                  const PipelineConfig& pipeline,
                                                  const CollectiveArgs& args) {
  int n = transport.size();
  return makeRingReduceScatterPhase(transport, scratch, pipeline, opIdOf(args), args.type, args.op,
                                    args.op == ftcclAvg ? n : 0, equalParts(n, args.count),
                                    args.sendbuff, args.recvbuff);
}

}  // namespace ftccl
