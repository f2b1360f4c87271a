// The communicator's side of fault tolerance: what health tells it (failures, the
// agreement's commits, newcomers), and entering the next epoch (ftcclCommRebuild,
// ftcclCommStandby).
#include <algorithm>
#include <cstdio>

#include "core/communicator.h"
#include "health/epoch_wiring.h"
#include "transports/tag_layout.h"
#include "util/log.h"

namespace ftccl {
namespace {

using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::unordered_map<ProcessKey, size_t> worldIndexByKey(const std::vector<PeerInfo>& peers) {
  std::unordered_map<ProcessKey, size_t> index;
  index.reserve(peers.size());
  for (size_t w = 0; w < peers.size(); ++w) index.emplace(peers[w].key, w);
  return index;
}

}  // namespace

// Every member (ranks, then spares) is listed so that FAILED notices reach them all and
// a failed process is named with its host and pid. A rank probes its ring neighbours
// (and node leaders) and the spares dealt to it; spare j and rank j % nranks probe each
// other, so a spare that dies leaves the pool and a spare learns when its rank dies.
// The health wiring of this epoch (health/epoch_wiring.h, the simulator's too): whom
// this process probes, and which known processes are former members. O(N).
void Communicator::registerHealth(const EpochView& view) {
  auto membership = std::make_shared<Membership>();
  membership->epoch = view.epoch;
  for (int w : view.worldOf) membership->ranks.push_back(view.peers[w].key);
  for (int w : view.spares) membership->spares.push_back(view.peers[w].key);
  std::unordered_map<ProcessKey, size_t> worldByKey = worldIndexByKey(view.peers);
  std::vector<ProcessKey> known;
  known.reserve(view.peers.size());
  for (const PeerInfo& p : view.peers) known.push_back(p.key);
  EpochTable table = buildEpochTable(
      std::move(membership),
      [&](const ProcessKey& key) {
        const PeerInfo& p = view.peers[worldByKey.at(key)];
        return ProcessPlace{p.host, p.pid, p.node};
      },
      known);
  HealthPolicy policy;
  policy.probeIntervalMs = config_.probeIntervalMs;
  policy.failureTimeoutMs = config_.failureTimeoutMs;
  policy.shrinkWhenNoSpares = config_.shrinkWhenNoSpares != 0;
  policy.stragglerMinLateMs = config_.stragglerMs;
  HealthRegistration reg =
      registrationFor(table, view.self().key, commKey_, policy, view.enteredBy, this);
  if (view.rank >= 0) reg.progress = board_;  // a spare runs no ops
  reg.epochSalt = view.salt;                  // a commit's, or the join answer's (a copy of one)
  reg.joinSecrets = inbox_.joinSecrets();
  reg.authRoot = authRoot_;
  healthId_ = health_->add(std::move(reg));
}

void Communicator::onRebuilt(const std::shared_ptr<const AgreementCommit>& told) {
  const AgreementCommit& commit = *told;
  // Told twice (the old registration still hears while the new one is added, also
  // while this very commit is being entered) or entered already: nothing to do, and
  // no revoke of the epoch it made. Calls come from the one health thread.
  std::shared_ptr<const EpochView> view = epochs_.current();
  if (!inbox_.tellCommit(commit, view->epoch)) return;
  // A new epoch ends the old one even if this rank heard of no failure first (the
  // agreement can outrun the FAILED notice): its ops must not wait on the lost.
  if (view->rank < 0) return;
  std::string lost;
  for (int r : commit.failedRanks) {
    if (r < 0 || r >= view->nranks()) continue;
    const PeerInfo& p = view->ofRank(r);
    lost += (lost.empty() ? "" : "; ") + ("rank " + std::to_string(r) + " (host " + p.host +
                                          ", pid " + std::to_string(p.pid) + ")");
  }
  revoke(remoteError(lost + " failed: learnt from the members' agreement on epoch " +
                     std::to_string(commit.next.epoch) + ", before its FAILED notice"),
         commit.next.epoch - 1);
}

void Communicator::onAllRanksLeft() { inbox_.tellAllRanksLeft(); }

void Communicator::onRecoveryFailed(const std::string& why) {
  if (epochs_.rank() >= 0) revoke(remoteError(why));  // permanent: ops in flight fail now
  inbox_.tellFailed(why);
}

void Communicator::onMemberFailed(const FailureReport& report) {
  // A lost spare only leaves the pool; a waiting spare has no op to fail (its standby
  // follows the agreement instead).
  if (report.spare || epochs_.rank() < 0) return;
  // The registration of the epoch being left hears until the next one is added: its
  // news is not this epoch's (the commit excluded that process already, or the new
  // registration reports it again).
  if (report.epoch < epochs_.epoch()) return;
  // Learnt from the agreement (detectedBy -1): some member's detector saw it, or the
  // coordinator gave up on its silence; no time since its last sign of life is known here.
  std::string how =
      report.direct
          ? "detected by this rank through " + std::string(detectionCauseName(report.cause))
      : report.detectedBy < 0 ? std::string("learnt from the recovery agreement")
                              : "reported by rank " + std::to_string(report.detectedBy) +
                                    ", who detected it through " + detectionCauseName(report.cause);
  char after[64] = "";
  if (report.detectedBy >= 0 || report.direct) {
    std::snprintf(after, sizeof(after), ", %.1f ms after its last sign of life", report.afterMs);
  }
  revoke(remoteError("rank " + std::to_string(report.rank) + " (host " + report.host + ", pid " +
                     std::to_string(report.pid) + ") failed: " + how + after),
         report.epoch);
}

void Communicator::onSpareJoined(const JoiningSpare& spare) {
  PeerInfo info;
  if (!decodePeerInfo(spare.peerInfo, &info).isOk()) return;
  inbox_.addJoined(std::move(info), epochs_.current()->peers);
}

std::vector<uint8_t> Communicator::joinPackage() {
  std::vector<PeerInfo> all = epochs_.current()->peers;
  std::vector<PeerInfo> joined = inbox_.joined();
  all.insert(all.end(), joined.begin(), joined.end());
  return encodeJoinPackage(commKey_, config_.pipeline, all);
}

void Communicator::onJoinAccepted(const JoinAccept& accept, const crypto::Key& rootKey) {
  inbox_.tellJoinAccepted(accept, rootKey);
}

void Communicator::leaveHealth(bool orderly) {
  closeStats();  // its last line still has the health thread's view
  // After a failure a peer may be stopped and never read: do not wait for it long.
  constexpr int kFlushWaitMs = 500, kFlushWaitAfterFailureMs = 20;
  bool revoked = revocation_.revoked();
  if (orderly && health_ && healthId_) {
    // Peers log "stopped watching" for this process too; this line is its own leave
    // (the chaos classifier dates departures by it).
    FTCCL_LOG(Info, Health, "rank {}: leaving in order (ftcclCommDestroy), epoch {}",
              epochs_.rank(), epochs_.epoch());
  }
  if (health_ && healthId_) {
    health_->remove(healthId_, orderly, revoked ? kFlushWaitAfterFailureMs : kFlushWaitMs);
  }
  healthId_ = 0;
  // A revoked communicator may have dead peers: do not wait for them on close.
  if (transport_ && (revoked || revocation_.aborted())) transport_->setForceClose();
}

// Waits for the agreement, then enters the new epoch.
Status Communicator::rebuild(ftcclRebuildInfo_t* info) {
  if (epochs_.rank() < 0) {
    return invalidUsage("this process is a hot spare: it calls ftcclCommStandby");
  }
  if (!revocation_.revoked()) {
    return invalidUsage("nothing to rebuild: the communicator is not revoked");
  }
  waitForIssuedOps();  // queued ops of the old epoch fail at once
  auto start = Clock::now();
  AgreementCommit commit;
  Status decided = inbox_.awaitDecision(
      "ftcclCommRebuild", /*forever=*/false, config_.failureTimeoutMs,
      [&] { return revocation_.aborted(); }, [&] { return health_->agreementView(healthId_); },
      &commit);
  if (decided.code() == ftcclInProgress) {
    return remoteError("cannot rebuild: the other ranks left in order");
  }
  FTCCL_CHECK(decided);
  FTCCL_CHECK(applyCommit(commit));
  FTCCL_CHECK(setUpNodeMemoryAfterCommit("rebuild"));
  FTCCL_CHECK(shareTuningAfterCommit("rebuild"));
  std::shared_ptr<const EpochView> view = epochs_.current();
  if (info) {
    info->epoch = view->epoch;
    info->nranks = view->nranks();
    info->nFailed = static_cast<int>(commit.failedRanks.size());
    info->nReplaced = commit.replaced;
    info->sparesLeft = static_cast<int>(commit.next.spares.size());
    info->shrunk = commit.shrunk ? 1 : 0;
  }
  FTCCL_LOG(Warn, Recovery,
            "rank {}/{}: rebuilt into epoch {} ({} failed, {} replaced by spares{}, {} spares "
            "left) in {:.1f} ms",
            view->rank, view->nranks(), view->epoch, commit.failedRanks.size(), commit.replaced,
            commit.shrunk ? ", shrunk" : "", view->spares.size(), msSince(start));
  return Status::ok();
}

Status Communicator::standby(int* activated) {
  if (promotedAtInit_) {  // took a missing rank's place at init: active from the start
    promotedAtInit_ = false;
    *activated = 1;
    return Status::ok();
  }
  if (epochs_.rank() >= 0) {
    return invalidUsage("this process holds rank " + std::to_string(epochs_.rank()) +
                        ", not a spare");
  }
  auto start = Clock::now();
  for (;;) {
    AgreementCommit commit;
    Status decided = inbox_.awaitDecision(
        "ftcclCommStandby", /*forever=*/true, config_.failureTimeoutMs,
        [&] { return revocation_.aborted(); }, [&] { return health_->agreementView(healthId_); },
        &commit);
    if (decided.code() == ftcclInProgress) {  // every rank left in order
      *activated = 0;
      FTCCL_LOG(Info, Recovery, "spare: every rank left; standing down");
      return Status::ok();
    }
    FTCCL_CHECK(decided);
    FTCCL_CHECK(applyCommit(commit));
    if (epochs_.rank() >= 0) {
      FTCCL_CHECK(setUpNodeMemoryAfterCommit("activation"));
      FTCCL_CHECK(shareTuningAfterCommit("activation"));
      *activated = 1;
      FTCCL_LOG(Warn, Recovery,
                "spare activated as rank {}/{} in epoch {} after {:.1f} ms on standby",
                epochs_.rank(), epochs_.nranks(), epochs_.epoch(), msSince(start));
      return Status::ok();
    }
  }
}

// Enters the committed epoch: new numbering, the transport's tags carry the new epoch
// (nothing of the old one can match), health probes the new neighbours, and op
// sequence numbers start again at 0 on every member.
Status Communicator::applyCommit(const AgreementCommit& commit, bool fromJoinAnswer) {
  if (commit.next.epoch >= TagLayout::kEpochs) {
    // Tags never reuse an epoch (tag_layout.h): old leftovers could match again.
    return remoteError("this communicator has been rebuilt " +
                       std::to_string(commit.next.epoch - 1) +
                       " times, the most its data path can tell apart: create a new one "
                       "(ftcclCommSplit or a new init)");
  }
  dropNodeMemory();  // the old epoch's: the new one maps a fresh segment, or none
  std::shared_ptr<const EpochView> previous = epochs_.current();
  auto view = std::make_shared<EpochView>();
  view->peers = previous->peers;
  view->worldRank = previous->worldRank;
  for (PeerInfo& p : inbox_.takeJoined()) {  // spares that joined since: reachable now
    auto known = std::find_if(view->peers.begin(), view->peers.end(),
                              [&](const PeerInfo& q) { return q.key == p.key; });
    if (known != view->peers.end()) continue;  // announced again while the last commit entered
    {
      std::lock_guard<std::mutex> lock(transportMutex_);  // the stats read its peer table
      transport_->addPeer(p.transportAddress);
    }
    view->peers.push_back(std::move(p));
  }
  const std::unordered_map<ProcessKey, size_t> worldByKey = worldIndexByKey(view->peers);
  FTCCL_CHECK(
      switchWorkersSince(commit.next, previous->epoch, worldByKey, &view->peers, view->worldRank));
  markLocalPeers(view->peers);
  auto worldIndex = [&](const Member& key) {
    auto found = worldByKey.find(key);
    return found == worldByKey.end() ? -1 : static_cast<int>(found->second);
  };
  bool mySpare = false;
  for (const Member& key : commit.next.ranks) {
    int world = worldIndex(key);
    if (world < 0) return internalError("the new membership names an unknown process " + key);
    if (world == view->worldRank) view->rank = static_cast<int>(view->worldOf.size());
    view->worldOf.push_back(world);
  }
  for (const Member& key : commit.next.spares) {
    int world = worldIndex(key);
    if (world < 0) return internalError("the new spare pool names an unknown process " + key);
    mySpare = mySpare || world == view->worldRank;
    view->spares.push_back(world);
  }
  if (view->rank < 0 && !mySpare) {
    return remoteError("expelled: not a member of epoch " + std::to_string(commit.next.epoch));
  }
  FTCCL_CHECK(
      transport_->remap(static_cast<uint32_t>(commit.next.epoch), view->worldOf, view->rank));
  view->epoch = commit.next.epoch;
  view->failedRanks = commit.failedRanks;
  view->salt = commit.salt;
  if (!fromJoinAnswer) view->enteredBy = std::make_shared<const AgreementCommit>(commit);
  board_->reset(static_cast<uint32_t>(view->epoch));
  order_.startEpoch(view->epoch, view->nranks());
  revocation_.startEpoch(view->epoch);
  epochs_.publish(view);
  // The old registration hears the agreement until the new one is added, with no gap in
  // which a commit could be missed: a later commit it passes on while this one is
  // applied (the worker switch takes tens of ms) waits in the inbox, and its failure
  // news is ignored (onMemberFailed).
  const HealthService::RegistrationId left = healthId_;
  registerHealth(*view);
  health_->remove(left, /*orderly=*/false, 0);
  computeLayout(*view);
  chooseSpin(*view);  // a shrink or a spare elsewhere changes the ranks per core
  // A commit told while this one was entered: its revoke was wiped by the epoch's fresh
  // start, so it is entered at once (chaos seed 7975: ops of the skipped epoch waited for
  // good on members that had moved on).
  AgreementCommit newer;
  if (inbox_.takeNewer(view->epoch, &newer)) {
    FTCCL_LOG(Info, Recovery, "rank {}: epoch {} was agreed on while this process entered epoch {}",
              view->rank, newer.next.epoch, view->epoch);
    return applyCommit(newer);
  }
  return Status::ok();
}

}  // namespace ftccl
