// A deterministic, in-process network for control protocols (health, recovery): a
// discrete-event simulation in virtual time. Each frame meets the link model of its
// pair (latency, uniform jitter, the sender's link rate, datagram loss), drawn from a
// seeded generator, so a run is a function of its seed. Reliable frames arrive in
// order per pair (TCP); datagrams (UDP probes) may be lost or overtake each other.
// Connection-loss reports and fault hooks at any moment:
//   kill(p)   the process is gone: every process connected to it sees the connection
//             close one latency later, frames to it vanish;
//   stop(p)   SIGSTOP: it runs nothing and sends nothing, connections stay open and
//             frames to it wait; resume(p) delivers them;
//   cut(p)    a lost link: frames to and from it vanish silently, it keeps running;
//   partition(side)  frames between `side` and the rest vanish (a rack cut off);
//             connections stay open, as TCP's do until they time out.
// Per-process traffic counters measure what a protocol costs; a per-frame handling
// cost makes a process that receives many frames at once (a coordinator) queue them.
// Queued datagrams (probes) are handled before queued reliable frames, as the health
// thread reads its probe socket first: a busy coordinator still answers heartbeats.
// Nodes carry opaque frames; the network knows nothing of what they mean.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace ftccl {
namespace sim {

using SimTime = std::chrono::steady_clock::time_point;

class SimNode {
 public:
  virtual ~SimNode() = default;
  virtual void onFrame(const std::string& from, const std::vector<uint8_t>& frame, SimTime now) = 0;
  virtual void onConnectionLost(const std::string& peer, SimTime now) = 0;
  // Periodic work; returns when it next wants to run.
  virtual SimTime onTick(SimTime now) = 0;
};

// What a frame from one process to another meets on its way.
struct LinkSpec {
  std::chrono::nanoseconds latency{50000};
  std::chrono::nanoseconds jitter{0};  // uniform extra delay in [0, jitter]
  double datagramLoss = 0;             // probability that a datagram is lost
  double gbps = 0;                     // the sender's link rate; 0: no limit
};
using LinkModel = std::function<LinkSpec(const std::string& from, const std::string& to)>;

enum class Delivery { kReliable, kDatagram };

struct Traffic {
  uint64_t sentFrames = 0, sentBytes = 0, receivedFrames = 0, receivedBytes = 0;
};

class SimNetwork {
 public:
  // Every pair: this latency, no jitter, loss or rate limit.
  explicit SimNetwork(std::chrono::microseconds latency);
  SimNetwork(LinkModel model, uint64_t seed);

  SimTime now() const { return now_; }
  // Where keys carry their node's number ("p17": 17), the network may use it instead of
  // hashing the key on every call (a third of a 100,000-process run went to that).
  // `index` returns the number, or -1 for a key without one (looked up as before).
  // Before any key is used (ignored after); numbers from 2^24 on go through the map.
  void setKeyIndex(std::function<int64_t(const std::string&)> index) {
    if (nodes_.empty() && ids_.empty()) keyIndex_ = std::move(index);
  }
  void add(const std::string& key, SimNode* node);

  void send(const std::string& from, const std::string& to, std::vector<uint8_t> frame,
            Delivery delivery = Delivery::kReliable);
  // `from` keeps a connection to `to` and hears when it closes.
  void connect(const std::string& from, const std::string& to);
  void disconnect(const std::string& from, const std::string& to);
  // Runs `key`'s onTick now as well, out of its timer's turn (e.g. an application
  // thread acting on a callback); its returned time is ignored.
  void wake(const std::string& key);
  // Each received frame keeps its process busy this long; later ones wait their turn,
  // datagrams ahead of reliable frames.
  void setHandlingCost(std::chrono::nanoseconds cost) { handlingCost_ = cost; }

  void kill(const std::string& key);
  void stop(const std::string& key);
  void resume(const std::string& key);
  void cut(const std::string& key);
  // A partition between two processes: frames between them vanish both ways.
  void block(const std::string& a, const std::string& b);
  void unblock(const std::string& a, const std::string& b);
  void partition(const std::vector<std::string>& side);
  void heal();  // ends the partition
  bool alive(const std::string& key) const;

