// The membership of the epoch a communicator is in, published whole: readers (the
// health thread's callbacks, the stats, the hang diagnosis) take a snapshot that never
// changes under them; only the thread entering an epoch (init, rebuild, standby)
// publishes the next one.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "core/peer_info.h"
#include "recovery/agreement.h"

namespace ftccl {

struct EpochView {
  uint64_t epoch = 0;
  int rank = -1;                 // -1: a hot spare
  int worldRank = -1;            // this process's index in peers
  std::vector<PeerInfo> peers;   // every process of the job, by world index
  std::vector<int> worldOf;      // logical rank -> index in peers
  std::vector<int> spares;       // the hot spare pool, in activation order (peer indices)
  std::vector<int> failedRanks;  // ranks lost by the commit that made it (absent at init)
  EpochSalt salt{};              // of the commit that made it (zero at init)
  // That commit, once this process's agreement has made one (not a newcomer's copy from
  // its join answer): resent to a member that missed it.
  std::shared_ptr<const AgreementCommit> enteredBy;

  int nranks() const { return static_cast<int>(worldOf.size()); }
  const PeerInfo& self() const { return peers[static_cast<size_t>(worldRank)]; }
  const PeerInfo& ofRank(int r) const { return peers[static_cast<size_t>(worldOf[r])]; }
  int rankOfWorld(int world) const {  // -1: a spare or a former member
    auto found = std::find(worldOf.begin(), worldOf.end(), world);
    return found == worldOf.end() ? -1 : static_cast<int>(found - worldOf.begin());
  }
};

class EpochState {
 public:
  EpochState() : view_(std::make_shared<const EpochView>()) {}
  std::shared_ptr<const EpochView> current() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return view_;
  }
  void publish(std::shared_ptr<const EpochView> view) {
    std::lock_guard<std::mutex> lock(mutex_);
    rank_ = view->rank;
    nranks_ = view->nranks();
    epoch_ = view->epoch;
    view_ = std::move(view);
  }
  // The hot path's reads, without a snapshot.
  int rank() const { return rank_.load(std::memory_order_relaxed); }
  int nranks() const { return nranks_.load(std::memory_order_relaxed); }
  uint64_t epoch() const { return epoch_.load(std::memory_order_relaxed); }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const EpochView> view_;
  std::atomic<int> rank_{-1};
  std::atomic<int> nranks_{0};
  std::atomic<uint64_t> epoch_{0};
};

}  // namespace ftccl
