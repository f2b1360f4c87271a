#include "health/failure_detector.h"

namespace ftccl {

const char* detectionCauseName(DetectionCause cause) {
  switch (cause) {
    case DetectionCause::kConnectionClosed:
      return "its health connection closed (crash)";
    case DetectionCause::kSilence:
      return "silence on the health channel (hang or lost link)";
    case DetectionCause::kTransportError:
      return "a transport error";
    case DetectionCause::kNotice:
      return "a failure notice";
  }
  return "?";
}

void FailureDetector::watch(const ProcessKey& peer, HealthTime now) {
  auto [it, inserted] = peers_.try_emplace(peer);
  if (inserted) it->second.lastHeard = now;
}

void FailureDetector::unwatch(const ProcessKey& peer) { peers_.erase(peer); }

void FailureDetector::heard(const ProcessKey& peer, HealthTime now) {
  auto it = peers_.find(peer);
  if (it == peers_.end() || now <= it->second.lastHeard) return;
  double silence = std::chrono::duration<double, std::milli>(now - it->second.lastHeard).count();
  if (silence > it->second.longestSilenceMs) it->second.longestSilenceMs = silence;
  it->second.lastHeard = now;
}

double FailureDetector::longestSilenceMs(const ProcessKey& peer) const {
  auto it = peers_.find(peer);
  return it == peers_.end() ? 0 : it->second.longestSilenceMs;
}

void FailureDetector::leaving(const ProcessKey& peer) {
  auto it = peers_.find(peer);
  if (it != peers_.end()) it->second.leaving = true;
}

bool FailureDetector::suspect(const ProcessKey& peer, PeerState& state, DetectionCause cause,
                              HealthTime now, Suspicion* out) {
  if (state.failed || state.leaving) return false;
  state.failed = true;
  out->peer = peer;
  out->cause = cause;
  out->silentMs = std::chrono::duration<double, std::milli>(now - state.lastHeard).count();
  return true;
}

bool FailureDetector::connectionLost(const ProcessKey& peer, HealthTime now, Suspicion* out) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return false;
  return suspect(peer, it->second, DetectionCause::kConnectionClosed, now, out);
}

std::vector<Suspicion> FailureDetector::tick(HealthTime now) {
  std::vector<Suspicion> found;
  for (auto& [peer, state] : peers_) {
    Suspicion s;
    if (now - state.lastHeard >= failureTimeout_ &&
        suspect(peer, state, DetectionCause::kSilence, now, &s)) {
      found.push_back(s);
    }
  }
  return found;
}

}  // namespace ftccl
