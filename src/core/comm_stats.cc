// The communicator's observability: what its ops and links did (stats, the stats file)
// and, when an op times out, where every rank is (the hang diagnosis).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>

#include "core/communicator.h"
#include "reduce/reduce.h"
#include "util/crypto.h"
#include "util/log.h"

namespace ftccl {
namespace {

using Clock = std::chrono::steady_clock;

int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

std::string localHostName() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return host;
}

}  // namespace

Status Communicator::openStats() {
  if (config_.statsFile.empty() || statsFile_) return Status::ok();
  FTCCL_CHECK(StatsFile::acquire(config_.statsFile, config_.statsIntervalMs, &statsFile_));
  statsSource_ = statsFile_->add([this] { return stats(); });
  return Status::ok();
}

void Communicator::closeStats() {
  if (!statsFile_) return;
  statsFile_->remove(statsSource_);
  statsFile_.reset();
}

// nccl-tests' sizes: AllGather counts what it gathers, ReduceScatter what it scatters.
// A group's time is shared among its ops by their bytes.
void Communicator::recordStats(const std::vector<OpRequest>& batch, uint64_t elapsedNs) {
  const int nranks = epochs_.nranks();
  uint64_t total = 0;
  size_t counted = 0;
  auto bytesOf = [&](const OpRequest& op) {
    uint64_t bytes = op.args.count * dataTypeSize(op.args.type);
    if (op.kind == OpKind::kAllGather || op.kind == OpKind::kReduceScatter) bytes *= nranks;
    return bytes;
  };
  if (batch.size() == 1) {  // almost every op: all the time is its own
    const OpRequest& op = batch[0];
    if (op.internal) return;
    const int kind = static_cast<int>(op.kind);
    const uint64_t bytes = bytesOf(op);
    counters_.record(kind, bytes,
                     static_cast<uint64_t>(static_cast<double>(bytes) * busFactor(kind, nranks)),
                     elapsedNs);
    return;
  }
  for (const OpRequest& op : batch) {
    if (op.internal) continue;
    total += bytesOf(op);
    ++counted;
  }
  for (const OpRequest& op : batch) {
    if (op.internal) continue;
    int kind = static_cast<int>(op.kind);
    uint64_t bytes = bytesOf(op);
    double share = total ? static_cast<double>(bytes) / static_cast<double>(total)
                         : 1.0 / static_cast<double>(counted);
    counters_.record(kind, bytes,
                     static_cast<uint64_t>(static_cast<double>(bytes) * busFactor(kind, nranks)),
                     static_cast<uint64_t>(static_cast<double>(elapsedNs) * share));
  }
}

CommStats Communicator::stats() {
  CommStats s;
  s.unixTime =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  s.host = localHostName();
  s.pid = getpid();
  for (int k = 0; k < kStatKinds; ++k) s.kinds[k] = counters_.read(k);
  s.progress = board_->read(nowNs());
  std::vector<std::pair<std::string, int>> members;  // health's member index -> host, pid
  HealthService::RegistrationId registration = 0;    // of the same epoch as `members`
  {
    std::shared_ptr<const EpochView> view = epochs_.current();
    std::lock_guard<std::mutex> lock(transportMutex_);  // a worker switch may replace it
    s.commId = crypto::oneWayId(commKey_);
    s.epoch = view->epoch;
    s.rank = view->rank;
    s.nranks = view->nranks();
    const std::vector<PeerInfo>& peers = view->peers;
    for (int w : view->worldOf) members.emplace_back(peers[w].host, peers[w].pid);
    for (int w : view->spares) members.emplace_back(peers[w].host, peers[w].pid);
    registration = healthId_;
    std::vector<int> rankOf(peers.size(), -1);
    for (size_t r = 0; r < view->worldOf.size(); ++r)
      rankOf[view->worldOf[r]] = static_cast<int>(r);
    for (size_t w = 0; transport_ && w < transport_->processCount() && w < peers.size(); ++w) {
      const LinkCounters& c = transport_->counters(w);
      PeerStats p;
      p.sentBytes = c.send.bytes.load(std::memory_order_relaxed);
      p.recvBytes = c.recv.bytes.load(std::memory_order_relaxed);
      if (p.sentBytes == 0 && p.recvBytes == 0) continue;
      p.sendTimedBytes = c.send.timedBytes.load(std::memory_order_relaxed);
      p.recvTimedBytes = c.recv.timedBytes.load(std::memory_order_relaxed);
      p.sendBusyNs = c.send.busyNs.load(std::memory_order_relaxed);
      p.recvBusyNs = c.recv.busyNs.load(std::memory_order_relaxed);
      p.rank = rankOf[w];
      p.host = peers[w].host;
      p.pid = peers[w].pid;
      s.peers.push_back(std::move(p));
    }
  }
  // Outside the lock: health's answer needs no lock of ours.
  for (const PeerHealth& h : health_->peerHealth(registration)) {
    if (h.member < 0 || h.member >= static_cast<int>(members.size())) continue;
    const auto& [host, pid] = members[h.member];
    PeerStats* p = nullptr;
    for (PeerStats& q : s.peers) {
      if (q.pid == pid && q.host == host) p = &q;
    }
    if (p == nullptr) {
      s.peers.emplace_back();
      p = &s.peers.back();
      p->rank = h.member < s.nranks ? h.member : -1;
      p->host = host;
      p->pid = pid;
    }
    p->rttSamples = h.roundTrips.samples();
    p->rttMinMs = h.roundTrips.minMs();
    p->rttAvgMs = h.roundTrips.avgMs();
    p->rttP99Ms = h.roundTrips.percentileMs(0.99);
    p->rttLastMs = h.lastMs;
    p->rttBaselineMs = h.baselineMs;
    p->rttLevelMs = h.levelMs;
    p->linkDegraded = h.degraded;
    p->lateKnown = h.lateness.known;
    p->lateMs = h.lateness.lateMs;
    p->lateOps = h.lateness.ops;
    p->straggler = h.lateness.flagged;
  }
  return s;
}

