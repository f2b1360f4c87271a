// HealthProtocol (health_protocol.h): registrations, the entry points that events come
// in by (messages, timer ticks) and the set of processes this one watches. The rest of
// the class is defined by topic:
//   health_protocol_auth.cc       which key each message goes under, which ones are
//                                 taken (authentic, fresh)
//   health_protocol_failures.cc   suspicions, FAILED notices, leaves, expelled processes
//   health_protocol_recovery.cc   the agreement's hand-off, and newcomers joining the pool
//   health_protocol_diagnosis.cc  round trips, stragglers, progress: what the stats show
#include "health/health_protocol.h"

#include <algorithm>

#include "recovery/agreement.h"
#include "recovery/epoch_store.h"
#include "util/log.h"

namespace ftccl {
namespace {

// Mutual monitors ack one heartbeat in this many (round-trip samples every 100 ms).
constexpr uint64_t kAckEvery = 10;

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
  const uint64_t commKey = it->second.info.commKey;
  keys_.release(commKey);
  registrations_.erase(it);
  pruneLearnt(commKey);
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
    } else {
      r.agreement->onTick();
    }
    checkAgreement(r);
  }
  return nextProbe_;
}

}  // namespace ftccl