  // Runs every event up to and including time `until`.
  void runUntil(SimTime until);
  void runFor(std::chrono::microseconds span) { runUntil(now_ + span); }
  uint64_t framesDelivered() const { return delivered_; }
  uint64_t eventsRun() const { return eventsRun_; }
  const Traffic& traffic(const std::string& key) { return nodes_[idOf(key)].traffic; }
  void resetTraffic();

 private:
  using Id = uint32_t;  // a node's index in nodes_: events and state are kept by it
  // kNext: the receiver's handling slot is free again; it takes the next queued frame.
  enum class Kind : uint8_t { kFrame, kLost, kTick, kWake, kNext };
  struct Event {
    SimTime at;
    uint64_t order;  // ties broken by creation order: deterministic
    Kind kind;
    bool datagram = false;
    Id to, from;
    std::vector<uint8_t> frame;
    bool operator>(const Event& other) const {
      return at != other.at ? at > other.at : order > other.order;
    }
  };
  // Frames waiting for their receiver's handling slot (handlingCost_ > 0).
  struct Inbox {
    SimTime busyUntil{};
    std::deque<Event> datagrams, reliable;
    bool nextScheduled = false;
  };
  struct Node {
    std::string key;
    bool named = false;  // a key holds this slot (by its number or through the map)
    SimNode* node = nullptr;
    bool dead = false, stopped = false, cut = false, partitioned = false;
    SimTime linkFreeAt{};    // when its link is idle
    std::set<Id> watchers;   // who is connected to it
    std::deque<Event> held;  // frames waiting while it is stopped
    Inbox inbox;
    Traffic traffic;
  };
  Id idOf(const std::string& key);  // adds an unknown key (a node not added yet)
  // The key's node by its number (keyIndex_), claiming a free slot; false where the
  // key has no number or its slot belongs to another key (then the map decides).
  bool indexedId(const std::string& key, bool add, Id* id);
  void schedule(SimTime at, Kind kind, Id to, Id from, std::vector<uint8_t> frame = {},
                bool datagram = false);
  void dispatch(Event& e);
  void receive(Event& e);  // a frame that arrived: handled now, or queued
  void handleNextQueued(Id to);
  void deliver(const Event& e);
  bool severed(Id a, Id b) const;
  // When a frame of `bytes` sent now reaches `to` (draws jitter, takes the link).
  SimTime arrival(Id from, Id to, const LinkSpec& link, size_t bytes, Delivery d);

  LinkModel model_;
  std::mt19937_64 random_;
  SimTime now_;
  uint64_t nextOrder_ = 0;
  uint64_t delivered_ = 0;
  uint64_t eventsRun_ = 0;
  std::chrono::nanoseconds handlingCost_{0};
  std::vector<Node> nodes_;
  std::unordered_map<std::string, Id> ids_;  // keys not placed by keyIndex_
  std::function<int64_t(const std::string&)> keyIndex_;
  std::unordered_map<uint64_t, SimTime> lastReliable_;  // from << 32 | to
  size_t pruneReliableAt_ = size_t{1} << 16;
  std::set<std::pair<Id, Id>> blocked_;
  bool anyPartition_ = false, anyCut_ = false;
  // The queue orders small keys; the events wait in a pool, their slots reused: a heap
  // of whole events moved 64 bytes a level on every push and pop (12% of a 10,000-rank
  // run's time).
  struct Queued {
    SimTime at;
    uint64_t order;
    uint32_t slot;
    bool operator>(const Queued& other) const {
      return at != other.at ? at > other.at : order > other.order;
    }
  };
  std::priority_queue<Queued, std::vector<Queued>, std::greater<Queued>> events_;
  std::vector<Event> eventPool_;
  std::vector<uint32_t> freeSlots_;
};

}  // namespace sim
}  // namespace ftccl
