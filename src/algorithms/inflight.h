// The requests an algorithm has posted and not yet seen complete: the bookkeeping that
// every Collective needs for progress(), abort(), pendingPeers() and progressMark().
//
// Requests are kept in groups, one per independent stream of steps (a ring channel, a
// tree lane's stream, a chain's receive or send window, a recursive-doubling round).
// A group with nothing in flight is idle: its next step may post. A step's requests
// are tested together (testAll: the step completes when all of them have) or oldest
// first (testOldest: a window of chunks that completes in posting order). Each request
// remembers its peer, so the peers a timeout waits on come from what is actually
// posted, and every completion moves the progress mark. A request that completed when
// posted (null) stays in its group until tested, so windows count it in order.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "transports/transport.h"
#include "util/status.h"

namespace ftccl {

class InFlight {
 public:
  explicit InFlight(Transport& transport, int groups = 1);
  // Cancels what is still posted: an op destroyed mid-way never leaves requests behind.
  ~InFlight() { abort(); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

  // Posts into `group`; the request is tested and cancelled from here on.
  Status send(int group, int peer, const void* buffer, size_t bytes, MessageKey key);
  Status recv(int group, int peer, void* buffer, size_t bytes, MessageKey key);

  bool idle(int group) const { return groups_[group].empty(); }
  size_t count(int group) const { return groups_[group].size(); }

  // Tests every request of the group; *done once none is left in flight (at once for a
  // step that posted nothing), which counts as a step on the progress mark.
  Status testAll(int group, bool* done);
  // Tests from the oldest request on, stopping at the first still in flight;
  // *completed: how many completed (they leave the group).
  Status testOldest(int group, size_t* completed);

  // Cancels every posted request of every group.
  void abort();
  // The peers of every request in flight, sorted, each once.
  std::vector<int> pendingPeers() const;
  // Requests and steps completed so far: grows whenever the op advances.
  uint64_t progressMark() const { return mark_; }

 private:
  struct Posted {
    TransportRequest* request = nullptr;
    int peer = -1;
  };
  // A group's requests, oldest first. Every op builds its own InFlight, so the usual
  // handful lives inline: a container that allocates per op cost small messages
  // 0.1-0.2 us per step (2 ranks, 128 B-2 KiB). Longer windows spill to the heap.
  class Group {
   public:
    bool empty() const { return size_ == 0; }
    size_t size() const { return size_; }
    Posted* begin() { return data(); }
    Posted* end() { return data() + size_; }
    const Posted* begin() const { return data(); }
    const Posted* end() const { return data() + size_; }
    Posted& front() { return data()[0]; }
    Posted& back() { return data()[size_ - 1]; }
    void push_back(const Posted& p);
    void erase(size_t i);  // keeps the order of the rest
    void clear();

   private:
    static constexpr size_t kInline = 8;
    Posted* data() { return heap_.empty() ? inline_.data() : heap_.data(); }
    const Posted* data() const { return heap_.empty() ? inline_.data() : heap_.data(); }
    std::array<Posted, kInline> inline_{};
    std::vector<Posted> heap_;  // all of them, once more than kInline were in flight
    size_t size_ = 0;
  };

  Transport& transport_;
  std::vector<Group> groups_;
  uint64_t mark_ = 0;
};

}  // namespace ftccl
