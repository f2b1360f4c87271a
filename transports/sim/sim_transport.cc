#include "transports/sim/sim_transport.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace ftccl {
namespace sim {

struct SimFabric::Request {
  bool isSend = false;
  int src = 0, dst = 0;
  MessageKey key;
  const void* from = nullptr;
  void* into = nullptr;
  size_t bytes = 0;
  bool done = false;
  Status error;
};

namespace {

TransportRequest* handleOf(SimFabric::Request* r) { return reinterpret_cast<TransportRequest*>(r); }
SimFabric::Request* requestOf(TransportRequest* r) {
  return reinterpret_cast<SimFabric::Request*>(r);
}
bool sameKey(const MessageKey& a, const MessageKey& b) {
  return a.opSeq == b.opSeq && a.channel == b.channel && a.signature == b.signature;
}

}  // namespace

class SimTransport final : public Transport {
 public:
  SimTransport(SimFabric& fabric, int rank) : fabric_(fabric), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return fabric_.size(); }

  Status isend(int peer, const void* buffer, size_t bytes, MessageKey key,
               TransportRequest** request) override {
    return post(true, peer, const_cast<void*>(buffer), bytes, key, request);
  }
  Status irecv(int peer, void* buffer, size_t bytes, MessageKey key,
               TransportRequest** request) override {
    return post(false, peer, buffer, bytes, key, request);
  }
  Status test(TransportRequest** request, bool* done) override {
    *done = true;
    if (*request == nullptr) return Status::ok();
    SimFabric::Request* r = requestOf(*request);
    if (!r->done) {
      *done = false;
      return Status::ok();
    }
    Status error = r->error;
    fabric_.release(r);
    *request = nullptr;
    return error;
  }
  void cancel(TransportRequest** request) override {
    if (*request) fabric_.release(requestOf(*request));
    *request = nullptr;
  }
  bool progress() override { return fabric_.progress(); }
  Status waitForActivity(int) override { return Status::ok(); }
  void interrupt() override {}

 private:
  Status post(bool isSend, int peer, void* buffer, size_t bytes, MessageKey key,
              TransportRequest** request) {
    *request = nullptr;
    if (peer < 0 || peer >= size() || peer == rank_) {
      return internalError("sim: rank " + std::to_string(rank_) + " posts to peer " +
                           std::to_string(peer));
    }
    auto* r = new SimFabric::Request;
    r->isSend = isSend;
    r->src = isSend ? rank_ : peer;
    r->dst = isSend ? peer : rank_;
    r->key = key;
    r->from = buffer;
    r->into = buffer;
    r->bytes = bytes;
    Status st = fabric_.post(r);
    if (!st.isOk()) {
      delete r;
      return st;
    }
    *request = handleOf(r);
    return Status::ok();
  }

  SimFabric& fabric_;
  int rank_;
};

SimFabric::SimFabric(int nranks) : dead_(nranks, false) {
  for (int r = 0; r < nranks; ++r) ranks_.push_back(std::make_unique<SimTransport>(*this, r));
}

SimFabric::~SimFabric() {
  for (Request* r : sends_) delete r;
  for (Request* r : recvs_) delete r;
}

Transport& SimFabric::transport(int rank) { return *ranks_.at(rank); }

Status SimFabric::post(Request* request) {
  if (dead_[request->src] || dead_[request->dst]) {
    return remoteError("sim: rank " +
                       std::to_string(dead_[request->src] ? request->src : request->dst) +
                       " is dead");
  }
  (request->isSend ? sends_ : recvs_).push_back(request);
  return Status::ok();
}

// A request is owned by the fabric until its poster tests it done or cancels it; a
// completed request is no longer in the matching lists.
void SimFabric::release(Request* request) {
  sends_.remove(request);
  recvs_.remove(request);
  delete request;
}

void SimFabric::kill(int rank) {
  dead_.at(rank) = true;
  for (auto* list : {&sends_, &recvs_}) {
    for (auto it = list->begin(); it != list->end();) {
      Request* r = *it;
      if (r->src == rank || r->dst == rank) {
        r->done = true;
        r->error = remoteError("sim: rank " + std::to_string(rank) + " died");
        it = list->erase(it);
      } else {
        ++it;
      }
    }
  }
}

bool SimFabric::progress() {
  bool any = false;
  for (auto recv = recvs_.begin(); recv != recvs_.end();) {
    Request* r = *recv;
    auto send = std::find_if(sends_.begin(), sends_.end(), [&](Request* s) {
      return s->src == r->src && s->dst == r->dst && sameKey(s->key, r->key);
    });
    if (send == sends_.end()) {
      ++recv;
      continue;
    }
    Request* s = *send;
    if (s->bytes > r->bytes) {
      r->error = internalError("sim: message of " + std::to_string(s->bytes) +
                               " B truncated into a " + std::to_string(r->bytes) + " B receive");
      s->error = r->error;
    } else if (s->bytes) {
      std::memcpy(r->into, s->from, s->bytes);
      bytesMoved_ += s->bytes;
    }
    r->done = s->done = true;
    sends_.erase(send);
    recv = recvs_.erase(recv);
    any = true;
  }
  return any;
}

}  // namespace sim
}  // namespace ftccl
