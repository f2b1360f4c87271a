// HealthProtocol, diagnosis: round trips and degraded links, stragglers, members'
// progress (hang diagnosis) and where the agreement stands, for logs and the stats.
#include <algorithm>
#include <string>
#include <vector>

#include "health/health_protocol.h"
#include "recovery/agreement.h"
#include "util/log.h"

namespace ftccl {

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
