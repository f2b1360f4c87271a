// Ring all-gather: n-1 steps; at step k rank r forwards segment (r - k) to the next
// rank and receives segment (r - k - 1) from the previous one, straight into place.
//
// Why a ring: (n-1) latencies and (n-1)/n of the output in and out of every rank, the
// minimum; no staging and no reduction. Everything moves inside the output buffer:
// rank r's own part is copied there first (skipped in NCCL's in-place layout, where
// sendbuff already is recvbuff + r * count). A received slice is forwarded only in the
// next step, after its receive completed, and nothing is ever overwritten, so there is
// no buffer hazard. The segment table is a parameter (ring_phases.h), so the
// hierarchical all-reduce's intra-node gather of uneven segments is this same code.
//
// Slices of chunkBytes; slice c of every segment runs on channel c % channels, channels
// [0, channels) with channels <= kMaxPipelineChannels, overlapping like the ring
// all-reduce's. Tolerates abort() at any point.
#include <algorithm>
#include <cstring>

#include "algorithms/inflight.h"
#include "algorithms/ring_phases.h"
#include "reduce/reduce.h"

namespace ftccl {
namespace {

class RingAllGather final : public Collective {
 public:
  RingAllGather(Transport& transport, const PipelineConfig& pipeline, OpId op, size_t elemSize,
                std::vector<Segment> segments, void* buffer)
      : op_(op),
        elemSize_(elemSize),
        segments_(std::move(segments)),
        buffer_(static_cast<uint8_t*>(buffer)),
        n_(transport.size()),
        ring_(n_, transport.rank(), 0) {
    size_t largest = 0;
    for (const Segment& s : segments_) largest = std::max(largest, s.count);
    // No staging, so slices are only a pipelining unit (chunkBytes 0: one slice).
    sliceElems_ = pipeline.chunkBytes ? std::max<size_t>(1, pipeline.chunkBytes / elemSize_)
                                      : std::max<size_t>(1, largest);
    nSlices_ = (largest + sliceElems_ - 1) / sliceElems_;
    int channels = std::max(1, std::min(pipeline.channels, kMaxPipelineChannels));
    channels = static_cast<int>(std::min<size_t>(channels, std::max<size_t>(nSlices_, 1)));
    channels_.resize(channels);
    for (int c = 0; c < channels; ++c) channels_[c].slice = c;
    inFlight_ = std::make_unique<InFlight>(transport, channels);
  }

  Status progress(bool* done) override {
    *done = false;
    if (n_ > 1) {
      for (size_t c = 0; c < channels_.size(); ++c) FTCCL_CHECK(advance(static_cast<int>(c)));
    }
    bool all = true;
    for (const Channel& ch : channels_) all = all && (n_ == 1 || ch.slice >= nSlices_);
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
  };

  Status advance(int c) {
    Channel& ch = channels_[c];
    while (ch.slice < nSlices_) {
      Segment sendPart = sliceOf(segments_[ring_.allGatherSend(ch.step)], ch.slice, sliceElems_);
      Segment recvPart = sliceOf(segments_[ring_.allGatherRecv(ch.step)], ch.slice, sliceElems_);
      if (inFlight_->idle(c)) {
        MessageKey key = op_.key(static_cast<uint32_t>(c));
        if (recvPart.count) {
          FTCCL_CHECK(inFlight_->recv(c, ring_.prev(), buffer_ + recvPart.offset * elemSize_,
                                      recvPart.count * elemSize_, key));
        }
        if (sendPart.count) {
          FTCCL_CHECK(inFlight_->send(c, ring_.next(), buffer_ + sendPart.offset * elemSize_,
                                      sendPart.count * elemSize_, key));
        }
      }
      bool stepDone = false;
      FTCCL_CHECK(inFlight_->testAll(c, &stepDone));
      if (!stepDone) return Status::ok();
      if (++ch.step == ring_.stepsPerPhase()) {
        ch.step = 0;
        ch.slice += channels_.size();
      }
    }
    return Status::ok();
  }

  OpId op_;
  size_t elemSize_;
  std::vector<Segment> segments_;
  uint8_t* buffer_;
  int n_;
  RingPhases ring_;
  size_t sliceElems_ = 1, nSlices_ = 0;
  std::vector<Channel> channels_;
  std::unique_ptr<InFlight> inFlight_;
};

// NCCL's AllGather: copy the own part into place, then the ring phase.
class NcclAllGather final : public Collective {
 public:
  NcclAllGather(Transport& transport, const PipelineConfig& pipeline, const CollectiveArgs& args)
      : args_(args), bytes_(args.count * dataTypeSize(args.type)) {
    phase_ = makeRingAllGatherPhase(transport, pipeline, opIdOf(args), dataTypeSize(args.type),
                                    equalParts(transport.size(), args.count), args.recvbuff);
    ownAt_ = static_cast<uint8_t*>(args.recvbuff) + static_cast<size_t>(transport.rank()) * bytes_;
  }
  Status progress(bool* done) override {
    if (!copied_ && bytes_ && args_.sendbuff != ownAt_)
      std::memmove(ownAt_, args_.sendbuff, bytes_);
    copied_ = true;
    return phase_->progress(done);
  }
  void abort() override { phase_->abort(); }
  std::vector<int> pendingPeers() const override { return phase_->pendingPeers(); }
  uint64_t progressMark() const override { return phase_->progressMark(); }

 private:
  CollectiveArgs args_;
  size_t bytes_;
  uint8_t* ownAt_ = nullptr;
  bool copied_ = false;
  std::unique_ptr<Collective> phase_;
};

}  // namespace

std::unique_ptr<Collective> makeRingAllGatherPhase(Transport& transport,
                                                   const PipelineConfig& pipeline, OpId op,
                                                   size_t elemSize, std::vector<Segment> segments,
                                                   void* buffer) {
  return std::make_unique<RingAllGather>(transport, pipeline, op, elemSize, std::move(segments),
                                         buffer);
}

std::unique_ptr<Collective> makeRingAllGather(Transport& transport, const PipelineConfig& pipeline,
                                              const CollectiveArgs& args) {
  return std::make_unique<NcclAllGather>(transport, pipeline, args);
}

}  // namespace ftccl
