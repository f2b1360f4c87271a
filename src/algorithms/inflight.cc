#include "algorithms/inflight.h"

#include <algorithm>

namespace ftccl {

InFlight::InFlight(Transport& transport, int groups)
    : transport_(transport), groups_(static_cast<size_t>(std::max(groups, 1))) {}

void InFlight::Group::push_back(const Posted& p) {
  if (heap_.empty() && size_ < kInline) {
    inline_[size_++] = p;
    return;
  }
  if (heap_.empty()) heap_.assign(inline_.begin(), inline_.begin() + static_cast<long>(size_));
  heap_.push_back(p);
  size_ = heap_.size();
}

void InFlight::Group::erase(size_t i) {
  if (!heap_.empty()) {
    heap_.erase(heap_.begin() + static_cast<long>(i));
    size_ = heap_.size();
    return;
  }
  for (size_t j = i + 1; j < size_; ++j) inline_[j - 1] = inline_[j];
  --size_;
}

void InFlight::Group::clear() {
  heap_.clear();
  size_ = 0;
}

Status InFlight::send(int group, int peer, const void* buffer, size_t bytes, MessageKey key) {
  Group& g = groups_[group];
  g.push_back({nullptr, peer});
  Status st = transport_.isend(peer, buffer, bytes, key, &g.back().request);
  if (!st.isOk() && !g.back().request) g.erase(g.size() - 1);  // nothing to test or cancel
  return st;
}

Status InFlight::recv(int group, int peer, void* buffer, size_t bytes, MessageKey key) {
  Group& g = groups_[group];
  g.push_back({nullptr, peer});
  Status st = transport_.irecv(peer, buffer, bytes, key, &g.back().request);
  if (!st.isOk() && !g.back().request) g.erase(g.size() - 1);
  return st;
}

Status InFlight::testAll(int group, bool* done) {
  Group& g = groups_[group];
  *done = false;
  for (size_t i = 0; i < g.size();) {
    bool finished = false;
    Status st = transport_.test(&g.begin()[i].request, &finished);
    if (!st.isOk()) {
      if (!g.begin()[i].request) g.erase(i);  // a failed request is released: no longer pending
      return st;
    }
    if (!finished) {
      ++i;
      continue;
    }
    g.erase(i);
    ++mark_;
  }
  if (!g.empty()) return Status::ok();
  ++mark_;
  *done = true;
  return Status::ok();
}

Status InFlight::testOldest(int group, size_t* completed) {
  Group& g = groups_[group];
  *completed = 0;
  while (!g.empty()) {
    bool finished = false;
    Status st = transport_.test(&g.front().request, &finished);
    if (!st.isOk()) {
      if (!g.front().request) g.erase(0);
      return st;
    }
    if (!finished) break;
    g.erase(0);
    ++*completed;
    ++mark_;
  }
  return Status::ok();
}

void InFlight::abort() {
  for (Group& g : groups_) {
    for (Posted& p : g) transport_.cancel(&p.request);
    g.clear();
  }
}

std::vector<int> InFlight::pendingPeers() const {
  std::vector<int> peers;
  for (const Group& g : groups_) {
    for (const Posted& p : g) {
      if (p.request) peers.push_back(p.peer);  // null: completed when posted
    }
  }
  std::sort(peers.begin(), peers.end());
  peers.erase(std::unique(peers.begin(), peers.end()), peers.end());
  return peers;
}

}  // namespace ftccl
