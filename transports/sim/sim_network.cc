#include "transports/sim/sim_network.h"

#include <algorithm>

namespace ftccl {
namespace sim {

SimNetwork::SimNetwork(std::chrono::microseconds latency)
    : SimNetwork([latency](const std::string&, const std::string&) { return LinkSpec{latency}; },
                 1) {}

SimNetwork::SimNetwork(LinkModel model, uint64_t seed)
    : model_(std::move(model)), random_(seed), now_(SimTime() + std::chrono::seconds(1)) {}

void SimNetwork::add(const std::string& key, SimNode* node) {
  nodes_[key] = node;
  schedule(now_, Kind::kTick, key, key);
}

void SimNetwork::schedule(SimTime at, Kind kind, const std::string& to, const std::string& from,
                          std::vector<uint8_t> frame, bool queued) {
  events_.push(Event{at, nextOrder_++, kind, to, from, std::move(frame), queued});
}

// The sender's link holds a frame for bytes / rate after the frames before it; then it
// travels for the latency plus a uniform jitter. Reliable frames never overtake an
// earlier one of the same pair.
SimTime SimNetwork::arrival(const std::string& from, const std::string& to, size_t bytes,
                            Delivery delivery) {
  const LinkSpec link = model_(from, to);
  SimTime departs = now_;
  if (link.gbps > 0) {
    SimTime& free = linkFreeAt_[from];
    departs = std::max(departs, free);
    departs += std::chrono::nanoseconds(static_cast<int64_t>(bytes * 8 / link.gbps));
    free = departs;
  }
  auto jitter = std::chrono::nanoseconds(0);
  if (link.jitter.count() > 0) {
    jitter = std::chrono::nanoseconds(random_() % static_cast<uint64_t>(link.jitter.count() + 1));
  }
  SimTime at = departs + link.latency + jitter;
  if (delivery == Delivery::kReliable) {
    SimTime& last = lastReliable_[{from, to}];
    at = std::max(at, last);
    last = at;
  }
  return at;
}

// Frames already in flight when a process is cut or partitioned off are lost too; a
// block() only stops frames sent after it.
bool SimNetwork::severed(const std::string& a, const std::string& b) const {
  return cut_.count(a) || cut_.count(b) || partitioned_.count(a) != partitioned_.count(b);
}

void SimNetwork::send(const std::string& from, const std::string& to, std::vector<uint8_t> frame,
                      Delivery delivery) {
  if (dead_.count(from)) return;
  Traffic& sent = traffic_[from];
  ++sent.sentFrames;
  sent.sentBytes += frame.size();
  if (severed(from, to) || blocked_.count({from, to})) return;
  if (dead_.count(to)) {
    // Sending to a closed connection fails: the sender learns it is gone (a datagram
    // to a dead process is just lost).
    if (delivery == Delivery::kReliable) {
      schedule(now_ + model_(from, to).latency, Kind::kLost, from, to);
    }
    return;
  }
  if (delivery == Delivery::kDatagram) {
    const double loss = model_(from, to).datagramLoss;
    if (loss > 0 && std::uniform_real_distribution<double>(0, 1)(random_) < loss) return;
  }
  SimTime at = arrival(from, to, frame.size(), delivery);
  schedule(at, Kind::kFrame, to, from, std::move(frame));
}

void SimNetwork::connect(const std::string& from, const std::string& to) {
  watchers_[to].insert(from);
  if (dead_.count(to)) schedule(now_ + model_(from, to).latency, Kind::kLost, from, to);
}

void SimNetwork::disconnect(const std::string& from, const std::string& to) {
  watchers_[to].erase(from);
}

void SimNetwork::wake(const std::string& key) { schedule(now_, Kind::kWake, key, key); }

void SimNetwork::kill(const std::string& key) {
  dead_.insert(key);
  held_.erase(key);
  for (const std::string& watcher : watchers_[key]) {
    schedule(now_ + model_(key, watcher).latency, Kind::kLost, watcher, key);
  }
}

void SimNetwork::stop(const std::string& key) { stopped_.insert(key); }

void SimNetwork::resume(const std::string& key) {
  stopped_.erase(key);
  auto held = std::move(held_[key]);
  held_.erase(key);
  for (Event& e : held) schedule(now_, e.kind, e.to, e.from, std::move(e.frame));
  schedule(now_, Kind::kTick, key, key);
}

void SimNetwork::cut(const std::string& key) { cut_.insert(key); }

void SimNetwork::block(const std::string& a, const std::string& b) {
  blocked_.insert({a, b});
  blocked_.insert({b, a});
}

void SimNetwork::unblock(const std::string& a, const std::string& b) {
  blocked_.erase({a, b});
  blocked_.erase({b, a});
}

void SimNetwork::partition(const std::vector<std::string>& side) {
  partitioned_.insert(side.begin(), side.end());
}

void SimNetwork::heal() { partitioned_.clear(); }

void SimNetwork::runUntil(SimTime until) {
  while (!events_.empty() && events_.top().at <= until) {
    Event e = events_.top();
    events_.pop();
    now_ = e.at;
    ++eventsRun_;
    dispatch(e);
  }
  if (until > now_) now_ = until;
}

void SimNetwork::dispatch(Event& e) {
  if (dead_.count(e.to)) return;
  auto node = nodes_.find(e.to);
  if (node == nodes_.end()) return;
  if (stopped_.count(e.to)) {
    if (e.kind != Kind::kTick && e.kind != Kind::kWake) held_[e.to].push_back(std::move(e));
    return;  // a stopped process's timer is rescheduled by resume()
  }
  switch (e.kind) {
    case Kind::kFrame: {
      if (severed(e.from, e.to)) return;  // cut while in flight
      if (handlingCost_.count() > 0 && !e.queued) {
        // Take the next free slot of the receiver; wait for it if it is busy (frames
        // keep their order: slots are taken in arrival order).
        SimTime& busy = busyUntil_[e.to];
        const SimTime start = std::max(busy, now_);
        busy = start + handlingCost_;
        if (start > now_) {
          schedule(start, Kind::kFrame, e.to, e.from, std::move(e.frame), /*queued=*/true);
          return;
        }
      }
      ++delivered_;
      Traffic& received = traffic_[e.to];
      ++received.receivedFrames;
      received.receivedBytes += e.frame.size();
      node->second->onFrame(e.from, e.frame, now_);
      break;
    }
    case Kind::kLost:
      node->second->onConnectionLost(e.from, now_);
      break;
    case Kind::kWake:
      node->second->onTick(now_);
      break;
    case Kind::kTick: {
      SimTime next = node->second->onTick(now_);
      if (next <= now_) next = now_ + std::chrono::microseconds(1);
      schedule(next, Kind::kTick, e.to, e.to);
      break;
    }
  }
}

}  // namespace sim
}  // namespace ftccl
