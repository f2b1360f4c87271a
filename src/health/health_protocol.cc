#include "health/health_protocol.h"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "recovery/agreement.h"
#include "recovery/epoch_store.h"
#include "util/log.h"

namespace ftccl {
namespace {

// Mutual monitors ack one heartbeat in this many (round-trip samples every 100 ms).
constexpr uint64_t kAckEvery = 10;
// A former member that still sends heartbeats is told EXPELLED at most this often.
constexpr auto kExpelledEvery = std::chrono::milliseconds(100);

// A newcomer's own JOIN carries its proof of a join id; a sponsor's forward carries none.
bool isNewcomersJoin(const RecoveryMessage& m) {
  const auto* join = std::get_if<JoinRequest>(&m);
  return join != nullptr && !join->secret.empty();
}

int64_t toNs(HealthTime t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

HealthProtocol::HealthProtocol(ProcessKey self, std::string host, int pid, HealthNetwork* network,
                               std::shared_ptr<EpochStore> epochs)
    : self_(std::move(self)),
      host_(std::move(host)),
      network_(network),
      epochs_(epochs ? std::move(epochs) : std::make_shared<EpochStore>()) {}

HealthProtocol::~HealthProtocol() = default;

// Agreement messages travel on the health channel, tagged with their communicator.
class HealthProtocol::AgreementSender final : public AgreementNetwork {
 public:
  AgreementSender(HealthProtocol* protocol, uint64_t commKey)
      : protocol_(protocol), commKey_(commKey) {}
  void send(const Member& to, const RecoveryMessage& message) override {
    protocol_->send(to, HealthRecovery{commKey_, encodeRecoveryMessage(message)}, &message);
  }
  // The new epoch's key, from the salt only the commit's receivers know, before the
  // agreement sends anything of that epoch (a second failure's report follows at once).
  void onAdopting(const AgreementCommit& commit) override {
    protocol_->keys_.addEpoch(commKey_, static_cast<uint32_t>(commit.epoch), commit.salt);
  }

 private:
  HealthProtocol* protocol_;
  uint64_t commKey_;
};

HealthProtocol::RegistrationId HealthProtocol::add(HealthRegistration registration,
                                                   HealthTime now) {
  lastNow_ = now;
  RegistrationId id = nextId_++;
  Registration& r = registrations_[id];
  r.info = std::move(registration);
  if (!r.info.members) r.info.members = MemberTable::make({});
  if (r.info.recoverable && !r.info.joining) {
    std::shared_ptr<const Membership> current = r.info.membership;
    if (!current) {
      Membership built;
      built.epoch = r.info.epoch;
      const MemberTable& table = *r.info.members;
      for (int i = 0; i < table.size(); ++i) {
        (i < table.nRanks ? built.ranks : built.spares).push_back(table[i].key);
      }
      current = std::make_shared<const Membership>(std::move(built));
    }
    if (!takeOverAgreement(r)) {
      r.agreementNet = std::make_unique<AgreementSender>(this, r.info.commKey);
      r.agreement = std::make_unique<Agreement>(self_, current, r.info.shrinkWhenNoSpares,
                                                r.agreementNet.get(), epochs_, r.info.enteredBy);
    }
  }
  if (r.info.progress) r.lateness = std::make_unique<LatenessTracker>(r.info.stragglerMinLateMs);
  holdKeys(r.info);
  reportKnownFailures(r);
  syncWatched(now);
  return id;
}

void HealthProtocol::remove(RegistrationId id, bool orderly, HealthTime now) {
  auto it = registrations_.find(id);
  if (it == registrations_.end()) return;
  if (orderly) {
    const HealthRegistration& r = it->second.info;
    const HealthMessage leave = HealthLeave{r.commKey, r.epoch, r.myRank};
    std::set<ProcessKey> told;
    for (const MemberInfo& m : r.members->members) {
      if (m.key != self_ && !it->second.reported.count(m.rank) && told.insert(m.key).second) {
        send(m.key, leave);
      }
    }
  }
  keys_.release(it->second.info.commKey);
  registrations_.erase(it);
  syncWatched(now);
}

// A communicator entering an epoch registers anew while its old registration still
// runs; the old one's agreement, already in that epoch, may be half way through the
// next round (a proposal accepted, a commit partly sent). The new registration takes it
// over, Paxos state and all: a fresh one would forget what this member accepted, and a
// later coordinator could then commit another decision (another salt: another key) for
// the same epoch.
bool HealthProtocol::takeOverAgreement(Registration& fresh) {
  for (auto& [id, old] : registrations_) {
    // The same communicator re-registering (its listener): a process may hold several
    // ranks of one communicator (threads), each with an agreement of its own.
    if (&old == &fresh || old.info.commKey != fresh.info.commKey ||
        old.info.listener != fresh.info.listener || !old.agreement || old.agreementDone ||
        old.info.joining || old.agreement->membership().epoch != fresh.info.epoch) {
      continue;
    }
    fresh.agreement = std::move(old.agreement);
    fresh.agreementNet = std::move(old.agreementNet);
    fresh.sponsored = std::move(old.sponsored);
    fresh.notifiedEpoch = old.notifiedEpoch;
    fresh.recoveringSince = old.recoveringSince;
    return true;
  }
  return false;
}

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

// A FAILED notice counts only from a member of its communicator as this process's
// agreement knows it: a process expelled in a later epoch still holds the old epoch's
// key, and once resumed its detector suspects its old neighbours (who no longer answer
// it). Without an agreement (not recoverable) the notice's epoch check suffices.
bool HealthProtocol::reporterIsMember(const ProcessKey& from, uint64_t commKey) const {
  for (const auto& [id, r] : registrations_) {
    if (r.info.commKey != commKey || !r.agreement || r.agreementDone) continue;
    if (!r.agreement->isMember(from)) {
      FTCCL_LOG(Info, Health, "ignored a FAILED notice from {}: not a member of epoch {}", from,
                r.agreement->membership().epoch);
      return false;
    }
  }
  return true;
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
    if (!knownProcess(from)) return true;
    uint64_t& last = lastHeartbeat_[from];
    if (heartbeat->seq <= last) return false;
    last = heartbeat->seq;
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

// Watches the union of every registration's monitored members that are neither
// reported failed nor gone; the detector's timeout is the strictest asked for.
void HealthProtocol::syncWatched(HealthTime now) {
  std::set<ProcessKey> want;
  std::chrono::milliseconds timeout(3600000), probe(60000);
  for (auto& [id, r] : registrations_) {
    timeout = std::min(timeout, std::chrono::milliseconds(r.info.failureTimeoutMs));
    probe = std::min(probe, std::chrono::milliseconds(r.info.probeIntervalMs));
    for (int rank : r.info.monitored) {
      if (r.left.count(rank) || r.reported.count(rank)) continue;
      const ProcessKey& key = (*r.info.members)[rank].key;
      if (key != self_) want.insert(key);
    }
  }
  detector_.setFailureTimeout(timeout);
  if (probe != probeInterval_) {
    probeInterval_ = probe;
    nextProbe_ = now;
  }
  for (const ProcessKey& key : watched_) {
    if (want.count(key)) continue;
    FTCCL_LOG(Info, Health,
              "stopped watching {}: longest silence {:.1f} ms, round trip max {:.2f} ms", key,
              detector_.longestSilenceMs(key), maxRoundTripMs(key));
    detector_.unwatch(key);
    network_->unmonitor(key);
  }
  std::set<ProcessKey> added;
  for (const ProcessKey& key : want) {
    if (!watched_.count(key)) added.insert(key);
  }
  watched_ = want;
  for (const ProcessKey& key : added) {
    detector_.watch(key, now);
    network_->monitor(key);  // may report a loss at once (nobody listening)
  }
}

void HealthProtocol::onConnectionLost(const ProcessKey& peer, HealthTime now) {
  lastNow_ = now;
  if (!watched_.count(peer)) return;  // not monitored, or left in order
  Suspicion s;
  if (!detector_.connectionLost(peer, now, &s)) return;
  suspect(s);
  syncWatched(now);
}

// This process detected a failure: revoke every communicator containing it and tell
// all their other members.
void HealthProtocol::suspect(const Suspicion& s) {
  for (auto& [id, r] : registrations_) {
    if (r.agreementDone) continue;  // expelled or failed: its suspicions are stale
    const MemberInfo* found = memberOf(r.info, s.peer);
    if (found != nullptr) {
      rememberFailure(s.peer, s.cause, s.silentMs, self_);
      const MemberInfo m = *found;  // deliver() may replace the table
      if (r.reported.count(m.rank) || r.left.count(m.rank)) continue;
      deliver(r, FailureReport{m.rank, m.host, m.pid, s.cause, s.silentMs, r.info.myRank, true});
      announce(r, m, s.cause, s.silentMs);
    }
  }
}

// Tells every other member of the registration's epoch that `failed` failed.
void HealthProtocol::announce(Registration& r, const MemberInfo& failed, DetectionCause cause,
                              double afterMs) {
  HealthFailed failedNotice;
  failedNotice.commKey = r.info.commKey;
  failedNotice.epoch = r.info.epoch;
  failedNotice.rank = failed.rank;
  failedNotice.failedKey = failed.key;
  failedNotice.cause = static_cast<uint8_t>(cause);
  failedNotice.afterMs = afterMs;
  failedNotice.reporterRank = r.info.myRank;
  const HealthMessage notice = std::move(failedNotice);
  for (const MemberInfo& other : r.info.members->members) {
    if (other.key == self_ || other.key == failed.key || r.left.count(other.rank) ||
        r.reported.count(other.rank)) {
      continue;
    }
    send(other.key, notice);
  }
}

void HealthProtocol::rememberFailure(const ProcessKey& failed, DetectionCause cause, double afterMs,
                                     const ProcessKey& reporter) {
  if (failed != self_) failed_.emplace(failed, KnownFailure{cause, afterMs, reporter});
}

// A new epoch may list a process this one already knows failed: the commit was decided
// before the news reached the coordinator, and the notices of the old epoch are not
// heard in the new one (chaos seed 7975: a rank waited on the dead member for good).
// Reported again here, in the new epoch, it starts the next round at once.
void HealthProtocol::reportKnownFailures(Registration& r) {
  if (failed_.empty()) return;
  std::vector<std::pair<MemberInfo, KnownFailure>> found;
  for (const auto& [key, known] : failed_) {
    const MemberInfo* m = memberOf(r.info, key);
    if (m == nullptr) continue;
    if (known.reporter != self_ && memberOf(r.info, known.reporter) == nullptr) continue;
    found.emplace_back(*m, known);
  }
  for (const auto& [m, known] : found) {
    if (r.reported.count(m.rank) || r.left.count(m.rank)) continue;
    FTCCL_LOG(Info, Health,
              "rank {}: epoch {} lists {} (pid {}), known failed before it: reported again",
              r.info.myRank, r.info.epoch, m.key, m.pid);
    deliver(r,
            FailureReport{m.rank, m.host, m.pid, known.cause, known.afterMs, r.info.myRank, true});
    announce(r, m, known.cause, known.afterMs);
  }
}

std::shared_ptr<const MemberTable> MemberTable::make(std::vector<MemberInfo> members, int nRanks) {
  auto table = std::make_shared<MemberTable>();
  table->nRanks = nRanks < 0 ? static_cast<int>(members.size()) : nRanks;
  table->index.reserve(members.size());
  for (size_t i = 0; i < members.size(); ++i) {
    members[i].rank = static_cast<int>(i);
    table->index.emplace(members[i].key, static_cast<int>(i));
  }
  table->members = std::move(members);
  return table;
}

const MemberInfo* MemberTable::find(const ProcessKey& key) const {
  auto it = index.find(key);
  return it == index.end() ? nullptr : &members[static_cast<size_t>(it->second)];
}

void HealthProtocol::deliver(Registration& r, const FailureReport& reported) {
  FailureReport report = reported;
  int nRanks = r.info.members->nRanks;
  report.spare = report.rank >= nRanks;
  report.epoch = r.info.epoch;
  if (!r.reported.insert(report.rank).second) return;
  if (r.agreement) {
    r.agreement->onFailure((*r.info.members)[report.rank].key);
  }
  std::string who = report.spare ? "spare " + std::to_string(report.rank - nRanks)
                                 : "rank " + std::to_string(report.rank);
  FTCCL_LOG(Error, Health,
            "rank {}: {} (host {}, pid {}) failed: {} {}, {:.1f} ms after its last sign of life",
            r.info.myRank, who, report.host, report.pid,
            report.direct ? "detected here through"
                          : "reported by rank " + std::to_string(report.detectedBy) +
                                ", who detected it through",
            detectionCauseName(report.cause), report.afterMs);
  if (r.info.listener) r.info.listener->onMemberFailed(report);
  if (r.agreement) checkAgreement(r);
  tellIfRanksGone(r);
}

// Tells the communicator once when its agreement has decided.
void HealthProtocol::checkAgreement(Registration& r) {
  if (r.agreementDone || r.info.listener == nullptr) return;
  switch (r.agreement->state()) {
    case Agreement::State::kStable: {
      // Each new epoch is told (a second failure may be agreed on before the
      // application calls ftcclCommRebuild: the newest commit then wins). A commit that
      // only adds spares to the pool changes nothing for the ranks: it is taken in here.
      uint64_t epoch = r.agreement->membership().epoch;
      if (epoch > r.info.epoch && epoch > r.notifiedEpoch) {
        r.notifiedEpoch = epoch;
        const AgreementCommit& commit = r.agreement->lastCommit();
        adoptJoined(r, commit);
        // No failed rank: the ranks are unchanged (Agreement::decide), only the pool.
        if (commit.failedRanks.empty()) {
          r.info.epoch = static_cast<uint32_t>(epoch);
        } else {
          r.info.listener->onRebuilt(r.agreement->lastCommitShared());
        }
      }
      break;
    }
    case Agreement::State::kFailed:
    case Agreement::State::kExpelled:
      r.agreementDone = true;
      r.info.listener->onRecoveryFailed(r.agreement->why());
      break;
    case Agreement::State::kRecovering:
      break;
  }
}

void HealthProtocol::onMessage(const ProcessKey& from, const HealthMessage& m, HealthTime now) {
  if (dropAll_) return;
  lastNow_ = now;
  RecoveryMessage rm;
  const auto* recovery = m.as<HealthRecovery>();
  const bool isRecovery = recovery != nullptr;
  if (isRecovery && !decodeRecoveryMessage(recovery->payload, &rm)) return;
  if (!authentic(m, isRecovery ? &rm : nullptr)) {
    FTCCL_LOG(Debug, Health, "dropped a message of type {} from {}: its key does not fit it",
              static_cast<int>(m.type()), from);
    return;
  }
  if (!fresh(from, m)) return;  // a replayed probe
  inbound_ = &m.auth;
  inboundFrom_ = &from;
  struct Forget {
    HealthProtocol* p;
    ~Forget() { p->inbound_ = nullptr, p->inboundFrom_ = nullptr; }
  } forget{this};
  detector_.heard(from, now);
  switch (m.type()) {
    case HealthType::kHeartbeat: {
      const HealthHeartbeat& heartbeat = *m.as<HealthHeartbeat>();
      tellIfExpelled(from);
      for (const OpProgress& p : heartbeat.progress) {
        onProgress(from, p, /*fromHeartbeat=*/true, now);
      }
      // When we monitor the sender too, our own heartbeats already tell it we are
      // alive: ack only every kAckEvery-th one, to sample the round trip. Otherwise
      // every heartbeat is acked (the ack is the sender's only sign of our life).
      if (watched_.count(from) && heartbeat.seq % kAckEvery != 0) break;
      HealthAck ack;
      ack.seq = heartbeat.seq;
      ack.sentNs = heartbeat.sentNs;
      // Sent now: held since it arrived (at the least; it leaves after `now`).
      ack.heldNs = std::max<int64_t>(0, m.waitedNs);
      send(from, ack);
      break;
    }
    case HealthType::kAck: {
      const HealthAck& ack = *m.as<HealthAck>();
      // From our heartbeat's departure to the ack's arrival, less the peer's hold: the
      // network's share, without either end's wait for its next tick.
      onRoundTrip(from,
                  std::max<int64_t>(0, toNs(now) - m.waitedNs - ack.sentNs - ack.heldNs) / 1e6);
      break;
    }
    case HealthType::kFailed: {
      const HealthFailed& notice = *m.as<HealthFailed>();
      if (!reporterIsMember(from, notice.commKey)) break;
      // Every communicator containing the failed process is revoked, not only notice.commKey.
      for (auto& [id, r] : registrations_) {
        // A notice from an older epoch of this communicator comes from a process that
        // slept through a rebuild (SIGSTOP, a cut link): its suspicions are stale, and
        // the agreement expels it. Other communicators of the same process still learn.
        if (r.info.commKey == notice.commKey && notice.epoch < r.info.epoch) continue;
        bool sameComm = r.info.commKey == notice.commKey && r.info.epoch == notice.epoch;
        const MemberInfo* found = memberOf(r.info, notice.failedKey);
        if (found == nullptr || (sameComm && found->rank != notice.rank)) continue;
        const MemberInfo member = *found;
        const auto cause = static_cast<DetectionCause>(notice.cause);
        rememberFailure(notice.failedKey, cause, notice.afterMs, from);
        deliver(r, FailureReport{member.rank, member.host, member.pid, cause, notice.afterMs,
                                 notice.reporterRank, false});
      }
      syncWatched(now);
      break;
    }
    case HealthType::kLeave: {
      const HealthLeave& leave = *m.as<HealthLeave>();
      for (auto& [id, r] : registrations_) {
        if (r.info.commKey != leave.commKey) continue;
        if (r.info.epoch == leave.epoch) {
          onLeave(r, leave.rank);
          continue;
        }
        // Sent in another epoch: a spare that joined while the ranks were leaving in
        // order took their closing connections for crashes (chaos seed 9088). The
        // sender leaves all the same; its number here comes from its key (none if it is
        // no member of this epoch: expelled, or never one).
        if (const MemberInfo* found = memberOf(r.info, from)) onLeave(r, found->rank);
      }
      syncWatched(now);
      break;
    }
    case HealthType::kRecovery:
      onRecoveryMessage(from, *recovery, m.auth, rm);
      break;
    case HealthType::kProgressQuery:
      answerProgressQuery(from, *m.as<HealthProgressQuery>(), now);
      break;
    case HealthType::kProgress:
      onProgress(from, m.as<HealthProgress>()->progress, false, now);
      break;
    default:
      break;
  }
}

void HealthProtocol::allowJoin(RegistrationId id, std::vector<uint8_t> secret) {
  auto it = registrations_.find(id);
  if (it == registrations_.end()) return;
  keys_.addJoinSecret(it->second.info.commKey, secret);
  it->second.info.joinSecrets.push_back(std::move(secret));
}

void HealthProtocol::sendRecovery(const ProcessKey& to, uint64_t commKey,
                                  const RecoveryMessage& message) {
  send(to, HealthRecovery{commKey, encodeRecoveryMessage(message)}, &message);
}

// What a sponsor seals for its newcomer under the key of its join id: the root key, and
// the epoch before the pool commit with its salt (members that have not adopted the
// commit yet still speak in it: their LEAVE and FAILED notices).
struct SealedForNewcomer {
  crypto::Key root{};
  uint32_t previousEpoch = 0;
  EpochSalt previousSalt{};
};
constexpr std::string_view kNewcomerLabel = "ftccl keys for a newcomer";

static std::vector<uint8_t> sealForNewcomer(const crypto::Key& joinKey,
                                            const SealedForNewcomer& keys) {
  std::vector<uint8_t> plain(keys.root.begin(), keys.root.end());
  const auto* epoch = reinterpret_cast<const uint8_t*>(&keys.previousEpoch);
  plain.insert(plain.end(), epoch, epoch + sizeof(keys.previousEpoch));
  plain.insert(plain.end(), keys.previousSalt.begin(), keys.previousSalt.end());
  return crypto::seal(joinKey, plain, kNewcomerLabel);
}

static bool openForNewcomer(const HealthKeys& keys, uint64_t comm, const JoinAccept& accept,
                            SealedForNewcomer* out) {
  for (const auto& [key, secret] : keys.joinKeys(comm)) {
    std::vector<uint8_t> plain;
    if (crypto::open(HealthKeys::joinKeyBytes(comm, secret), accept.sealedKey.data(),
                     accept.sealedKey.size(), kNewcomerLabel, &plain) &&
        plain.size() == out->root.size() + sizeof(out->previousEpoch) + out->previousSalt.size()) {
      const uint8_t* p = plain.data();
      std::copy(p, p + out->root.size(), out->root.begin());
      std::memcpy(&out->previousEpoch, p + out->root.size(), sizeof(out->previousEpoch));
      std::memcpy(out->previousSalt.data(), p + out->root.size() + sizeof(out->previousEpoch),
                  out->previousSalt.size());
      return true;
    }
  }
  return false;
}

void HealthProtocol::onRecoveryMessage(const ProcessKey& from, const HealthRecovery& frame,
                                       const HealthAuth& auth, const RecoveryMessage& m) {
  const uint64_t commKey = frame.commKey;
  for (auto& [id, r] : registrations_) {
    if (r.info.commKey != commKey) continue;
    if (r.info.joining) {  // a newcomer waits only for its answer
      const auto* accept = std::get_if<JoinAccept>(&m);
      if (accept == nullptr || !r.info.listener) continue;
      SealedForNewcomer sealed;
      if (authenticated_) {
        if (!openForNewcomer(keys_, commKey, *accept, &sealed)) {
          FTCCL_LOG(Warn, Recovery,
                    "join answer from {} without keys sealed for this newcomer: ignored", from);
          continue;
        }
        // Held at once: the members watch this process from the pool commit on, and its
        // acks must not wait until the communicator registers as a spare.
        keys_.setRoot(commKey, sealed.root);
        keys_.addEpoch(commKey, sealed.previousEpoch, sealed.previousSalt);
        keys_.addEpoch(commKey, static_cast<uint32_t>(accept->commit.next.epoch),
                       accept->commit.salt);
      }
      r.info.listener->onJoinAccepted(*accept, sealed.root);
      continue;
    }
    if (!r.agreement) continue;
    if (isNewcomersJoin(m)) {
      // Straight from a newcomer (members forward it without secret).
      acceptJoin(r, from, auth, std::get<JoinRequest>(m));
    } else {
      r.agreement->onMessage(from, m);
    }
    FTCCL_LOG(Debug, Recovery, "rank {}: agreement message {} (epoch {}) from {}: state {}",
              r.info.myRank, wireTypeOf(m), epochOf(m), from,
              static_cast<int>(r.agreement->state()));
    checkAgreement(r);
  }
}

// A newcomer's JOIN, checked against the secrets of the join ids this member handed
// out, goes to the agreement; this member answers the newcomer once the pool commit
// is adopted (adoptJoined).
bool HealthProtocol::acceptJoin(Registration& r, const ProcessKey& from, const HealthAuth& auth,
                                const JoinRequest& m) {
  // Which join id: the one whose key sealed the request (authenticated), else the one
  // the request names (simulator).
  std::vector<uint8_t> secret;
  for (const auto& [key, joinSecret] : keys_.joinKeys(r.info.commKey)) {
    if (authenticated_ ? key == auth.key : joinSecret == m.secret) secret = joinSecret;
  }
  if (!authenticated_ && secret.empty()) {
    for (const auto& s : r.info.joinSecrets) {
      if (s == m.secret) secret = s;
    }
  }
  const auto& secrets = r.info.joinSecrets;
  if (!m.candidate || m.candidate->key != from || secret.empty() ||
      std::find(secrets.begin(), secrets.end(), secret) == secrets.end()) {
    FTCCL_LOG(Warn, Recovery,
              "rank {}: rejected a join request from {}: not a join id of this communicator",
              r.info.myRank, from);
    return false;
  }
  const JoiningSpare& spare = *m.candidate;
  if (r.agreement->state() != Agreement::State::kStable) {
    FTCCL_LOG(Warn, Recovery,
              "rank {}: join request from {} (host {}, pid {}) dropped: a recovery is under way",
              r.info.myRank, from, spare.host, spare.pid);
    return false;
  }
  FTCCL_LOG(Info, Recovery, "rank {}: {} (host {}, pid {}) asks to join the spare pool",
            r.info.myRank, from, spare.host, spare.pid);
  r.sponsored[from] = secret;
  r.agreement->requestJoin(spare);
  return true;
}

// Spares that joined late, named by a commit: the core learns how to reach them, the
// health registration lists (and, for one rank, monitors) each new one, and the member
// that accepted a newcomer sends it the pool commit and the member table.
void HealthProtocol::adoptJoined(Registration& r, const AgreementCommit& commit) {
  int nRanks = r.info.members->nRanks;
  for (const JoiningSpare& spare : commit.joined) {
    if (r.info.listener) r.info.listener->onSpareJoined(spare);
    const bool listed = memberOf(r.info, spare.key) != nullptr;
    if (!listed && std::find(commit.next.spares.begin(), commit.next.spares.end(), spare.key) !=
                       commit.next.spares.end()) {
      int index = r.info.members->size();
      std::vector<MemberInfo> grown = r.info.members->members;  // copy on write
      grown.push_back(MemberInfo{{spare.key, spare.host, spare.pid}, index});
      r.info.members = MemberTable::make(std::move(grown), nRanks);
      if (r.info.myRank >= 0 && r.info.myRank < nRanks && nRanks > 0 &&
          (index - nRanks) % nRanks == r.info.myRank) {
        r.info.monitored.push_back(index);
      }
    }
    auto sponsored = r.sponsored.find(spare.key);
    if (sponsored != r.sponsored.end() && r.info.listener) {
      JoinAccept answer{commit, r.info.listener->joinPackage(), {}};
      HealthRecovery frame;
      frame.commKey = r.info.commKey;
      HealthAuth auth;
      if (authenticated_) {
        // The root key, sealed under the newcomer's join key; the frame, under that key.
        const crypto::Key* root = keys_.root(r.info.commKey);
        const crypto::Key joinKey = HealthKeys::joinKeyBytes(r.info.commKey, sponsored->second);
        SealedForNewcomer sealed;
        sealed.previousEpoch = static_cast<uint32_t>(commit.epoch - 1);
        if (root == nullptr ||
            !keys_.saltOf(r.info.commKey, sealed.previousEpoch, &sealed.previousSalt)) {
          continue;
        }
        sealed.root = *root;
        answer.sealedKey = sealForNewcomer(joinKey, sealed);
        auth.comm = r.info.commKey;
        auth.kind = KeyKind::kJoin;
        auth.key = std::make_shared<const crypto::MacKey>(joinKey);
      }
      const RecoveryMessage accept = std::move(answer);
      frame.payload = encodeRecoveryMessage(accept);
      HealthMessage m = std::move(frame);
      m.auth = std::move(auth);
      r.sponsored.erase(sponsored);
      send(spare.key, m, &accept);
    }
  }
  if (!commit.joined.empty()) syncWatched(lastNow_);
}

// A heartbeat from a process the members went on without: it woke up in an old epoch.
// Its agreement takes EXPELLED for a permanent error (it never forms a communicator of
// its own); it stops sending once its communicator is gone.
void HealthProtocol::tellIfExpelled(const ProcessKey& from) {
  for (auto& [id, r] : registrations_) {
    const auto& former = r.info.formerMembers;
    if (!r.agreement || std::find(former.begin(), former.end(), from) == former.end()) continue;
    // Answered under the heartbeat's key (the one key it surely holds), which must be of
    // this communicator; a heartbeat sealed for another one gets its answer there.
    if (inbound_ != nullptr && inbound_->key && inbound_->comm != r.info.commKey) continue;
    auto told = r.expelledToldAt.find(from);
    if (told != r.expelledToldAt.end() && lastNow_ - told->second < kExpelledEvery) continue;
    r.expelledToldAt[from] = lastNow_;
    r.agreementNet->send(from, AgreementExpelled{r.agreement->membership().epoch});
  }
}

// An orderly leave. A spare that leaves is out of the pool (the agreement must not
// assign it); when every rank has left, waiting spares are told to stop waiting.
void HealthProtocol::onLeave(Registration& r, int index) {
  int nRanks = r.info.members->nRanks;
  if (index < 0 || index >= r.info.members->size()) return;
  if (!r.left.insert(index).second) return;
  if (index >= nRanks && r.agreement) r.agreement->onFailure((*r.info.members)[index].key);
  tellIfRanksGone(r);
}

// Waiting spares stand down once every rank is gone, in order or not, provided some
// left in order (the job is ending; if they all failed, the agreement may still
// activate the spares).
void HealthProtocol::tellIfRanksGone(Registration& r) {
  if (r.left.empty()) return;  // nobody left in order: nothing to tell (and O(1))
  int nRanks = r.info.members->nRanks;
  int left = 0, gone = 0;
  for (int i = 0; i < nRanks; ++i) {
    left += r.left.count(i) ? 1 : 0;
    gone += r.left.count(i) || r.reported.count(i) ? 1 : 0;
  }
  if (left > 0 && gone == nRanks && !r.allRanksLeftTold && r.info.listener) {
    r.allRanksLeftTold = true;
    r.info.listener->onAllRanksLeft();
  }
}

HealthTime HealthProtocol::onTick(HealthTime now) {
  lastNow_ = now;
  if (now >= nextProbe_) {
    nextProbe_ = now + probeInterval_;
    HealthHeartbeat hb;
    hb.seq = ++heartbeatSeq_;
    hb.sentNs = toNs(now);
    // Each peer hears the progress of the communicators it is in (at most
    // kMaxProgressEntries of them), read once per tick.
    std::vector<std::pair<const Registration*, OpProgress>> progress;
    for (const auto& [id, r] : registrations_) {
      if (r.info.progress) progress.emplace_back(&r, r.info.progress->read(toNs(now)));
    }
    for (const ProcessKey& key : watched_) {
      hb.progress.clear();
      for (const auto& [r, p] : progress) {
        if (hb.progress.size() < kMaxProgressEntries && memberOf(r->info, key) != nullptr) {
          hb.progress.push_back(p);
        }
      }
      send(key, hb);
    }
    for (auto& [id, r] : registrations_) checkLateness(r, now);
  }
  // A dropped (cut-off) process hears nobody, so its own detector fires too: it learns
  // that it is alone and fails its operations instead of hanging.
  std::vector<Suspicion> found = detector_.tick(now);
  for (const Suspicion& s : found) suspect(s);
  if (!found.empty()) syncWatched(now);
  // An agreement with no decision for a failure timeout: nudge it (agreement.h).
  for (auto& [id, r] : registrations_) {
    if (!r.agreement || r.agreementDone) continue;
    if (!r.agreement->waiting()) {
      r.recoveringSince = HealthTime{};
      continue;
    }
    if (r.recoveringSince == HealthTime{}) r.recoveringSince = now;
    if (now - r.recoveringSince >= std::chrono::milliseconds(r.info.failureTimeoutMs)) {
      r.recoveringSince = now;
      r.agreement->onStalled();
      checkAgreement(r);
    }
  }
  return nextProbe_;
}

// A link whose round trips rose well above its best is logged once, and again when it
// is back to normal: the first sign of a slow or congested link, before any timeout.
void HealthProtocol::onRoundTrip(const ProcessKey& from, double ms) {
  LinkQuality& link = roundTrips_[from];
  LinkQuality::Change change = link.record(ms);
  compareWithOtherLinks(from, link);
  if (change == LinkQuality::Change::kNone) return;
  std::string who = describeMember(from);
  if (change == LinkQuality::Change::kDegraded) {
    FTCCL_LOG(Warn, Health,
              "link to {} degraded: round trips of {:.2f} ms and more in the last {}, "
              "{:.2f} ms at best (a slower or congested link)",
              who, link.levelMs(), LinkQuality::kWindow, link.baselineMs());
  } else {
    FTCCL_LOG(Info, Health, "link to {} recovered: round trips of at most {:.2f} ms in the last {}",
              who, link.highestMs(), LinkQuality::kWindow);
  }
}

// A link far slower than the median of this process's other watched links is flagged
// too: the rule above never sees a link that was slow from its first probe.
void HealthProtocol::compareWithOtherLinks(const ProcessKey& from, LinkQuality& link) {
  std::vector<double> others;
  for (const auto& [key, q] : roundTrips_) {
    if (key != from && q.full() && watched_.count(key)) others.push_back(q.levelMs());
  }
  if (others.empty()) return;
  std::nth_element(others.begin(), others.begin() + others.size() / 2, others.end());
  double median = others[others.size() / 2];
  LinkQuality::Change change = link.compareWithOthers(median);
  if (change == LinkQuality::Change::kDegraded) {
    FTCCL_LOG(Warn, Health,
              "link to {} far slower than this process's other links: round trips of {:.2f} "
              "ms and more in the last {}, the others' {:.2f} ms (a slow or congested link)",
              describeMember(from), link.levelMs(), LinkQuality::kWindow, median);
  } else if (change == LinkQuality::Change::kRecovered) {
    FTCCL_LOG(Info, Health, "link to {} is as fast as the others again ({:.2f} ms at most)",
              describeMember(from), link.highestMs());
  }
}

std::string HealthProtocol::describeMember(const ProcessKey& key) const {
  std::string who = "process " + key;
  for (const auto& [id, r] : registrations_) {
    if (const MemberInfo* m = memberOf(r.info, key)) {
      who = "rank " + std::to_string(m->rank) + " (host " + m->host + ", pid " +
            std::to_string(m->pid) + ")";
    }
  }
  return who;
}

// A member's progress, from its heartbeat or its answer to our query: kept for the hang
// diagnosis, and a heartbeat's sum of waits feeds the straggler detector.
void HealthProtocol::onProgress(const ProcessKey& from, const OpProgress& p, bool fromHeartbeat,
                                HealthTime now) {
  for (auto& [id, r] : registrations_) {
    if (!r.info.progress || r.info.commKey != p.commKey) continue;
    const MemberInfo* m = memberOf(r.info, from);
    if (m == nullptr) continue;
    r.progressOf[m->rank] = Registration::Heard{p, now};  // another epoch: a diagnosis
    if (fromHeartbeat && r.lateness && p.epoch == r.info.epoch) {
      r.lateness->sample(m->rank, p.done, p.waitUs);
    }
  }
}

// Answered by the health thread, so a rank stuck in its application still says where
// it is.
void HealthProtocol::answerProgressQuery(const ProcessKey& from, const HealthProgressQuery& query,
                                         HealthTime now) {
  for (const auto& [id, r] : registrations_) {
    if (!r.info.progress || r.info.commKey != query.commKey) continue;
    send(from, HealthProgress{r.info.progress->read(toNs(now))});
    return;
  }
}

void HealthProtocol::requestProgress(RegistrationId id) {
  auto it = registrations_.find(id);
  if (it == registrations_.end()) return;
  const Registration& r = it->second;
  const HealthMessage query = HealthProgressQuery{r.info.commKey, r.info.epoch};
  for (const MemberInfo& m : r.info.members->members) {
    if (m.key != self_ && !r.reported.count(m.rank) && !r.left.count(m.rank)) send(m.key, query);
  }
}

std::vector<MemberProgress> HealthProtocol::progressOf(RegistrationId id, HealthTime now) const {
  std::vector<MemberProgress> out;
  auto it = registrations_.find(id);
  if (it == registrations_.end()) return out;
  const Registration& r = it->second;
  for (const MemberInfo& m : r.info.members->members) {
    MemberProgress mp;
    mp.member = m.rank;
    mp.gone = r.reported.count(m.rank) != 0 || r.left.count(m.rank) != 0;
    auto heard = r.progressOf.find(m.rank);
    if (m.rank == r.info.myRank && r.info.progress) {
      mp.known = true;
      mp.progress = r.info.progress->read(toNs(now));
    } else if (heard != r.progressOf.end()) {
      mp.known = true;
      mp.progress = heard->second.progress;
      mp.ageMs = std::chrono::duration<double, std::milli>(now - heard->second.at).count();
    }
    out.push_back(mp);
  }
  return out;
}

HealthProtocol::AgreementView HealthProtocol::agreementView(RegistrationId id) const {
  AgreementView view;
  auto it = registrations_.find(id);
  if (it == registrations_.end() || !it->second.agreement) {
    view.description = "this process takes no part in an agreement";
    return view;
  }
  const Agreement& a = *it->second.agreement;
  view.waiting = a.waiting();
  view.mark = a.progressMark();
  view.description = a.describeWait();
  return view;
}

std::vector<PeerHealth> HealthProtocol::peerHealth(RegistrationId id) const {
  std::vector<PeerHealth> out;
  auto it = registrations_.find(id);
  if (it == registrations_.end()) return out;
  const Registration& r = it->second;
  for (int member : r.info.monitored) {
    const MemberInfo& m = (*r.info.members)[member];
    PeerHealth h;
    h.member = member;
    auto link = roundTrips_.find(m.key);
    if (link != roundTrips_.end()) {
      h.roundTrips = link->second.stats();
      h.lastMs = link->second.lastMs();
      h.baselineMs = link->second.baselineMs();
      h.levelMs = link->second.levelMs();
      h.degraded = link->second.degraded() || link->second.slowerThanOthers();
    }
    if (r.lateness) h.lateness = r.lateness->view(member);
    out.push_back(h);
  }
  return out;
}

// Closes the straggler detector's due windows; a peer flagged (or cleared) is logged once.
void HealthProtocol::checkLateness(Registration& r, HealthTime now) {
  if (!r.lateness) return;
  const ProgressBoard& board = *r.info.progress;
  auto changes = r.lateness->evaluate(
      now, [&](uint64_t done, uint64_t* waitUs) { return board.waitAt(done, waitUs); });
  for (const LatenessTracker::Change& c : changes) {
    if (c.peer < 0 || c.peer >= r.info.members->size()) continue;
    std::string who = describeMember((*r.info.members)[c.peer].key);
    if (c.late) {
      FTCCL_LOG(Warn, Health,
                "rank {}: straggler: {} keeps arriving late to collectives: {:.1f} ms after "
                "this rank on average over the last {} ops, while this rank waited {:.1f} ms "
                "per op (slow, not failed)",
                r.info.myRank, who, c.lateMs, c.ops, c.waitMs);
    } else {
      FTCCL_LOG(Info, Health, "rank {}: {} arrives on time again ({:.1f} ms late on average)",
                r.info.myRank, who, c.lateMs);
    }
  }
}

double HealthProtocol::lastRoundTripMs(const ProcessKey& peer) const {
  auto it = roundTrips_.find(peer);
  return it == roundTrips_.end() ? 0 : it->second.lastMs();
}

bool HealthProtocol::linkDegraded(const ProcessKey& peer) const {
  auto it = roundTrips_.find(peer);
  return it != roundTrips_.end() && it->second.degraded();
}

double HealthProtocol::maxRoundTripMs(const ProcessKey& peer) const {
  auto it = roundTrips_.find(peer);
  return it == roundTrips_.end() ? 0 : it->second.maxMs();
}

}  // namespace ftccl
