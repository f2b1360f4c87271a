// Send/Recv: a group of point-to-point transfers run as one operation. Every transfer
// of a group is posted at once and progressed together, so a send to a peer and a
// receive from it in one group can never deadlock, whatever the order the ranks issued
// them in. Keys carry a per-peer sequence on the reserved channel, so transfers between
// two ranks match in issue order.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "algorithms/collective.h"
#include "algorithms/inflight.h"

namespace ftccl {
namespace {

class PointToPointOp final : public Collective {
 public:
  PointToPointOp(Transport& transport, std::vector<PointToPoint> transfers)
      : transport_(transport),
        transfers_(std::move(transfers)),
        inFlight_(transport),
        finished_(transfers_.size(), false) {}

  Status progress(bool* done) override {
    if (!posted_) {
      FTCCL_CHECK(copyToSelf());
      stageOverlappingSends();
      // Receives first: a message that arrives finds its buffer already posted.
      for (int pass = 0; pass < 2; ++pass) {
        for (size_t i = 0; i < transfers_.size(); ++i) {
          const PointToPoint& t = transfers_[i];
          if (finished_[i] || t.send != (pass == 1)) continue;
          if (t.send) {
            FTCCL_CHECK(inFlight_.send(0, t.peer, t.buffer, t.bytes, t.key));
          } else {
            FTCCL_CHECK(inFlight_.recv(0, t.peer, t.buffer, t.bytes, t.key));
          }
        }
      }
      posted_ = true;
    }
    return inFlight_.testAll(0, done);
  }
  void abort() override { inFlight_.abort(); }
  std::vector<int> pendingPeers() const override { return inFlight_.pendingPeers(); }
  uint64_t progressMark() const override { return selfCopies_ + inFlight_.progressMark(); }

 private:
  // A send whose buffer is also a receive's (in place: the ring shift of sendrecv_perf)
  // would be read by the peer while our receive overwrites it: such sends go out of a
  // private copy taken before anything is posted. Only this case pays the copy.
  void stageOverlappingSends() {
    for (PointToPoint& s : transfers_) {
      if (!s.send || s.bytes == 0) continue;
      auto* begin = static_cast<uint8_t*>(s.buffer);
      bool overlaps = false;
      for (const PointToPoint& r : transfers_) {
        auto* rb = static_cast<uint8_t*>(r.buffer);
        overlaps = overlaps || (!r.send && r.bytes && rb < begin + s.bytes && begin < rb + r.bytes);
      }
      if (!overlaps) continue;
      staged_.emplace_back(begin, begin + s.bytes);
      s.buffer = staged_.back().data();
    }
  }

  // Transfers to this rank itself never touch the network: the k-th send to self fills
  // the k-th receive from self, as a peer's would.
  Status copyToSelf() {
    std::vector<size_t> sends, recvs;
    for (size_t i = 0; i < transfers_.size(); ++i) {
      if (transfers_[i].peer != transport_.rank()) continue;
      (transfers_[i].send ? sends : recvs).push_back(i);
    }
    if (sends.size() != recvs.size()) {
      return invalidUsage(std::to_string(sends.size()) + " sends to self but " +
                          std::to_string(recvs.size()) + " receives from self in one group");
    }
    for (size_t k = 0; k < sends.size(); ++k) {
      const PointToPoint& s = transfers_[sends[k]];
      const PointToPoint& r = transfers_[recvs[k]];
      if (s.bytes > r.bytes) {
        return invalidUsage("a send to self of " + std::to_string(s.bytes) +
                            " B does not fit its receive of " + std::to_string(r.bytes) + " B");
      }
      if (s.bytes && s.buffer != r.buffer) std::memmove(r.buffer, s.buffer, s.bytes);
      finished_[sends[k]] = finished_[recvs[k]] = true;
      ++selfCopies_;
    }
    return Status::ok();
  }

  Transport& transport_;
  std::vector<PointToPoint> transfers_;
  std::vector<std::vector<uint8_t>> staged_;  // copies of sends that overlap receives
  InFlight inFlight_;
  std::vector<bool> finished_;  // transfers to self, done without the network
  bool posted_ = false;
  uint64_t selfCopies_ = 0;
};

}  // namespace

std::unique_ptr<Collective> makePointToPoint(Transport& transport,
                                             std::vector<PointToPoint> transfers) {
  return std::make_unique<PointToPointOp>(transport, std::move(transfers));
}

}  // namespace ftccl
