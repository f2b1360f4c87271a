#include "algorithms/inflight.h"

#include <algorithm>

namespace ftccl {

InFlight::InFlight(Transport& transport, int groups)
    : transport_(transport), groups_(static_cast<size_t>(std::max(groups, 1))) {}

Status InFlight::send(int group, int peer, const void* buffer, size_t bytes, MessageKey key) {
  std::deque<Posted>& g = groups_[group];
  g.push_back({nullptr, peer});
  Status st = transport_.isend(peer, buffer, bytes, key, &g.back().request);
  if (!st.isOk() && !g.back().request) g.pop_back();  // nothing to test or cancel
  return st;
}

Status InFlight::recv(int group, int peer, void* buffer, size_t bytes, MessageKey key) {
  std::deque<Posted>& g = groups_[group];
  g.push_back({nullptr, peer});
  Status st = transport_.irecv(peer, buffer, bytes, key, &g.back().request);
  if (!st.isOk() && !g.back().request) g.pop_back();
  return st;
}

Status InFlight::testAll(int group, bool* done) {
  std::deque<Posted>& g = groups_[group];
  *done = false;
  for (auto it = g.begin(); it != g.end();) {
    bool finished = false;
    Status st = transport_.test(&it->request, &finished);
    if (!st.isOk()) {
      if (!it->request) g.erase(it);  // a failed request is released: no longer pending
      return st;
    }
    if (!finished) {
      ++it;
      continue;
    }
    it = g.erase(it);
    ++mark_;
  }
  if (!g.empty()) return Status::ok();
  ++mark_;
  *done = true;
  return Status::ok();
}

Status InFlight::testOldest(int group, size_t* completed) {
  std::deque<Posted>& g = groups_[group];
  *completed = 0;
  while (!g.empty()) {
    bool finished = false;
    Status st = transport_.test(&g.front().request, &finished);
    if (!st.isOk()) {
      if (!g.front().request) g.pop_front();
      return st;
    }
    if (!finished) break;
    g.pop_front();
    ++*completed;
    ++mark_;
  }
  return Status::ok();
}

void InFlight::abort() {
  for (std::deque<Posted>& g : groups_) {
    for (Posted& p : g) transport_.cancel(&p.request);
    g.clear();
  }
}

std::vector<int> InFlight::pendingPeers() const {
  std::vector<int> peers;
  for (const std::deque<Posted>& g : groups_) {
    for (const Posted& p : g) {
      if (p.request) peers.push_back(p.peer);  // null: completed when posted
    }
  }
  std::sort(peers.begin(), peers.end());
  peers.erase(std::unique(peers.begin(), peers.end()), peers.end());
  return peers;
}

}  // namespace ftccl
