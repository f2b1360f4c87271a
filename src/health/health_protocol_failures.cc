// HealthProtocol, failures: a suspicion of this process's detector, the FAILED notices
// that spread it, orderly leaves, and processes that slept through a rebuild.
#include <algorithm>
#include <string>

#include "health/health_protocol.h"
#include "recovery/agreement.h"
#include "util/log.h"

namespace ftccl {
namespace {

// A former member that still sends heartbeats is told EXPELLED at most this often.
constexpr auto kExpelledEvery = std::chrono::milliseconds(100);

}  // namespace

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

// Tells every other member of the registration's epoch that `failed` failed. Where an
// agreement runs, only of a spare (its loss starts no round; spares are few): a rank's
// news climbs the relay tree and the coordinator's round reaches every member in O(log
// N) hops (agreement.h), which health hears of as of a notice (learntFailure). A notice
// from each detector to each member cost a rack of 256 processes 25.6M notices at
// 100,000 ranks. (Chaos seed 66's hang, once blamed on this, was a spin that never
// yielded to a busy neighbour: b6ef6d0.)
void HealthProtocol::announce(Registration& r, const MemberInfo& failed, DetectionCause cause,
                              double afterMs) {
  if (r.agreement && failed.rank < r.info.members->nRanks) return;
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

// Told by a communicator's agreement: its registrations learn it as of a FAILED notice.
// Only they: an agreement also evicts members silent towards its coordinator, alive for
// all anyone else knows, and a communicator without one must not be revoked for that.
void HealthProtocol::learntFailure(uint64_t commKey, const ProcessKey& failed) {
  if (failed == self_) return;
  LearntOfComm& known = learnt_[commKey];
  bool listed = false;
  for (auto& [id, r] : registrations_) {
    if (r.info.commKey != commKey) continue;
    const MemberInfo* found = memberOf(r.info, failed);
    if (found == nullptr) continue;
    rememberLearnt(known, r.info.members, found->rank);
    listed = true;
    if (r.agreementDone) continue;
    const MemberInfo member = *found;  // deliver() may replace the table
    deliver(r, FailureReport{member.rank, member.host, member.pid, DetectionCause::kNotice, 0, -1,
                             false});
  }
  // A newcomer named failed before its table reached health: kept by name until one does.
  // Once each: a name repeated by later epochs' agreements must not grow the list.
  if (!listed &&
      std::find(known.unlisted.begin(), known.unlisted.end(), failed) == known.unlisted.end()) {
    known.unlisted.push_back(failed);
  }
}

void HealthProtocol::learntFailures(uint64_t commKey, const std::vector<ProcessKey>& failed) {
  if (failed.empty()) return;
  for (const ProcessKey& one : failed) learntFailure(commKey, one);
  syncWatched(lastNow_);
}

void HealthProtocol::rememberFailure(const ProcessKey& failed, DetectionCause cause, double afterMs,
                                     const ProcessKey& reporter) {
  if (failed == self_) return;
  failed_.emplace(failed, KnownFailure{cause, afterMs, reporter});
}

void HealthProtocol::rememberLearnt(LearntOfComm& known,
                                    const std::shared_ptr<const MemberTable>& table, int index) {
  for (LearntFailures& one : known.byTable) {
    if (one.table == table) {
      one.indices.insert(index);
      return;
    }
  }
  known.byTable.push_back(LearntFailures{table, {}});
  known.byTable.back().indices.insert(index);
}

void HealthProtocol::pruneLearnt(uint64_t commKey) {
  auto it = learnt_.find(commKey);
  if (it == learnt_.end()) return;
  std::vector<const MemberTable*> held;
  for (const auto& [id, r] : registrations_) {
    if (r.info.commKey == commKey) held.push_back(r.info.members.get());
  }
  if (held.empty()) {
    learnt_.erase(it);
    return;
  }
  std::vector<LearntFailures>& byTable = it->second.byTable;
  byTable.erase(std::remove_if(byTable.begin(), byTable.end(),
                               [&](const LearntFailures& one) {
                                 return std::find(held.begin(), held.end(), one.table.get()) ==
                                        held.end();
                               }),
                byTable.end());
}

// A new epoch may list a process this one already knows failed: the commit was decided
// before the news reached the coordinator, and the notices of the old epoch are not
// heard in the new one (chaos seed 7975: a rank waited on the dead member for good).
// Reported again here, in the new epoch, it starts the next round at once.
void HealthProtocol::reportKnownFailures(Registration& r) {
  std::vector<std::pair<MemberInfo, KnownFailure>> found;
  for (const auto& [key, known] : failed_) {
    const MemberInfo* m = memberOf(r.info, key);
    if (m == nullptr) continue;
    if (known.reporter != self_ && memberOf(r.info, known.reporter) == nullptr) continue;
    found.emplace_back(*m, known);
  }
  auto learnt = learnt_.find(r.info.commKey);
  if (learnt != learnt_.end() && r.info.members) {
    // Carried over to this epoch's table (older tables stay while a registration holds
    // them: pruneLearnt).
    LearntOfComm& known = learnt->second;
    RunSet listed;
    auto carry = [&](const ProcessKey& key) {
      const MemberInfo* m = memberOf(r.info, key);
      if (m == nullptr) return false;
      if (listed.insert(m->rank)) {
        found.emplace_back(*m, KnownFailure{DetectionCause::kNotice, 0, self_});
      }
      return true;
    };
    std::vector<ProcessKey> keys;
    for (const LearntFailures& one : known.byTable) {
      one.indices.forEach([&](int i) {
        if (i < one.table->size()) keys.push_back((*one.table)[i].key);
      });
    }
    for (const ProcessKey& key : keys) carry(key);
    known.unlisted.erase(std::remove_if(known.unlisted.begin(), known.unlisted.end(), carry),
                         known.unlisted.end());
    listed.forEach([&](int i) { rememberLearnt(known, r.info.members, i); });
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

void HealthProtocol::deliver(Registration& r, const FailureReport& reported) {
  FailureReport report = reported;
  int nRanks = r.info.members->nRanks;
  report.spare = report.rank >= nRanks;
  report.epoch = r.info.epoch;
  if (!r.reported.insert(report.rank)) return;
  if (r.agreement) {
    r.agreement->onFailure((*r.info.members)[report.rank].key, report.direct);
  }
  std::string who = report.spare ? "spare " + std::to_string(report.rank - nRanks)
                                 : "rank " + std::to_string(report.rank);
  if (report.detectedBy < 0) {
    FTCCL_LOG(Error, Health, "rank {}: {} (host {}, pid {}) failed: learnt from the agreement",
              r.info.myRank, who, report.host, report.pid);
  } else {
    FTCCL_LOG(Error, Health,
              "rank {}: {} (host {}, pid {}) failed: {} {}, {:.1f} ms after its last sign of life",
              r.info.myRank, who, report.host, report.pid,
              report.direct ? "detected here through"
                            : "reported by rank " + std::to_string(report.detectedBy) +
                                  ", who detected it through",
              detectionCauseName(report.cause), report.afterMs);
  }
  if (r.info.listener) r.info.listener->onMemberFailed(report);
  if (r.agreement) checkAgreement(r);
  tellIfRanksGone(r);
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
  if (!r.left.insert(index)) return;
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

}  // namespace ftccl
