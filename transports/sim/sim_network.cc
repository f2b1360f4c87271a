#include "transports/sim/sim_network.h"

#include <algorithm>

namespace ftccl {
namespace sim {

SimNetwork::SimNetwork(std::chrono::microseconds latency)
    : SimNetwork([latency](const std::string&, const std::string&) { return LinkSpec{latency}; },
                 1) {}

SimNetwork::SimNetwork(LinkModel model, uint64_t seed)
    : model_(std::move(model)), random_(seed), now_(SimTime() + std::chrono::seconds(1)) {}

// Keys are looked up once per call of the API; events and state use the index, so that a
// simulation of 100,000 processes hashes no string per event.
bool SimNetwork::indexedId(const std::string& key, bool add, Id* id) {
  if (!keyIndex_) return false;
  const int64_t index = keyIndex_(key);
  if (index < 0 || index >= int64_t{1} << 24) return false;
  const size_t at = static_cast<size_t>(index);
  if (at < nodes_.size() && nodes_[at].named && nodes_[at].key == key) {
    *id = static_cast<Id>(at);
    return true;
  }
  // A slot no key holds yet (a node added by number or by the map holds one).
  if (at < nodes_.size() && nodes_[at].named) return false;
  if (!add || ids_.count(key)) return false;
  if (at >= nodes_.size()) nodes_.resize(at + 1);
  nodes_[at].key = key;
  nodes_[at].named = true;
  *id = static_cast<Id>(at);
  return true;
}

SimNetwork::Id SimNetwork::idOf(const std::string& key) {
  Id indexed = 0;
  if (indexedId(key, /*add=*/true, &indexed)) return indexed;
  auto [it, added] = ids_.emplace(key, static_cast<Id>(nodes_.size()));
  if (added) {
    nodes_.emplace_back();
    nodes_.back().key = key;
    nodes_.back().named = true;
  }
  return it->second;
}

void SimNetwork::add(const std::string& key, SimNode* node) {
  const Id id = idOf(key);
  nodes_[id].node = node;
  schedule(now_, Kind::kTick, id, id);
}

bool SimNetwork::alive(const std::string& key) const {
  if (keyIndex_) {
    const int64_t index = keyIndex_(key);
    if (index >= 0 && static_cast<uint64_t>(index) < nodes_.size() &&
        nodes_[static_cast<size_t>(index)].named && nodes_[static_cast<size_t>(index)].key == key) {
      return !nodes_[static_cast<size_t>(index)].dead;
    }
  }
  auto it = ids_.find(key);
  return it == ids_.end() || !nodes_[it->second].dead;
}

void SimNetwork::resetTraffic() {
  for (Node& n : nodes_) n.traffic = Traffic{};
}

void SimNetwork::schedule(SimTime at, Kind kind, Id to, Id from, std::vector<uint8_t> frame,
                          bool datagram) {
  Event e{at, nextOrder_, kind, datagram, to, from, std::move(frame)};
  uint32_t slot;
  if (freeSlots_.empty()) {
    slot = static_cast<uint32_t>(eventPool_.size());
    eventPool_.push_back(std::move(e));
  } else {
    slot = freeSlots_.back();
    freeSlots_.pop_back();
    eventPool_[slot] = std::move(e);
  }
  events_.push(Queued{at, nextOrder_++, slot});
}

// The sender's link holds a frame for bytes / rate after the frames before it; then it
// travels for the latency plus a uniform jitter. Reliable frames never overtake an
// earlier one of the same pair.
SimTime SimNetwork::arrival(Id from, Id to, const LinkSpec& link, size_t bytes, Delivery delivery) {
  SimTime departs = now_;
  if (link.gbps > 0) {
    SimTime& free = nodes_[from].linkFreeAt;
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
    SimTime& last = lastReliable_[uint64_t{from} << 32 | to];
    at = std::max(at, last);
    last = at;
    // A pair's last arrival in the past orders nothing (every new one is later): such
    // entries go, else the map keeps every pair that ever spoke (millions at 100,000
    // processes, a cache miss each).
    if (lastReliable_.size() >= pruneReliableAt_) {
      for (auto it = lastReliable_.begin(); it != lastReliable_.end();) {
        it = it->second <= now_ ? lastReliable_.erase(it) : std::next(it);
      }
      pruneReliableAt_ = std::max<size_t>(2 * lastReliable_.size(), size_t{1} << 16);
    }
  }
  return at;
}

// Frames already in flight when a process is cut or partitioned off are lost too; a
// block() only stops frames sent after it.
bool SimNetwork::severed(Id a, Id b) const {
  if (anyCut_ && (nodes_[a].cut || nodes_[b].cut)) return true;
  return anyPartition_ && nodes_[a].partitioned != nodes_[b].partitioned;
}

void SimNetwork::send(const std::string& fromKey, const std::string& toKey,
                      std::vector<uint8_t> frame, Delivery delivery) {
  const Id from = idOf(fromKey), to = idOf(toKey);
  if (nodes_[from].dead) return;
  Traffic& sent = nodes_[from].traffic;
  ++sent.sentFrames;
  sent.sentBytes += frame.size();
  if (severed(from, to) || (!blocked_.empty() && blocked_.count({from, to}))) return;
  const LinkSpec link = model_(fromKey, toKey);
  if (nodes_[to].dead) {
    // Sending to a closed connection fails: the sender learns it is gone (a datagram
    // to a dead process is just lost).
    if (delivery == Delivery::kReliable) schedule(now_ + link.latency, Kind::kLost, from, to);
    return;
  }
  if (delivery == Delivery::kDatagram && link.datagramLoss > 0 &&
      std::uniform_real_distribution<double>(0, 1)(random_) < link.datagramLoss) {
    return;
  }
  SimTime at = arrival(from, to, link, frame.size(), delivery);
  schedule(at, Kind::kFrame, to, from, std::move(frame), delivery == Delivery::kDatagram);
}

void SimNetwork::connect(const std::string& fromKey, const std::string& toKey) {
  const Id from = idOf(fromKey), to = idOf(toKey);
  nodes_[to].watchers.insert(from);
  if (nodes_[to].dead) schedule(now_ + model_(fromKey, toKey).latency, Kind::kLost, from, to);
}

void SimNetwork::disconnect(const std::string& from, const std::string& to) {
  nodes_[idOf(to)].watchers.erase(idOf(from));
}

void SimNetwork::wake(const std::string& key) {
  const Id id = idOf(key);
  schedule(now_, Kind::kWake, id, id);
}

void SimNetwork::kill(const std::string& key) {
  const Id id = idOf(key);
  Node& n = nodes_[id];
  n.dead = true;
  n.held.clear();
  n.inbox = Inbox{};
  for (Id watcher : n.watchers) {
    schedule(now_ + model_(key, nodes_[watcher].key).latency, Kind::kLost, watcher, id);
  }
}

void SimNetwork::stop(const std::string& key) { nodes_[idOf(key)].stopped = true; }

void SimNetwork::resume(const std::string& key) {
  const Id id = idOf(key);
  Node& n = nodes_[id];
  n.stopped = false;
  std::deque<Event> held = std::move(n.held);
  n.held.clear();
  for (Event& e : held) schedule(now_, e.kind, e.to, e.from, std::move(e.frame), e.datagram);
  schedule(now_, Kind::kTick, id, id);
  Inbox& inbox = nodes_[id].inbox;  // frames queued before the stop: handled in turn
  if (!inbox.nextScheduled && (!inbox.datagrams.empty() || !inbox.reliable.empty())) {
    inbox.nextScheduled = true;
    schedule(std::max(now_, inbox.busyUntil), Kind::kNext, id, id);
  }
}

void SimNetwork::cut(const std::string& key) {
  nodes_[idOf(key)].cut = true;
  anyCut_ = true;
}

void SimNetwork::block(const std::string& a, const std::string& b) {
  blocked_.insert({idOf(a), idOf(b)});
  blocked_.insert({idOf(b), idOf(a)});
}

void SimNetwork::unblock(const std::string& a, const std::string& b) {
  blocked_.erase({idOf(a), idOf(b)});
  blocked_.erase({idOf(b), idOf(a)});
}

void SimNetwork::partition(const std::vector<std::string>& side) {
  for (const std::string& key : side) nodes_[idOf(key)].partitioned = true;
  anyPartition_ = anyPartition_ || !side.empty();
}

void SimNetwork::heal() {
  for (Node& n : nodes_) n.partitioned = false;
  anyPartition_ = false;
}

void SimNetwork::runUntil(SimTime until) {
  while (!events_.empty() && events_.top().at <= until) {
    const uint32_t slot = events_.top().slot;
    events_.pop();
    Event e = std::move(eventPool_[slot]);
    freeSlots_.push_back(slot);
    now_ = e.at;
    ++eventsRun_;
    dispatch(e);
  }
  if (until > now_) now_ = until;
}

void SimNetwork::dispatch(Event& e) {
  Node& to = nodes_[e.to];
  if (to.dead || to.node == nullptr) return;
  if (to.stopped) {
    if (e.kind == Kind::kNext) to.inbox.nextScheduled = false;  // resume() reschedules
    if (e.kind == Kind::kFrame || e.kind == Kind::kLost) to.held.push_back(std::move(e));
    return;  // a stopped process's timer is rescheduled by resume()
  }
  switch (e.kind) {
    case Kind::kFrame:
      receive(e);
      break;
    case Kind::kNext:
      handleNextQueued(e.to);
      break;
    case Kind::kLost: {
      const std::string from = nodes_[e.from].key;  // a send may add a node: nodes_ moves
      to.node->onConnectionLost(from, now_);
      break;
    }
    case Kind::kWake:
      to.node->onTick(now_);
      break;
    case Kind::kTick: {
      SimTime next = to.node->onTick(now_);
      if (next <= now_) next = now_ + std::chrono::microseconds(1);
      schedule(next, Kind::kTick, e.to, e.to);
      break;
    }
  }
}

void SimNetwork::receive(Event& e) {
  if (severed(e.from, e.to)) return;  // cut while in flight
  if (handlingCost_.count() == 0) return deliver(e);
  Inbox& inbox = nodes_[e.to].inbox;
  if (inbox.busyUntil <= now_ && !inbox.nextScheduled) {
    inbox.busyUntil = now_ + handlingCost_;
    return deliver(e);
  }
  const Id to = e.to;
  (e.datagram ? inbox.datagrams : inbox.reliable).push_back(std::move(e));
  if (!inbox.nextScheduled) {
    inbox.nextScheduled = true;
    schedule(inbox.busyUntil, Kind::kNext, to, to);
  }
}

// The slot is free: a queued datagram first (the probe socket is read first), else the
// oldest reliable frame; the next slot is taken if more wait.
void SimNetwork::handleNextQueued(Id to) {
  Inbox& inbox = nodes_[to].inbox;
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
    deliver(e);  // may send, kill or stop: the inbox is settled before
    return;
  }
}

void SimNetwork::deliver(const Event& e) {
  ++delivered_;
  Node& to = nodes_[e.to];
  ++to.traffic.receivedFrames;
  to.traffic.receivedBytes += e.frame.size();
  const std::string from = nodes_[e.from].key;  // a send may add a node: nodes_ moves
  to.node->onFrame(from, e.frame, now_);
}

}  // namespace sim
}  // namespace ftccl
