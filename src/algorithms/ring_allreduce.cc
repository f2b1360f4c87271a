// Ring all-reduce: reduce-scatter, then all-gather, pipelined in slices.
//
// Why a ring: each rank sends and receives 2(n-1)/n of the buffer, the minimum for
// an all-reduce, so it reaches the link (or memory) bandwidth for large messages;
// it pays 2(n-1) latencies, which is why trees win below a few tens of KiB.
//
// Pipelining: every segment is cut into slices of chunkBytes. Slice c of all
// segments is an independent small all-reduce (disjoint memory), run on channel
// c % channels; `channels` slices are in flight at once, so while one channel waits
// for the network another reduces. Inside a channel, step k+1 starts only when step
// k's send and receive are both complete, which rules out every buffer hazard
// (in place included). Reduce-scatter receives land in the channel's staging slot
// and are combined as recv[seg] = send[seg] (op) staging, so no copy of the input
// is ever made; all-gather receives land directly in recvbuff.
//
// Tolerates: abort() at any point cancels the posted requests.
#include <algorithm>
#include <cstring>
#include <vector>

#include "algorithms/collective.h"
#include "algorithms/inflight.h"
#include "algorithms/ring.h"
#include "reduce/reduce.h"

namespace ftccl {
namespace {

class RingAllReduce final : public Collective {
 public:
  RingAllReduce(Transport& transport, const Scratch& scratch, const PipelineConfig& pipeline,
                const CollectiveArgs& args)
      : scratch_(scratch),
        args_(args),
        ring_(transport.size(), transport.rank(), args.count),
        elemSize_(dataTypeSize(args.type)) {
    sliceElems_ = scratch.slotBytes / elemSize_;
    if (sliceElems_ == 0) sliceElems_ = 1;
    size_t largest = ring_.largestSegment();
    nSlices_ = (largest + sliceElems_ - 1) / sliceElems_;
    int channels = pipeline.channels < scratch.slots ? pipeline.channels : scratch.slots;
    if (static_cast<size_t>(channels) > nSlices_) channels = static_cast<int>(nSlices_);
    channels_.resize(channels);
    for (int c = 0; c < channels; ++c) channels_[c].slice = c;
    inFlight_ = std::make_unique<InFlight>(transport, channels);
  }

  Status progress(bool* done) override {
    if (ring_.nranks() == 1 || args_.count == 0) {
      if (args_.count && args_.sendbuff != args_.recvbuff) {
        std::memcpy(args_.recvbuff, args_.sendbuff, args_.count * elemSize_);
      }
      *done = true;
      return Status::ok();
    }
    bool allDone = true;
    for (int c = 0; c < static_cast<int>(channels_.size()); ++c) {
      FTCCL_CHECK(advance(c));
      if (channels_[c].slice < nSlices_) allDone = false;
    }
    *done = allDone;
    return Status::ok();
  }

  void abort() override { inFlight_->abort(); }
  uint64_t progressMark() const override { return inFlight_->progressMark(); }
  std::vector<int> pendingPeers() const override { return inFlight_->pendingPeers(); }

 private:
  struct Channel {
    size_t slice = 0;  // current slice; >= nSlices_ when the channel is finished
    int step = 0;
  };

  const uint8_t* input() const { return static_cast<const uint8_t*>(args_.sendbuff); }
  uint8_t* output() const { return static_cast<uint8_t*>(args_.recvbuff); }

  // Runs channel c's steps as far as its requests allow.
  Status advance(int c) {
    Channel& ch = channels_[c];
    while (ch.slice < nSlices_) {
      Segment sendPart = sliceOf(ring_.segment(ring_.sendSegment(ch.step)), ch.slice, sliceElems_);
      Segment recvPart = sliceOf(ring_.segment(ring_.recvSegment(ch.step)), ch.slice, sliceElems_);
      bool reduceStep = ring_.isReduceScatterStep(ch.step);
      if (inFlight_->idle(c)) {
        MessageKey key = args_.key(static_cast<uint32_t>(c));
        if (recvPart.count) {
          void* into = reduceStep ? scratch_.slot(c) : output() + recvPart.offset * elemSize_;
          FTCCL_CHECK(inFlight_->recv(c, ring_.prev(), into, recvPart.count * elemSize_, key));
        }
        if (sendPart.count) {
          const uint8_t* from = (ch.step == 0 ? input() : output()) + sendPart.offset * elemSize_;
          FTCCL_CHECK(inFlight_->send(c, ring_.next(), from, sendPart.count * elemSize_, key));
        }
      }
      bool stepDone = false;
      FTCCL_CHECK(inFlight_->testAll(c, &stepDone));
      if (!stepDone) return Status::ok();

      if (reduceStep && recvPart.count) {
        size_t at = recvPart.offset * elemSize_;
        reduce(output() + at, input() + at, scratch_.slot(c), recvPart.count, args_.type, args_.op);
        if (args_.op == ftcclAvg && ch.step == ring_.nranks() - 2) {
          divideBy(output() + at, recvPart.count, args_.type, ring_.nranks());
        }
      }
      if (++ch.step == ring_.steps()) {
        ch.step = 0;
        ch.slice += channels_.size();
      }
    }
    return Status::ok();
  }

  Scratch scratch_;
  CollectiveArgs args_;
  RingSchedule ring_;
  size_t elemSize_;
  size_t sliceElems_ = 1;
  size_t nSlices_ = 0;
  std::vector<Channel> channels_;
  std::unique_ptr<InFlight> inFlight_;
};

}  // namespace

std::unique_ptr<Collective> makeRingAllReduce(Transport& transport, const Scratch& scratch,
                                              const PipelineConfig& pipeline,
                                              const CollectiveArgs& args) {
  return std::make_unique<RingAllReduce>(transport, scratch, pipeline, args);
}

}  // namespace ftccl
