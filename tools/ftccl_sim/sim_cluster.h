// A job of N ranks and S hot spares in one process: every virtual process runs the real
// HealthProtocol (with its Agreement) on transports/sim's network, in virtual time. No
// thread per process: the network's event loop calls each one's handlers.
//
// Topology: hosts of ranksPerHost processes (ranks, then spares, in order), racks of
// hostsPerRack hosts. Links inside a host have hostLatency, others `latency`; every
// frame gets a uniform jitter. A virtual process re-registers its communicator when a
// commit arrives, as ftcclCommRebuild does (remove the old epoch, add the new one).
// Memory: one membership, one member table and one commit per epoch, shared by all
// virtual processes (the agreement hands the same commit object to each).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "health/epoch_wiring.h"
#include "health/health_protocol.h"
#include "transports/sim/sim_network.h"

namespace ftccl {
namespace simtool {

struct ClusterConfig {
  int ranks = 1000;
  int spares = 8;
  int ranksPerHost = 8;
  int hostsPerRack = 32;
  int probeIntervalMs = 10;
  int failureTimeoutMs = 30;
  std::chrono::nanoseconds latency{5000};      // between hosts
  std::chrono::nanoseconds hostLatency{1000};  // inside a host
  std::chrono::nanoseconds jitter{1000};
  double datagramLoss = 0;
  double gbps = 100;  // each process's link
  // CPU time per received health message: about 1 us of handling, and the check of its
  // seal (health_auth.h), 0.65 us measured (HMAC-SHA-256 of 120 B, OpenSSL 3.0, the
  // 2-core development VM), rounded up. The simulated network itself seals nothing.
  std::chrono::nanoseconds handling{2000};
  bool shrink = true;
  uint64_t seed = 1;
  int healthyMs = 1000;  // virtual time over which the healthy state's traffic is measured
};

class SimProcess;

class SimCluster {
 public:
  explicit SimCluster(const ClusterConfig& config);
  ~SimCluster();

  const ClusterConfig& config() const { return config_; }
  int size() const { return static_cast<int>(procs_.size()); }  // ranks + spares
  static std::string keyOf(int process);
  int hostOf(int process) const { return process / config_.ranksPerHost; }
  int rackOf(int process) const { return hostOf(process) / config_.hostsPerRack; }
  sim::SimNetwork& net() { return net_; }
  // One store for every process: their agreements share what they derive from an epoch.
  const std::shared_ptr<EpochStore>& epochs() const { return epochs_; }
  sim::SimTime now() const { return net_.now(); }
  SimProcess& process(int p) { return *procs_[p]; }

  // Faults, from now on.
  void kill(int process);
  void stop(int process);  // a hang (SIGSTOP)
  void partitionRack(int rack);
  void slowLink(int a, int b, std::chrono::nanoseconds latency);

  void runFor(std::chrono::nanoseconds span) {
    net_.runFor(std::chrono::duration_cast<std::chrono::microseconds>(span));
  }

  // What every process of an epoch shares: the library's health wiring table
  // (health/epoch_wiring.h), built once per epoch.
  const EpochTable& tableFor(const std::shared_ptr<const Membership>& membership);
  static int indexOf(const std::string& key);  // keyOf's inverse

 private:
  sim::LinkSpec link(const std::string& from, const std::string& to) const;

  ClusterConfig config_;
  sim::SimNetwork net_;
  std::shared_ptr<EpochStore> epochs_ = std::make_shared<EpochStore>();
  std::vector<std::unique_ptr<SimProcess>> procs_;
  std::map<std::pair<int, int>, std::chrono::nanoseconds> slowLinks_;
  std::map<const Membership*, EpochTable> tables_;
};

// One virtual process: its protocol and what its communicator was told, with times.
class SimProcess final : public sim::SimNode, public HealthNetwork, public HealthListener {
 public:
  SimProcess(SimCluster& cluster, int index);

  // SimNode
  void onFrame(const std::string& from, const std::vector<uint8_t>& frame,
               sim::SimTime now) override;
  void onConnectionLost(const std::string& peer, sim::SimTime now) override;
  sim::SimTime onTick(sim::SimTime now) override;
  // HealthNetwork
  void send(const ProcessKey& to, const HealthMessage& message) override;
  void monitor(const ProcessKey& peer) override;
  void unmonitor(const ProcessKey& peer) override;
  // HealthListener
  void onMemberFailed(const FailureReport& report) override;
  void onRebuilt(const std::shared_ptr<const AgreementCommit>& commit) override;
  void onRecoveryFailed(const std::string& why) override;

  // Registers an epoch of the communicator (enteredBy: the commit that made it).
  void join(std::shared_ptr<const Membership> membership, sim::SimTime now,
            std::shared_ptr<const AgreementCommit> enteredBy = nullptr);

  int index() const { return index_; }
  const HealthProtocol& protocol() const { return protocol_; }
  const std::string& key() const { return key_; }
  uint64_t epoch() const { return membership_->epoch; }
  int rank() const { return rank_; }  // -1: a spare (or out of the communicator)
  const std::vector<std::string>& ranks() const { return membership_->ranks; }
  const std::vector<std::string>& spares() const { return membership_->spares; }
  bool failedForGood() const { return !whyFailed_.empty(); }
  const std::string& whyFailed() const { return whyFailed_; }

  // First news of any failure (a detection here, or a notice), and of a new epoch.
  sim::SimTime firstFailureNews{}, lastRebuild{};
  bool detectedDirectly = false;

 private:
  SimCluster& cluster_;
  int index_;
  std::string key_;
  HealthProtocol protocol_;
  HealthProtocol::RegistrationId registration_ = 0;
  int rank_ = -1;
  std::shared_ptr<const Membership> membership_;
  std::shared_ptr<const AgreementCommit> pendingCommit_;  // applied at the next tick
  std::string whyFailed_;
};

}  // namespace simtool
}  // namespace ftccl
