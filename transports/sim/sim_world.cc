#include "transports/sim/sim_world.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>

namespace ftccl {
namespace sim {
namespace {

uint64_t idOf(const std::vector<uint8_t>& address) {
  uint64_t id = 0;
  if (address.size() == sizeof(id)) std::memcpy(&id, address.data(), sizeof(id));
  return id;
}

bool sameMessage(const MessageKey& a, const MessageKey& b) {
  return a.opSeq == b.opSeq && a.channel == b.channel;
}

}  // namespace

struct SimRequest {
  bool receive = false;
  uint64_t from = 0;
  int peer = -1;  // logical, for the error text
  uint32_t epoch = 0;
  MessageKey key;
  void* buffer = nullptr;
  size_t bytes = 0;
  bool done = false;
  Status error;
};

namespace {
// The opaque handle algorithms hold is the request itself.
TransportRequest* handleOf(SimRequest* r) { return reinterpret_cast<TransportRequest*>(r); }
SimRequest* requestOf(TransportRequest* r) { return reinterpret_cast<SimRequest*>(r); }
}  // namespace

class SimEndpoint final : public WorldTransport {
 public:
  SimEndpoint(SimWorld& world, uint64_t id) : world_(world), id_(id) {
    address_.resize(sizeof(id));
    std::memcpy(address_.data(), &id, sizeof(id));
  }
  ~SimEndpoint() override {
    for (SimRequest* r : pending_) delete r;
    std::lock_guard<std::mutex> lock(world_.mutex_);
    if (SimWorld::Box* mine = world_.box(id_)) {
      mine->dead = true;
      mine->queue.clear();
    }
    world_.notifyAll();
  }

  const std::vector<uint8_t>& workerAddress() const override { return address_; }
  Status connect(int rank, std::vector<std::vector<uint8_t>> addresses, uint32_t epoch) override {
    worlds_.clear();
    for (const auto& a : addresses) addPeer(a);
    selfWorld_ = rank;
    logicalToWorld_.resize(addresses.size());
    for (size_t r = 0; r < addresses.size(); ++r) logicalToWorld_[r] = static_cast<int>(r);
    rank_ = rank;
    epoch_ = epoch;
    return Status::ok();
  }
  Status remap(uint32_t epoch, std::vector<int> logicalToWorld, int rank) override {
    logicalToWorld_ = std::move(logicalToWorld);
    rank_ = rank;
    epoch_ = epoch;
    return Status::ok();
  }
  void addPeer(std::vector<uint8_t> address) override {
    worlds_.push_back(idOf(address));
    counters_.push_back(std::make_unique<LinkCounters>());
  }
  void setPeerAddress(size_t world, std::vector<uint8_t> address) override {
    worlds_.at(world) = idOf(address);
  }
  int selfWorld() const override { return selfWorld_; }
  size_t processCount() const override { return worlds_.size(); }
  const LinkCounters& counters(size_t world) const override { return *counters_.at(world); }

  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(logicalToWorld_.size()); }

  Status isend(int peer, const void* buffer, size_t bytes, MessageKey key,
               TransportRequest** request) override {
    *request = nullptr;
    uint64_t to = idOfPeer(peer);
    std::lock_guard<std::mutex> lock(world_.mutex_);
    SimWorld::Box* box = world_.box(to);
    SimWorld::Box* mine = world_.box(id_);
    if (box == nullptr || box->dead || mine->dead) {
      return remoteError("send to rank " + std::to_string(peer) +
                         " failed: its endpoint is gone (simulated)");
    }
    const uint8_t* data = static_cast<const uint8_t*>(buffer);
    box->queue.push_back(SimWorld::Message{id_, epoch_, key, {data, data + bytes}});
    world_.notifyAll();
    return Status::ok();
  }

  Status irecv(int peer, void* buffer, size_t bytes, MessageKey key,
               TransportRequest** request) override {
    auto* r = new SimRequest();
    r->receive = true;
    r->from = idOfPeer(peer);
    r->peer = peer;
    r->epoch = epoch_;
    r->key = key;
    r->buffer = buffer;
    r->bytes = bytes;
    pending_.push_back(r);
    std::lock_guard<std::mutex> lock(world_.mutex_);
    match(r);
    *request = handleOf(r);
    return Status::ok();
  }

  Status test(TransportRequest** request, bool* done) override {
    SimRequest* r = requestOf(*request);
    *done = false;
    if (r == nullptr) {
      *done = true;
      return Status::ok();
    }
    {
      std::lock_guard<std::mutex> lock(world_.mutex_);
      match(r);
    }
    if (!r->done) return Status::ok();
    Status error = r->error;
    release(request);
    *done = true;
    return error;
  }

  void cancel(TransportRequest** request) override {
    if (*request) release(request);
  }

