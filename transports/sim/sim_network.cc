#include "transports/sim/sim_network.h"

namespace ftccl {
namespace sim {

SimNetwork::SimNetwork(std::chrono::microseconds latency)
    : latency_(latency), now_(SimTime() + std::chrono::seconds(1)) {}

void SimNetwork::add(const std::string& key, SimNode* node) {
  nodes_[key] = node;
  schedule(now_, Kind::kTick, key, key);
}

void SimNetwork::schedule(SimTime at, Kind kind, const std::string& to, const std::string& from,
                          std::vector<uint8_t> frame) {
  events_.push(Event{at, nextOrder_++, kind, to, from, std::move(frame)});
}

void SimNetwork::send(const std::string& from, const std::string& to,
                      std::vector<uint8_t> frame) {
  if (dead_.count(from) || cut_.count(from) || cut_.count(to) || blocked_.count({from, to})) {
    return;
  }
  if (dead_.count(to)) {
    // Sending to a closed connection fails: the sender learns it is gone.
    schedule(now_ + latency_, Kind::kLost, from, to);
    return;
  }
  schedule(now_ + latency_, Kind::kFrame, to, from, std::move(frame));
}

void SimNetwork::connect(const std::string& from, const std::string& to) {
  watchers_[to].insert(from);
  if (dead_.count(to)) schedule(now_ + latency_, Kind::kLost, from, to);
}

void SimNetwork::disconnect(const std::string& from, const std::string& to) {
  watchers_[to].erase(from);
}

void SimNetwork::kill(const std::string& key) {
  dead_.insert(key);
  held_.erase(key);
  for (const std::string& watcher : watchers_[key]) {
    schedule(now_ + latency_, Kind::kLost, watcher, key);
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

void SimNetwork::runUntil(SimTime until) {
  while (!events_.empty() && events_.top().at <= until) {
    Event e = events_.top();
    events_.pop();
    now_ = e.at;
    dispatch(e);
  }
  if (until > now_) now_ = until;
}

void SimNetwork::dispatch(Event& e) {
  if (dead_.count(e.to)) return;
  auto node = nodes_.find(e.to);
  if (node == nodes_.end()) return;
  if (stopped_.count(e.to)) {
    if (e.kind != Kind::kTick) held_[e.to].push_back(std::move(e));
    return;  // a stopped process's timer is rescheduled by resume()
  }
  switch (e.kind) {
    case Kind::kFrame:
      if (cut_.count(e.to) || cut_.count(e.from)) return;
      ++delivered_;
      node->second->onFrame(e.from, e.frame, now_);
      break;
    case Kind::kLost:
      node->second->onConnectionLost(e.from, now_);
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
