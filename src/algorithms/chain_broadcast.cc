// Broadcast as a pipelined chain: root -> root+1 -> ... -> root-1.
//
// Why a chain: every link carries the buffer once, so for large messages the time is
// size/bandwidth plus (n-2) chunk latencies; small messages pay n-1 hops (a tree,
// later, pays log n). Each rank receives chunk i straight into recvbuff and forwards
// it as soon as it lands; up to `channels` receives and sends are outstanding. All
// chunks use one channel: the transport delivers them in order.
#include <cstring>

#include "algorithms/collective.h"
#include "algorithms/inflight.h"
#include "algorithms/ring.h"
#include "reduce/reduce.h"

namespace ftccl {
namespace {

class ChainBroadcast final : public Collective {
 public:
  ChainBroadcast(Transport& transport, const PipelineConfig& pipeline, const CollectiveArgs& args)
      : inFlight_(transport, kWindows),
        args_(args),
        chain_{transport.size(), transport.rank(), args.root},
        bytes_(args.count * dataTypeSize(args.type)),
        chunkBytes_(pipeline.chunkBytes ? pipeline.chunkBytes : bytes_),
        window_(pipeline.channels > 0 ? pipeline.channels : 1) {
    nChunks_ = bytes_ == 0 ? 0 : (bytes_ + chunkBytes_ - 1) / chunkBytes_;
  }

  Status progress(bool* done) override {
    if (chain_.isRoot() && !rootCopied_) {
      // The root's own recvbuff receives the data too (NCCL semantics).
      if (bytes_ && args_.sendbuff != args_.recvbuff) {
        std::memcpy(args_.recvbuff, args_.sendbuff, bytes_);
      }
      rootCopied_ = true;
    }
    if (chain_.n == 1) {
      *done = true;
      return Status::ok();
    }
    MessageKey key = args_.key(0);
    // Receive in order, up to `window_` chunks ahead.
    if (!chain_.isRoot()) {
      while (recvPosted_ < nChunks_ && inFlight_.count(kRecvs) < window_) {
        FTCCL_CHECK(
            inFlight_.recv(kRecvs, chain_.prev(), chunk(recvPosted_), chunkSize(recvPosted_), key));
        ++recvPosted_;
      }
      size_t landed = 0;
      FTCCL_CHECK(inFlight_.testOldest(kRecvs, &landed));
      received_ += landed;
    } else {
      received_ = nChunks_;
    }
    // Forward what has landed (the root forwards from sendbuff), bounded likewise.
    if (!chain_.isLast()) {
      size_t sent = 0;
      FTCCL_CHECK(inFlight_.testOldest(kSends, &sent));
      while (sendPosted_ < received_ && inFlight_.count(kSends) < window_) {
        const uint8_t* from = chain_.isRoot() ? static_cast<const uint8_t*>(args_.sendbuff)
                                              : static_cast<const uint8_t*>(args_.recvbuff);
        FTCCL_CHECK(inFlight_.send(kSends, chain_.next(), from + sendPosted_ * chunkBytes_,
                                   chunkSize(sendPosted_), key));
        ++sendPosted_;
      }
    }
    bool forwarded = chain_.isLast() || (sendPosted_ == nChunks_ && inFlight_.idle(kSends));
    *done = received_ == nChunks_ && forwarded;
    return Status::ok();
  }

  void abort() override { inFlight_.abort(); }
  uint64_t progressMark() const override { return inFlight_.progressMark(); }
  std::vector<int> pendingPeers() const override { return inFlight_.pendingPeers(); }

 private:
  enum Window { kRecvs, kSends, kWindows };  // InFlight groups, each completing in order

  uint8_t* chunk(size_t i) const { return static_cast<uint8_t*>(args_.recvbuff) + i * chunkBytes_; }
  size_t chunkSize(size_t i) const {
    return i + 1 < nChunks_ ? chunkBytes_ : bytes_ - i * chunkBytes_;
  }

  InFlight inFlight_;
  CollectiveArgs args_;
  ChainSchedule chain_;
  size_t bytes_;
  size_t chunkBytes_;
  size_t window_;
  size_t nChunks_ = 0;
  size_t recvPosted_ = 0, received_ = 0, sendPosted_ = 0;
  bool rootCopied_ = false;
};

}  // namespace

std::unique_ptr<Collective> makeChainBroadcast(Transport& transport, const PipelineConfig& pipeline,
                                               const CollectiveArgs& args) {
  return std::make_unique<ChainBroadcast>(transport, pipeline, args);
}

}  // namespace ftccl
