#include "stats/lateness.h"

#include <algorithm>

namespace ftccl {

constexpr std::chrono::milliseconds LatenessTracker::kWindow;

void LatenessTracker::sample(int peer, uint64_t done, uint64_t waitUs) {
  Peer& p = peers_[peer];
  if (p.pendingCount > 0 && p.pending[p.pendingCount - 1].done == done) {
    p.pending[p.pendingCount - 1].waitUs = waitUs;  // no op since the last heartbeat
    return;
  }
  if (p.pendingCount == kPending) {  // drop the oldest
    std::copy(p.pending.begin() + 1, p.pending.end(), p.pending.begin());
    --p.pendingCount;
  }
  p.pending[p.pendingCount++] = Sample{done, waitUs};
}

std::vector<LatenessTracker::Change> LatenessTracker::evaluate(Time now, const OwnWait& own) {
  std::vector<Change> changes;
  for (auto& [id, p] : peers_) {
    // The newest sample this rank can match; it and the older ones are used up.
    for (int i = p.pendingCount - 1; i >= 0; --i) {
      const Sample sample = p.pending[i];
      uint64_t ownUs = 0;
      if (sample.done != 0 && !own(sample.done, &ownUs)) continue;
      std::copy(p.pending.begin() + i + 1, p.pending.begin() + p.pendingCount, p.pending.begin());
      p.pendingCount -= i + 1;
      if (!p.hasBase || sample.done < p.baseDone) {  // first sample, or a new epoch
        p.hasBase = true;
        p.windowStart = now;
        p.ops = 0;
        p.lateUs = p.ownUs = 0;
      } else if (sample.done > p.baseDone) {
        double mine = static_cast<double>(ownUs) - static_cast<double>(p.baseOwnUs);
        double theirs = static_cast<double>(sample.waitUs) - static_cast<double>(p.basePeerUs);
        p.ops += sample.done - p.baseDone;
        p.lateUs += mine - theirs;
        p.ownUs += mine;
      }
      p.baseDone = sample.done;
      p.basePeerUs = sample.waitUs;
      p.baseOwnUs = ownUs;
      break;
    }
    // Unmatched samples are of ops this rank has not finished yet (matched at a later
    // tick), or fell out of its history (then the queue fills and the oldest go).
    // A window lasts until it holds kMinOps ops: slow ops (large all-reduces) are
    // judged over longer windows, never skipped.
    if (p.hasBase && now - p.windowStart >= kWindow && p.ops >= kMinOps) {
      closeWindow(id, p, &changes);
      p.windowStart = now;
    }
  }
  return changes;
}

void LatenessTracker::closeWindow(int id, Peer& p, std::vector<Change>* changes) {
  double lateMs = p.lateUs / 1000.0 / static_cast<double>(p.ops);
  double waitMs = p.ownUs / 1000.0 / static_cast<double>(p.ops);
  bool late = lateMs >= minLateMs_ && lateMs >= 0.5 * waitMs;
  p.lateRun = late ? p.lateRun + 1 : 0;
  p.onTimeRun = late ? 0 : p.onTimeRun + 1;
  p.last.known = true;
  p.last.lateMs = lateMs;
  p.last.ops = p.ops;
  if (!p.last.flagged && p.lateRun >= kFlagAfter) {
    p.last.flagged = true;
    changes->push_back(Change{id, true, lateMs, waitMs, p.ops});
  } else if (p.last.flagged && p.onTimeRun >= kClearAfter) {
    p.last.flagged = false;
    changes->push_back(Change{id, false, lateMs, waitMs, p.ops});
  }
  p.ops = 0;
  p.lateUs = p.ownUs = 0;
}

LatenessTracker::PeerView LatenessTracker::view(int peer) const {
  auto it = peers_.find(peer);
  return it == peers_.end() ? PeerView{} : it->second.last;
}

std::vector<int> LatenessTracker::flagged() const {
  std::vector<int> out;
  for (const auto& [id, p] : peers_) {
    if (p.last.flagged) out.push_back(id);
  }
  return out;
}

}  // namespace ftccl