namespace {

std::string describeProgress(const OpProgress& p) {
  std::string since = std::to_string(p.stateMs) + " ms";
  if (p.inOp && p.started == p.done) return "in Send/Recv for " + since;
  if (p.inOp) {
    return "inside op " + std::to_string(p.started - 1) + " (" + statKindName(p.kind) +
           ") at step " + std::to_string(p.step) + " for " + since;
  }
  if (p.started > p.done)
    return "gave up on op " + std::to_string(p.started - 1) + " " + since + " ago";
  if (p.done == 0) return "no collective yet, idle for " + since;
  return "finished op " + std::to_string(p.done - 1) + ", idle for " + since;
}

std::string joinList(const std::vector<std::string>& items) {
  if (items.empty()) return "none";
  std::string text;
  for (size_t i = 0; i < items.size(); ++i) text += (i ? ", " : "") + items[i];
  return text;
}

}  // namespace

// Asks every member's health thread where it is (it answers even while its application
// is stuck) and waits a little for the answers: the ranks that have not reached the
// stuck op are the ones to look at; the ranks inside it only wait for them.
std::string Communicator::diagnoseHang() {
  OpProgress mine = board_->read(nowNs());
  if (!mine.inOp || mine.started == mine.done) return "";  // not a collective
  const int rank = epochs_.rank(), nranks = epochs_.nranks();
  const uint64_t epoch = epochs_.epoch();
  uint64_t stuck = mine.started - 1;
  HealthService::RegistrationId id = healthId_;
  auto asked = Clock::now();
  health_->requestProgress(id);
  // Answers take a connection each way and two health-thread wakeups: on busy cores,
  // hundreds of ms. A member that never answers costs the whole wait, once.
  auto limit = std::chrono::milliseconds(std::max(1000, std::min(config_.failureTimeoutMs, 5000)));
  auto waitedMs = [&] {
    return std::chrono::duration<double, std::milli>(Clock::now() - asked).count();
  };
  auto answered = [&](const MemberProgress& m) {
    return m.member == rank || m.gone || m.member >= nranks || (m.known && m.ageMs <= waitedMs());
  };
  std::vector<MemberProgress> table;
  for (;;) {
    table = health_->progressOf(id);
    bool all = std::all_of(table.begin(), table.end(), answered);
    if (all || revocation_.aborted() || Clock::now() - asked >= limit) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::vector<std::string> notReached, inside, past, silent, gone;
  for (const MemberProgress& m : table) {
    if (m.member >= nranks) continue;  // spares run no ops
    std::string who = "rank " + std::to_string(m.member) + (m.member == rank ? " (this rank)" : "");
    const OpProgress& p = m.progress;
    if (m.gone) {
      gone.push_back(who);
    } else if (m.member != rank && (!m.known || m.ageMs > waitedMs() + 1000)) {
      silent.push_back(who);
    } else if (p.epoch != static_cast<uint32_t>(epoch)) {
      notReached.push_back(who + " (in epoch " + std::to_string(p.epoch) + ")");
    } else if (p.started <= stuck) {
      notReached.push_back(who + " (" + describeProgress(p) + ")");
    } else if (p.done > stuck) {
      past.push_back(who);
    } else {
      inside.push_back(who + " (step " + std::to_string(p.step) + (p.inOp ? ")" : ", gave up)"));
    }
  }
  std::string text = "Op " + std::to_string(stuck) + ": not reached by " + joinList(notReached) +
                     "; inside it: " + joinList(inside);
  if (!past.empty()) text += "; finished it: " + joinList(past);
  if (!gone.empty()) text += "; failed or left: " + joinList(gone);
  if (!silent.empty()) text += "; no answer from " + joinList(silent);
  return text;
}

// Which transfers a revoke cut short, per peer: a fault that strikes in the middle of a
// rendezvous is the hard case for the data path, and the chaos campaign counts them.
void Communicator::logMidTransfer() {
  std::shared_ptr<const EpochView> view = epochs_.current();
  for (const OutstandingTransfers& t : transport_->outstanding()) {
    if (t.world < 0 || t.world >= static_cast<int>(view->peers.size())) continue;
    FTCCL_LOG(Info, Net,
              "mid-transfer: rank {} had {} transfer(s) of {} bytes outstanding with rank {} "
              "(pid {}) at revoke; largest {} B, {} at or above UCX's rendezvous threshold "
              "({} B)",
              view->rank, t.count, t.bytes, view->rankOfWorld(t.world), view->peers[t.world].pid,
              t.largest, t.rendezvous, t.rendezvousThreshold);
  }
}

}  // namespace ftccl
