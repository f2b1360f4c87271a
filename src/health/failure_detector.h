// The failure detector: decides, per monitored peer process, "alive" or "failed" from
// what the health channel observes. Pure state machine: no socket, no thread, no
// clock of its own (time is an input), so unit tests drive it deterministically.
//
// A crash closes the peer's TCP connection (the kernel does it): suspected at once.
// A hung process (SIGSTOP) or a lost link keeps the connection open but goes silent:
// suspected once nothing was heard for failureTimeout. A peer that announced an
// orderly leave is never suspected.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ftccl {

using HealthClock = std::chrono::steady_clock;
using HealthTime = HealthClock::time_point;

enum class DetectionCause { kConnectionClosed, kSilence, kTransportError, kNotice };
const char* detectionCauseName(DetectionCause cause);

// One process is identified by its health listener address ("10.0.0.1:4242").
using ProcessKey = std::string;

struct Suspicion {
  ProcessKey peer;
  DetectionCause cause = DetectionCause::kSilence;
  double silentMs = 0;  // since the peer was last heard from
};

class FailureDetector {
 public:
  explicit FailureDetector(std::chrono::milliseconds failureTimeout)
      : failureTimeout_(failureTimeout) {}
  void setFailureTimeout(std::chrono::milliseconds timeout) { failureTimeout_ = timeout; }

  // Starts monitoring (idempotent); the peer counts as heard at `now`.
  void watch(const ProcessKey& peer, HealthTime now);
  // Stops monitoring: the peer left in order, or no communicator needs it any more.
  void unwatch(const ProcessKey& peer);
  bool watching(const ProcessKey& peer) const { return peers_.count(peer) != 0; }

  // Anything arrived from the peer (heartbeat, ack, notice).
  void heard(const ProcessKey& peer, HealthTime now);
  // The peer announced an orderly leave: a later close is not a failure.
  void leaving(const ProcessKey& peer);

  // The connection to the peer closed or failed. Returns true (and fills *out) when
  // this makes the peer suspected for the first time.
  bool connectionLost(const ProcessKey& peer, HealthTime now, Suspicion* out);
  // Silence check: every peer silent for failureTimeout, each reported once.
  std::vector<Suspicion> tick(HealthTime now);

  // The longest silence seen from a peer while it was alive (for choosing timeouts).
  double longestSilenceMs(const ProcessKey& peer) const;

 private:
  struct PeerState {
    HealthTime lastHeard;
    double longestSilenceMs = 0;
    bool leaving = false;
    bool failed = false;
  };
  bool suspect(const ProcessKey& peer, PeerState& state, DetectionCause cause, HealthTime now,
               Suspicion* out);

  std::chrono::milliseconds failureTimeout_;
  std::map<ProcessKey, PeerState> peers_;
};

}  // namespace ftccl
