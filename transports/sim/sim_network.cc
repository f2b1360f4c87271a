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
                          std::vector<uint8_t> frame, bool datagram) {
  events_.push(Event{at, nextOrder_++, kind, to, from, std::move(frame), datagram});
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
  schedule(at, Kind::kFrame, to, from, std::move(frame), delivery == Delivery::kDatagram);
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
  inboxes_.erase(key);
  for (const std::string& watcher : watchers_[key]) {
    schedule(now_ + model_(key, watcher).latency, Kind::kLost, watcher, key);
  }
}

void SimNetwork::stop(const std::string& key) { stopped_.insert(key); }

void SimNetwork::resume(const std::string& key) {
  stopped_.erase(key);
  auto held = std::move(held_[key]);
  held_.erase(key);
  for (Event& e : held) schedule(now_, e.kind, e.to, e.from, std::move(e.frame), e.datagram);
  schedule(now_, Kind::kTick, key, key);
  auto inbox = inboxes_.find(key);  // frames queued before the stop: handled in turn
  if (inbox != inboxes_.end() && !inbox->second.nextScheduled &&
      (!inbox->second.datagrams.empty() || !inbox->second.reliable.empty())) {
    inbox->second.nextScheduled = true;
    schedule(std::max(now_, inbox->second.busyUntil), Kind::kNext, key, key);
  }
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
    if (e.kind == Kind::kNext) inboxes_[e.to].nextScheduled = false;  // resume() reschedules
    if (e.kind == Kind::kFrame || e.kind == Kind::kLost) held_[e.to].push_back(std::move(e));
    return;  // a stopped process's timer is rescheduled by resume()
  }
  switch (e.kind) {
    case Kind::kFrame:
      receive(e);
      break;
    case Kind::kNext:
      handleNextQueued(e.to);
      break;
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

void SimNetwork::receive(Event& e) {
  if (severed(e.from, e.to)) return;  // cut while in flight
  if (handlingCost_.count() == 0) return deliver(e, nodes_[e.to]);
  Inbox& inbox = inboxes_[e.to];
  if (inbox.busyUntil <= now_ && !inbox.nextScheduled) {
    inbox.busyUntil = now_ + handlingCost_;
    return deliver(e, nodes_[e.to]);
  }
  const std::string to = e.to;
  (e.datagram ? inbox.datagrams : inbox.reliable).push_back(std::move(e));
  if (!inbox.nextScheduled) {
    inbox.nextScheduled = true;
    schedule(inbox.busyUntil, Kind::kNext, to, to);
  }
}

// The slot is free: a queued datagram first (the probe socket is read first), else the
// oldest reliable frame; the next slot is taken if more wait.
void SimNetwork::handleNextQueued(const std::string& to) {
  Inbox& inbox = inboxes_[to];
  inbox.nextScheduled = false;
  while (!inbox.datagrams.empty() || !inbox.reliable.empty()) {
    std::deque<Event>& queue = inbox.datagrams.empty() ? inbox.reliable : inbox.datagrams;
    Event e = std::move(queue.front());
    queue.pop_front();
    if (severed(e.from, e.to)) continue;  // cut while it waited: never handled
    inbox.busyUntil = now_ + handlingCost_;
    if (!inbox.datagrams.empty() || !inbox.reliable.empty()) {
      inbox.nextScheduled = true;
      schedule(inbox.busyUntil, Kind::kNext, to, to);
    }
    deliver(e, nodes_[to]);  // may send, kill or stop: the inbox is settled before
    return;
  }
}

void SimNetwork::deliver(const Event& e, SimNode* node) {
  ++delivered_;
  Traffic& received = traffic_[e.to];
  ++received.receivedFrames;
  received.receivedBytes += e.frame.size();
  node->onFrame(e.from, e.frame, now_);
}

}  // namespace sim
}  // namespace ftccl
