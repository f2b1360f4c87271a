#include "sim_cluster.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "health/epoch_wiring.h"
#include "health/health_messages.h"

namespace ftccl {
namespace simtool {

// ---------------------------------------------------------------------------------
// SimCluster

SimCluster::SimCluster(const ClusterConfig& config)
    : config_(config),
      net_([this](const std::string& from, const std::string& to) { return link(from, to); },
           config.seed) {
  net_.setHandlingCost(config.handling);
  net_.setKeyIndex([](const std::string& key) -> int64_t {  // "p17" is node 17
    if (key.size() < 2 || key.size() > 11 || key[0] != 'p') return -1;
    int64_t index = 0;
    for (size_t i = 1; i < key.size(); ++i) {
      if (key[i] < '0' || key[i] > '9') return -1;
      index = index * 10 + (key[i] - '0');
    }
    return index;
  });
  // Epoch salts from the seed: a run stays a function of it.
  setEpochSaltSource([random = std::make_shared<std::mt19937_64>(config.seed)] {
    EpochSalt salt;
    for (uint8_t& b : salt) b = static_cast<uint8_t>((*random)());
    return salt;
  });
  const int n = config.ranks + config.spares;
  for (int p = 0; p < n; ++p) procs_.push_back(std::make_unique<SimProcess>(*this, p));
  auto first = std::make_shared<Membership>();
  for (int p = 0; p < n; ++p) (p < config.ranks ? first->ranks : first->spares).push_back(keyOf(p));
  std::shared_ptr<const Membership> shared = std::move(first);
  for (auto& proc : procs_) proc->join(shared, net_.now());
}

SimCluster::~SimCluster() { setEpochSaltSource({}); }

std::string SimCluster::keyOf(int process) { return "p" + std::to_string(process); }
int SimCluster::indexOf(const std::string& key) {  // per frame sent: no allocation
  return static_cast<int>(std::strtol(key.c_str() + 1, nullptr, 10));
}

sim::LinkSpec SimCluster::link(const std::string& from, const std::string& to) const {
  const int a = indexOf(from), b = indexOf(to);
  sim::LinkSpec spec;
  spec.latency = hostOf(a) == hostOf(b) ? config_.hostLatency : config_.latency;
  auto slow = slowLinks_.find({std::min(a, b), std::max(a, b)});
  if (slow != slowLinks_.end()) spec.latency = slow->second;
  spec.jitter = config_.jitter;
  spec.datagramLoss = config_.datagramLoss;
  spec.gbps = config_.gbps;
  return spec;
}

const EpochTable& SimCluster::tableFor(const std::shared_ptr<const Membership>& membership) {
  auto it = tables_.find(membership.get());
  if (it != tables_.end()) return it->second;
  std::vector<ProcessKey> known;  // every process: those not in the epoch are former members
  known.reserve(procs_.size());
  for (int p = 0; p < size(); ++p) known.push_back(keyOf(p));
  auto placeOf = [this](const ProcessKey& key) {
    const int index = indexOf(key);
    return ProcessPlace{"h" + std::to_string(hostOf(index)), 1000 + index, ""};
  };
  return tables_.emplace(membership.get(), buildEpochTable(membership, placeOf, known))
      .first->second;
}

void SimCluster::kill(int process) { net_.kill(keyOf(process)); }
void SimCluster::stop(int process) { net_.stop(keyOf(process)); }

void SimCluster::partitionRack(int rack) {
  std::vector<std::string> side;
  for (int p = 0; p < size(); ++p) {
    if (rackOf(p) == rack) side.push_back(keyOf(p));
  }
  net_.partition(side);
}

void SimCluster::slowLink(int a, int b, std::chrono::nanoseconds latency) {
  slowLinks_[{std::min(a, b), std::max(a, b)}] = latency;
}

// ---------------------------------------------------------------------------------
// SimProcess

SimProcess::SimProcess(SimCluster& cluster, int index)
    : cluster_(cluster),
      index_(index),
      key_(SimCluster::keyOf(index)),
      protocol_(key_, "h" + std::to_string(cluster.hostOf(index)), 1000 + index, this,
                cluster.epochs()) {
  cluster.net().add(key_, this);
}

// The library's own wiring (health/epoch_wiring.h), as Communicator::registerHealth.
void SimProcess::join(std::shared_ptr<const Membership> membership, sim::SimTime now,
                      std::shared_ptr<const AgreementCommit> enteredBy) {
  const ClusterConfig& c = cluster_.config();
  const EpochTable& table = cluster_.tableFor(membership);
  membership_ = std::move(membership);
  HealthPolicy policy;
  policy.probeIntervalMs = c.probeIntervalMs;
  policy.failureTimeoutMs = c.failureTimeoutMs;
  policy.shrinkWhenNoSpares = c.shrink;
  HealthRegistration reg = registrationFor(table, key_, 1, policy, std::move(enteredBy), this);
  if (reg.myRank < 0) {  // not a member any more
    rank_ = -1;
    return;
  }
  rank_ = reg.myRank < reg.members->nRanks ? reg.myRank : -1;
  registration_ = protocol_.add(std::move(reg), now);
}

void SimProcess::onFrame(const std::string& from, const std::vector<uint8_t>& frame,
                         sim::SimTime now) {
  HealthMessage m;
  size_t used = 0;
  if (decodeHealthMessage(frame.data(), frame.size(), &m, &used) == 1) {
    protocol_.onMessage(from, m, now);
  }
}

void SimProcess::onConnectionLost(const std::string& peer, sim::SimTime now) {
  protocol_.onConnectionLost(peer, now);
}

// A commit is applied here, outside the protocol's handlers, as the application's
// ftcclCommRebuild does on its own thread (woken by onRebuilt).
sim::SimTime SimProcess::onTick(sim::SimTime now) {
  if (pendingCommit_) {
    std::shared_ptr<const AgreementCommit> commit = std::move(pendingCommit_);
    // As the library does: the new registration first (it takes over the agreement),
    // then the old one goes.
    const HealthProtocol::RegistrationId left = registration_;
    registration_ = 0;
    join(std::shared_ptr<const Membership>(commit, &commit->next), now, commit);
    protocol_.remove(left, false, now);
    lastRebuild = now;
  }
  return protocol_.onTick(now);
}

// Heartbeats and acks are UDP datagrams in production; the rest rides TCP.
void SimProcess::send(const ProcessKey& to, const HealthMessage& message) {
  const bool datagram = isProbe(message);
  cluster_.net().send(key_, to, encodeHealthMessage(message),
                      datagram ? sim::Delivery::kDatagram : sim::Delivery::kReliable);
}

void SimProcess::monitor(const ProcessKey& peer) { cluster_.net().connect(key_, peer); }
void SimProcess::unmonitor(const ProcessKey& peer) { cluster_.net().disconnect(key_, peer); }

void SimProcess::onMemberFailed(const FailureReport& report) {
  if (firstFailureNews == sim::SimTime{}) {
    firstFailureNews = cluster_.now();
    detectedDirectly = report.direct;
  }
}

void SimProcess::onRebuilt(const std::shared_ptr<const AgreementCommit>& commit) {
  if (!pendingCommit_ || commit->next.epoch > pendingCommit_->next.epoch) pendingCommit_ = commit;
  cluster_.net().wake(key_);  // the application rebuilds at once
}

void SimProcess::onRecoveryFailed(const std::string& why) { whyFailed_ = why; }

}  // namespace simtool
}  // namespace ftccl
