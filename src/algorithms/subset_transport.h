// A view of a Transport restricted to some of its ranks, for composite algorithms: the
// hierarchical all-reduce runs a ring among the ranks of one node, then among the
// ranks with the same local index. Rank i of the view is parent rank members[i], and
// every channel moves up by channelBase so that two phases sharing peers (intra-node
// reduce-scatter, then intra-node all-gather) can never match each other's messages.
#pragma once

#include <algorithm>
#include <vector>

#include "transports/transport.h"

namespace ftccl {

class SubsetTransport final : public Transport {
 public:
  SubsetTransport(Transport& parent, std::vector<int> members, uint32_t channelBase)
      : parent_(parent), members_(std::move(members)), channelBase_(channelBase) {
    auto it = std::find(members_.begin(), members_.end(), parent.rank());
    rank_ = it == members_.end() ? -1 : static_cast<int>(it - members_.begin());
  }

  int rank() const override { return rank_; }  // -1 when this rank is not a member
  int size() const override { return static_cast<int>(members_.size()); }
  int parentRank(int rank) const { return members_[rank]; }

  Status isend(int peer, const void* buffer, size_t bytes, MessageKey key,
               TransportRequest** request) override {
    return parent_.isend(members_[peer], buffer, bytes, shifted(key), request);
  }
  Status irecv(int peer, void* buffer, size_t bytes, MessageKey key,
               TransportRequest** request) override {
    return parent_.irecv(members_[peer], buffer, bytes, shifted(key), request);
  }
  Status test(TransportRequest** request, bool* done) override {
    return parent_.test(request, done);
  }
  void cancel(TransportRequest** request) override { parent_.cancel(request); }
  bool progress() override { return parent_.progress(); }
  Status waitForActivity(int timeoutMs) override { return parent_.waitForActivity(timeoutMs); }
  void interrupt() override { parent_.interrupt(); }

 private:
  MessageKey shifted(MessageKey key) const {
    key.channel += channelBase_;
    return key;
  }

  Transport& parent_;
  std::vector<int> members_;
  uint32_t channelBase_;
  int rank_ = -1;
};

}  // namespace ftccl
