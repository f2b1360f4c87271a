// A deterministic, in-process network for control protocols (health now, recovery
// next): virtual time, a fixed per-message latency, reliable in-order delivery per
// pair, connection-loss reports, and fault hooks at any moment:
//   kill(p)   the process is gone: every process connected to it sees the connection
//             close one latency later, frames to it vanish;
//   stop(p)   SIGSTOP: it runs nothing and sends nothing, connections stay open and
//             frames to it wait; resume(p) delivers them;
//   cut(p)    a lost link: frames to and from it vanish silently, it keeps running.
// Nodes carry opaque frames; the network knows nothing of what they mean.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <queue>
#include <set>
#include <string>
#include <vector>

namespace ftccl {
namespace sim {

using SimTime = std::chrono::steady_clock::time_point;

class SimNode {
 public:
  virtual ~SimNode() = default;
  virtual void onFrame(const std::string& from, const std::vector<uint8_t>& frame,
                       SimTime now) = 0;
  virtual void onConnectionLost(const std::string& peer, SimTime now) = 0;
  // Periodic work; returns when it next wants to run.
  virtual SimTime onTick(SimTime now) = 0;
};

class SimNetwork {
 public:
  explicit SimNetwork(std::chrono::microseconds latency);

  SimTime now() const { return now_; }
  void add(const std::string& key, SimNode* node);

  void send(const std::string& from, const std::string& to, std::vector<uint8_t> frame);
  // `from` keeps a connection to `to` and hears when it closes.
  void connect(const std::string& from, const std::string& to);
  void disconnect(const std::string& from, const std::string& to);

  void kill(const std::string& key);
  void stop(const std::string& key);
  void resume(const std::string& key);
  void cut(const std::string& key);
  // A partition between two processes: frames between them vanish both ways.
  void block(const std::string& a, const std::string& b);
  bool alive(const std::string& key) const { return !dead_.count(key); }

  // Runs every event up to and including time `until`.
  void runUntil(SimTime until);
  void runFor(std::chrono::microseconds span) { runUntil(now_ + span); }
  uint64_t framesDelivered() const { return delivered_; }

 private:
  enum class Kind { kFrame, kLost, kTick };
  struct Event {
    SimTime at;
    uint64_t order;  // ties broken by creation order: deterministic
    Kind kind;
    std::string to, from;
    std::vector<uint8_t> frame;
    bool operator>(const Event& other) const {
      return at != other.at ? at > other.at : order > other.order;
    }
  };
  void schedule(SimTime at, Kind kind, const std::string& to, const std::string& from,
                std::vector<uint8_t> frame = {});
  void dispatch(Event& e);

  std::chrono::microseconds latency_;
  SimTime now_;
  uint64_t nextOrder_ = 0;
  uint64_t delivered_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  std::map<std::string, SimNode*> nodes_;
  std::map<std::string, std::set<std::string>> watchers_;  // to -> who is connected to it
  std::set<std::string> dead_, stopped_, cut_;
  std::set<std::pair<std::string, std::string>> blocked_;
  std::map<std::string, std::deque<Event>> held_;  // frames waiting for a stopped node
};

}  // namespace sim
}  // namespace ftccl
