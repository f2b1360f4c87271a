// Fresh UCX workers for the processes of a host where a process died.
//
// Why: a process killed while writing into a peer's UCX shared-memory FIFO may die
// between reserving a slot (a CAS on the FIFO's head) and marking it written; the reader
// consumes its FIFO in order and waits on that slot for ever, so every later message to
// it over shared memory is lost (chaos seed 7022: after the rebuild, the new rank 0's
// cost-model broadcast was sent and never arrived). Only the processes of the dead one's
// host can have been written to over shared memory, and UCX cannot repair a FIFO, so
// each of them moves to a new worker.
//
// How, without an exchange on the critical path: every process creates a standby worker
// at init and publishes its address with its peer info (joiners too, and the member
// table a joiner gets carries them). A commit whose failed set holds a process of host
// H makes every process of H that still has its standby switch to it, and every other
// process send to those addresses from then on: ranks and spares decide alike from the
// commit and the peer table, with no message. Each process has kStandbyWorkers of them,
// used in order; once all are used, a further death on the host leaves its processes on
// their workers. A refilled standby would need its new address to reach every rank and
// spare before the next switch; the ranks' all-gather tried first left spares with stale
// addresses (mp.spares.three_failures_three_spares failed on it).
#include "core/communicator.h"
#include "util/log.h"

namespace ftccl {

Status Communicator::createStandbys() {
  standbys_.resize(kStandbyWorkers);
  for (auto& standby : standbys_) FTCCL_CHECK(services_.makeTransport(netDevice_, &standby));
  return Status::ok();
}

namespace {

// Every process on the host (and network namespace) of a failed one, that has a standby.
std::vector<bool> processesToSwitch(const std::vector<Member>& failed,
                                    const std::unordered_map<ProcessKey, size_t>& worldByKey,
                                    const std::vector<PeerInfo>& peers) {
  std::vector<bool> switching(peers.size(), false);
  for (const Member& key : failed) {
    auto dead = worldByKey.find(key);
    if (dead == worldByKey.end()) continue;
    const PeerInfo& d = peers[dead->second];
    for (size_t w = 0; w < peers.size(); ++w) {
      const PeerInfo& p = peers[w];
      if (p.host == d.host && p.netns == d.netns && !p.standbyAddresses.empty())
        switching[w] = true;
    }
  }
  return switching;
}

}  // namespace

// Each commit since the epoch this process is in, oldest first, switches the hosts of
// the processes it lost. A process told only the newest of several commits (a second
// failure agreed on before it rebuilt, a spare activated by the later one) switches
// as often as one told them all: counting only the commit told left such processes a
// worker behind the others, and the new rank 0's cost-model broadcast went to a
// worker nobody read (mp.spares.second_failure_during_rebuild, 1 run in 10).
Status Communicator::switchWorkersSince(const Membership& next, uint64_t entered,
                                        const std::unordered_map<ProcessKey, size_t>& worldByKey,
                                        std::vector<PeerInfo>* peers, int worldRank) {
  const std::vector<LostMember>& lost = next.lost;
  for (size_t i = 0; i < lost.size();) {
    const uint64_t epoch = lost[i].epoch;
    std::vector<Member> failed;
    for (; i < lost.size() && lost[i].epoch == epoch; ++i) failed.push_back(lost[i].key);
    if (epoch <= entered) continue;
    FTCCL_CHECK(
        switchWorkers(processesToSwitch(failed, worldByKey, *peers), peers, worldRank, entered));
  }
  return Status::ok();
}

// `peers` is the table of the epoch being entered: the addresses change in it.
Status Communicator::switchWorkers(const std::vector<bool>& switching, std::vector<PeerInfo>* peers,
                                   int worldRank, uint64_t epoch) {
  for (size_t w = 0; w < peers->size(); ++w) {
    if (!switching[w] || static_cast<int>(w) == worldRank) continue;
    PeerInfo& p = (*peers)[w];
    p.transportAddress = std::move(p.standbyAddresses.front());
    p.standbyAddresses.erase(p.standbyAddresses.begin());
    transport_->setPeerAddress(w, p.transportAddress);
  }
  if (worldRank < 0 || !switching[static_cast<size_t>(worldRank)] || standbys_.empty()) {
    return Status::ok();
  }
  PeerInfo& me = (*peers)[static_cast<size_t>(worldRank)];
  me.transportAddress = std::move(me.standbyAddresses.front());
  me.standbyAddresses.erase(me.standbyAddresses.begin());
  std::unique_ptr<WorldTransport> retired;
  {
    std::lock_guard<std::mutex> lock(transportMutex_);  // revoke() and abort() interrupt it
    retired = std::move(transport_);
    transport_ = std::move(standbys_.front());
    standbys_.erase(standbys_.begin());
  }
  retired->setForceClose();
  retired.reset();  // bounded teardown; a worker it cannot destroy is kept until exit
  std::vector<std::vector<uint8_t>> addresses;
  addresses.reserve(peers->size());
  for (const PeerInfo& p : *peers) addresses.push_back(p.transportAddress);
  FTCCL_CHECK(transport_->connect(worldRank, std::move(addresses), static_cast<uint32_t>(epoch)));
  transport_->setCounting(config_.stats);
  FTCCL_LOG(Info, Net,
            "rank {}: a process of this host failed: moved to a fresh UCX worker "
            "(its shared-memory queues may hold a slot the dead process never filled)",
            epochs_.rank());
  return Status::ok();
}

}  // namespace ftccl
