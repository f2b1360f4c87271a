// HealthProtocol, authentication: the keys a registration brings, the key each message
// goes under, whether a received one fits its key, and the replay guard of probes.
#include <algorithm>

#include "health/health_protocol.h"
#include "util/log.h"

namespace ftccl {

// The keys a registration brings: its communicator's root key, its epoch's key (from the
// salt of the commit that made the epoch), the join ids' keys.
void HealthProtocol::holdKeys(const HealthRegistration& info) {
  keys_.hold(info.commKey, info.authRoot.get());
  keys_.addEpoch(info.commKey, info.epoch, info.epochSalt);
  for (const auto& secret : info.joinSecrets) keys_.addJoinSecret(info.commKey, secret);
}

void HealthProtocol::send(const ProcessKey& to, const HealthMessage& message,
                          const RecoveryMessage* recovery) {
  if (dropAll_) return;
  if (!authenticated_ || message.auth.key) {
    network_->send(to, message);
    return;
  }
  HealthMessage sealed = message;
  authorize(to, &sealed, recovery);
  if (!sealed.auth.key) {
    FTCCL_LOG(Debug, Health, "no key to send a message of type {} to {}: not sent",
              static_cast<int>(message.type()), to);
    return;
  }
  network_->send(to, sealed);
}

// The key a message goes under: its communicator's key of the epoch it speaks for.
// Replies go under the key of what they answer; a commit, under the key of the epoch it
// leaves (every member of that epoch holds it; the next epoch's key comes with it).
void HealthProtocol::authorize(const ProcessKey& to, HealthMessage* m,
                               const RecoveryMessage* recovery) const {
  HealthAuth& a = m->auth;
  const bool reply = inbound_ != nullptr && *inboundFrom_ == to;
  auto under = [&](uint64_t comm, uint64_t epoch) {
    a.comm = comm;
    a.epoch = static_cast<uint32_t>(epoch);
    a.kind = KeyKind::kEpoch;
    a.key = keys_.epochKey(comm, a.epoch);
  };
  switch (m->type()) {
    case HealthType::kAck:
    case HealthType::kProgress:
      if (reply) a = *inbound_;
      return;
    case HealthType::kHeartbeat:
      for (const auto& [id, r] : registrations_) {
        if (!r.info.joining && memberOf(r.info, to) != nullptr) {
          under(r.info.commKey, r.info.epoch);
          if (a.key) return;
        }
      }
      return;
    case HealthType::kFailed:
      under(m->as<HealthFailed>()->commKey, m->as<HealthFailed>()->epoch);
      return;
    case HealthType::kLeave:
      under(m->as<HealthLeave>()->commKey, m->as<HealthLeave>()->epoch);
      return;
    case HealthType::kProgressQuery:
      under(m->as<HealthProgressQuery>()->commKey, m->as<HealthProgressQuery>()->epoch);
      return;
    case HealthType::kRecovery: {
      if (recovery == nullptr) return;
      const uint64_t commKey = m->as<HealthRecovery>()->commKey;
      if (std::holds_alternative<AgreementExpelled>(*recovery)) {
        if (reply) a = *inbound_;
      } else if (const auto* commit = std::get_if<AgreementCommit>(recovery)) {
        under(commKey, commit->epoch - 1);
      } else if (isNewcomersJoin(*recovery)) {
        // A newcomer's own request: under its join id's key.
        auto joins = keys_.joinKeys(commKey);
        if (joins.empty()) return;
        a.comm = commKey;
        a.kind = KeyKind::kJoin;
        a.key = joins.front().first;
      } else {
        under(commKey, epochOf(*recovery));
      }
      return;
    }
    default:
      return;
  }
}

// The seal of the kAttest opening a monitoring connection to `peer`: under the
// attestation key of a communicator that has it as a member (none: no key held).
HealthAuth HealthProtocol::attestFor(const ProcessKey& peer) const {
  HealthAuth a;
  for (const auto& [id, r] : registrations_) {
    if (memberOf(r.info, peer) == nullptr) continue;
    a.comm = r.info.commKey;
    a.kind = KeyKind::kAttest;
    a.key = keys_.attestKey(a.comm);
    if (a.key) return a;
  }
  return HealthAuth{};
}

bool HealthProtocol::joining() const {
  for (const auto& [id, r] : registrations_) {
    if (r.info.joining) return true;
  }
  return false;
}

// A frame's key must fit what the frame says: a key of communicator A says nothing of
// communicator B, nor an epoch's key of another epoch, nor a join key of anything but
// joining.
bool HealthProtocol::authentic(const HealthMessage& m, const RecoveryMessage* recovery) const {
  if (!authenticated_) return true;
  const HealthAuth& a = m.auth;
  if (!a.key || a.kind == KeyKind::kAttest) return false;  // it seals kAttest alone
  if (a.kind == KeyKind::kJoin) {
    const auto* frame = m.as<HealthRecovery>();
    return frame != nullptr && recovery != nullptr && frame->commKey == a.comm &&
           (std::holds_alternative<JoinAccept>(*recovery) || isNewcomersJoin(*recovery));
  }
  auto fits = [&](uint64_t commKey, uint32_t epoch) {
    return commKey == a.comm && epoch == a.epoch;
  };
  switch (m.type()) {
    case HealthType::kHeartbeat:
    case HealthType::kAck:
      return true;
    case HealthType::kFailed:
      return fits(m.as<HealthFailed>()->commKey, m.as<HealthFailed>()->epoch);
    case HealthType::kLeave:
      return fits(m.as<HealthLeave>()->commKey, m.as<HealthLeave>()->epoch);
    case HealthType::kProgressQuery:
      return fits(m.as<HealthProgressQuery>()->commKey, m.as<HealthProgressQuery>()->epoch);
    case HealthType::kProgress:
      return m.as<HealthProgress>()->progress.commKey == a.comm;
    case HealthType::kRecovery:
      if (recovery == nullptr || m.as<HealthRecovery>()->commKey != a.comm) return false;
      switch (wireTypeOf(*recovery)) {
        case AgreementCommit::kWireType:
          return uint64_t{a.epoch} + 1 == epochOf(*recovery);
        case AgreementExpelled::kWireType:
          return a.epoch <= epochOf(*recovery);
        case JoinAccept::kWireType:
          return false;
        case JoinRequest::kWireType:
          return !isNewcomersJoin(*recovery) && a.epoch == epochOf(*recovery);
        default:
          return a.epoch == epochOf(*recovery);
      }
    default:
      return false;
  }
}

// A probe is taken once: a heartbeat only numbered above the last one taken from its
// sender, an ack only from a monitored peer and of a heartbeat sent and not yet acked.
// The state is per sender that holds a key (a member): bounded by the membership, and
// kept after a peer is no longer watched, so that a later watch starts where it was.
bool HealthProtocol::fresh(const ProcessKey& from, const HealthMessage& m) {
  if (!isProbe(m)) return true;
  if (const auto* heartbeat = m.as<HealthHeartbeat>()) {
    // No state for a sender we know nothing of (a newcomer monitoring us before its pool
    // commit reached us): its heartbeat is acked, and a replay of it gains nothing more.
    // A sender with state is known already: the membership's index (100,000 entries,
    // a cache miss per heartbeat) is asked only for the first one.
    auto last = lastHeartbeat_.find(from);
    if (last == lastHeartbeat_.end()) {
      if (!knownProcess(from)) return true;
      last = lastHeartbeat_.emplace(from, 0).first;
    }
    if (heartbeat->seq <= last->second) return false;
    last->second = heartbeat->seq;
    return true;
  }
  if (!watched_.count(from)) return false;
  const uint64_t seq = m.as<HealthAck>()->seq;
  uint64_t& last = lastAck_[from];
  if (seq <= last || seq > heartbeatSeq_) return false;
  last = seq;
  return true;
}

// A member (rank or spare) or a former member of some registration: the only senders
// whose heartbeats count, and for which state is kept.
bool HealthProtocol::knownProcess(const ProcessKey& key) const {
  for (const auto& [id, r] : registrations_) {
    if (memberOf(r.info, key) != nullptr) return true;
    const auto& former = r.info.formerMembers;
    if (std::find(former.begin(), former.end(), key) != former.end()) return true;
  }
  return false;
}

}  // namespace ftccl