  Status findMismatchedMessage() override {
    std::lock_guard<std::mutex> lock(world_.mutex_);
    SimWorld::Box* mine = world_.box(id_);
    for (const SimRequest* r : pending_) {
      if (r->done) continue;
      for (const SimWorld::Message& m : mine->queue) {
        if (m.from == r->from && m.epoch == r->epoch && sameMessage(m.key, r->key) &&
            m.key.signature != r->key.signature) {
          return invalidUsage("rank " + std::to_string(r->peer) +
                              " called this op with other arguments (its signature " +
                              std::to_string(m.key.signature) + ", ours " +
                              std::to_string(r->key.signature) + ")");
        }
      }
    }
    return Status::ok();
  }

  bool progress() override {
    bool any = false;
    std::lock_guard<std::mutex> lock(world_.mutex_);
    for (SimRequest* r : pending_) any = match(r) || any;
    return any;
  }

  Status waitForActivity(int timeoutMs) override {
    std::unique_lock<std::mutex> lock(world_.mutex_);
    world_.activity_.wait_for(lock, std::chrono::milliseconds(timeoutMs),
                              [&] { return world_.generation_ != seen_; });
    seen_ = world_.generation_;
    return Status::ok();
  }

  void interrupt() override {
    std::lock_guard<std::mutex> lock(world_.mutex_);
    world_.notifyAll();
  }

 private:
  uint64_t idOfPeer(int peer) const {
    if (peer < 0 || peer >= static_cast<int>(logicalToWorld_.size())) return 0;
    return worlds_.at(static_cast<size_t>(logicalToWorld_[static_cast<size_t>(peer)]));
  }

  // Under the world's lock. True when it completed now. Receives of one source and key
  // take that source's messages in the order they were posted, as UCX's tag matching
  // does: an earlier receive is matched first (a later one of another length must not
  // take its message).
  bool match(SimRequest* r) {
    if (r->done) return false;
    for (SimRequest* earlier : pending_) {
      if (earlier == r) break;
      if (!earlier->done && sameSource(*earlier, *r) && !matchOne(earlier)) return false;
    }
    return matchOne(r);
  }

  static bool sameSource(const SimRequest& a, const SimRequest& b) {
    return a.from == b.from && a.epoch == b.epoch && sameMessage(a.key, b.key) &&
           a.key.signature == b.key.signature;
  }

  bool matchOne(SimRequest* r) {
    SimWorld::Box* mine = world_.box(id_);
    auto& queue = mine->queue;
    auto found = std::find_if(queue.begin(), queue.end(), [&](const SimWorld::Message& m) {
      return m.from == r->from && m.epoch == r->epoch && sameMessage(m.key, r->key) &&
             m.key.signature == r->key.signature;
    });
    if (found != queue.end()) {
      if (found->bytes.size() != r->bytes) {
        r->error = invalidUsage("received " + std::to_string(found->bytes.size()) +
                                " B from rank " + std::to_string(r->peer) + " where " +
                                std::to_string(r->bytes) + " B were expected");
      } else if (r->bytes) {
        std::memcpy(r->buffer, found->bytes.data(), r->bytes);
      }
      queue.erase(found);
      r->done = true;
      return true;
    }
    SimWorld::Box* from = world_.box(r->from);
    if (mine->dead || from == nullptr || from->dead) {
      r->error = remoteError("receive from rank " + std::to_string(r->peer) +
                             " failed: its endpoint is gone (simulated)");
      r->done = true;
      return true;
    }
    return false;
  }

  void release(TransportRequest** request) {
    SimRequest* r = requestOf(*request);
    pending_.erase(std::remove(pending_.begin(), pending_.end(), r), pending_.end());
    delete r;
    *request = nullptr;
  }

  SimWorld& world_;
  const uint64_t id_;
  std::vector<uint8_t> address_;
  std::vector<uint64_t> worlds_;  // world index -> endpoint id
  std::vector<std::unique_ptr<LinkCounters>> counters_;
  std::vector<int> logicalToWorld_;
  std::vector<SimRequest*> pending_;  // posted receives, owned here
  int selfWorld_ = -1;
  int rank_ = -1;
  uint32_t epoch_ = 0;
  uint64_t seen_ = 0;  // the world's generation at the last wait
};

SimWorld::~SimWorld() = default;

std::unique_ptr<WorldTransport> SimWorld::makeEndpoint() {
  std::lock_guard<std::mutex> lock(mutex_);
  uint64_t id = nextId_++;
  boxes_[id];
  return std::make_unique<SimEndpoint>(*this, id);
}

void SimWorld::kill(const std::vector<uint8_t>& address) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (Box* b = box(idOf(address))) {
    b->dead = true;
    b->queue.clear();
  }
  notifyAll();
}

SimWorld::Box* SimWorld::box(uint64_t id) {
  auto found = boxes_.find(id);
  return found == boxes_.end() ? nullptr : &found->second;
}

void SimWorld::notifyAll() {
  ++generation_;
  activity_.notify_all();
}

}  // namespace sim
}  // namespace ftccl
