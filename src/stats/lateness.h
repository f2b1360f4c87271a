// Straggler detection: which monitored peer keeps starting collectives late.
//
// No clocks need agreeing. A collective ends at about the same time on every rank
// (nobody finishes before the last one arrived), so if a peer starts an op D later than
// this rank, this rank waits D longer inside it: per op, (my wait - the peer's wait) is
// how much later the peer arrived. Both waits are summed per rank and keyed by the op
// count (progress_board.h); heartbeats carry the peer's sum, so each difference of two
// samples covers the same ops on both sides. Only the late rank's neighbours see a
// positive lateness: a rank two hops away waited for it as long as this rank did.
//
// A window (kWindow of time, and as long as it takes to hold kMinOps ops) is late when the peer's
// mean lateness is at least `minLateMs` and at least half of this rank's mean wait (this rank spent
// most of its time in the op waiting for that peer). kFlagAfter late windows in a row
// flag the peer ("keeps arriving late"); kClearAfter on-time windows in a row clear it,
// so a burst does not flap the flag. Pure logic, driven by the health thread.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <vector>

namespace ftccl {

class LatenessTracker {
 public:
  using Time = std::chrono::steady_clock::time_point;
  // This rank's summed wait (us) after its `done`-th collective, if known.
  using OwnWait = std::function<bool(uint64_t done, uint64_t* waitUs)>;

  explicit LatenessTracker(double minLateMs = 5.0) : minLateMs_(minLateMs) {}

  // A heartbeat's sample from `peer`: its summed wait after its `done`-th collective.
  void sample(int peer, uint64_t done, uint64_t waitUs);

  struct Change {
    int peer = -1;
    bool late = false;  // flagged now (true) or cleared (false)
    double lateMs = 0;  // mean lateness over the window that decided
    double waitMs = 0;  // this rank's mean wait per op in it
    uint64_t ops = 0;
  };
  // Matches pending samples with this rank's own sums and closes due windows.
  std::vector<Change> evaluate(Time now, const OwnWait& own);

  struct PeerView {
    bool known = false;  // a window closed already
    double lateMs = 0;   // the last window's mean lateness
    uint64_t ops = 0;    // ops in that window
    bool flagged = false;
  };
  PeerView view(int peer) const;
  std::vector<int> flagged() const;

  static constexpr std::chrono::milliseconds kWindow{250};
  static constexpr uint64_t kMinOps = 3;
  static constexpr int kFlagAfter = 2;
  static constexpr int kClearAfter = 2;

 private:
  // Samples not matched yet: a peer a little ahead of this rank sends op counts this
  // rank reaches only later; the newest few are kept (fixed size, no allocation).
  static constexpr int kPending = 8;
  struct Sample {
    uint64_t done = 0, waitUs = 0;
  };
  struct Peer {
    std::array<Sample, kPending> pending{};
    int pendingCount = 0;
    bool hasBase = false;
    uint64_t baseDone = 0, basePeerUs = 0, baseOwnUs = 0;
    Time windowStart{};
    uint64_t ops = 0;
    double lateUs = 0, ownUs = 0;
    int lateRun = 0, onTimeRun = 0;
    PeerView last;
  };
  void closeWindow(int id, Peer& peer, std::vector<Change>* changes);

  double minLateMs_;
  std::map<int, Peer> peers_;
};

}  // namespace ftccl
