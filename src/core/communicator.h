// The communicator: the C API's object, wiring parts that each have one job.
//
//   OpOrder      (op_order.h)       tickets: ops run one after another in issue order
//   OpBuilder    (op_builder.h)     a batch -> one Collective (algorithm choice, signature)
//   OpDriver     (op_driver.h)      runs it to completion, fails it on revoke or timeout
//   Revocation   (revocation.h)     whether ops may run, and why not
//   EpochState   (epoch_state.h)    the membership of the current epoch, immutable snapshots
//   RecoveryInbox (recovery_inbox.h) what the health thread tells the application thread
//   NodeArena    (transports/shm)   the node's shared memory of this epoch, if any
//
// Files: comm_init.cc (init, joining, the local side), comm_recovery.cc (health's
// callbacks, rebuild, standby, entering an epoch), comm_tuning.cc (the cost model and
// calibration, measured by tuning/measurement.h), comm_split.cc, comm_stats.cc (stats
// and the hang diagnosis), worker_switch.cc (fresh UCX workers after a death on a host),
// comm_node_memory.cc (the shared-memory segment of a one-node communicator).
// Ops of different communicators run concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/comm_services.h"
#include "core/config.h"
#include "core/epoch_state.h"
#include "core/op_builder.h"
#include "core/op_driver.h"
#include "core/op_order.h"
#include "core/op_request.h"
#include "core/op_timer.h"
#include "core/peer_info.h"
#include "core/recovery_inbox.h"
#include "core/revocation.h"
#include "ftccl.h"
#include "health/health_service.h"
#include "stats/op_counters.h"
#include "stats/progress_board.h"
#include "stats/stats_file.h"
#include "stats/stats_json.h"
#include "util/status.h"

namespace ftccl {

struct UniqueIdContents;
namespace shm {
class NodeSegment;
class NodeArena;
}  // namespace shm

class Communicator final : public HealthListener {
 public:
  // `cancelled` (CommSplit: the parent was revoked) ends a rendezvous that waits.
  static Status create(int nranks, const ftcclUniqueId& id, int rank, const ftcclConfig_t* config,
                       std::unique_ptr<Communicator>* out,
                       const std::function<bool()>& cancelled = {});
  // ftcclCommJoinAsSpare: a new process joins the spare pool of a running communicator
  // through the member that handed out `joinId`.
  static Status joinAsSpare(const ftcclUniqueId& joinId, const ftcclConfig_t* config,
                            std::unique_ptr<Communicator>* out);
  // ftcclCommSplit, collective over this communicator: ranks of one color form a child
  // ordered by (key, rank); FTCCL_SPLIT_NOCOLOR takes part and gets no child (*out null).
  Status split(int color, int key, const ftcclConfig_t* config, std::unique_ptr<Communicator>* out);
  // ftcclCommGetJoinId: an id naming this member, for any number of newcomers.
  Status joinId(ftcclUniqueId* id);
  ~Communicator() override;

  // Before destroy: stop being monitored. `orderly` (CommDestroy) tells the members
  // this rank leaves so they never take its exit for a failure; abort just stops.
  void leaveHealth(bool orderly);
  // Health thread: a member failed. Revokes the communicator (fails in-flight ops).
  void onMemberFailed(const FailureReport& report) override;
  void onRebuilt(const std::shared_ptr<const AgreementCommit>& told) override;
  void onRecoveryFailed(const std::string& why) override;
  void onAllRanksLeft() override;
  void onSpareJoined(const JoiningSpare& spare) override;
  std::vector<uint8_t> joinPackage() override;
  void onJoinAccepted(const JoinAccept& accept, const crypto::Key& rootKey) override;

  // ftcclCommRebuild: waits for the members' agreement on the next epoch (started by
  // the health thread as soon as a failure is known), then switches to it.
  Status rebuild(ftcclRebuildInfo_t* info);
  std::vector<int> failedRanks() const;
  // ftcclCommStandby: a hot spare waits until an agreement gives it a rank (1), or
  // every rank has left in order (0). Commits that keep it a spare are followed.
  Status standby(int* activated);

  int nranks() const { return epochs_.nranks(); }
  int rank() const { return epochs_.rank(); }  // -1 while a hot spare

  // Application thread: reserves the next slot in the op order for a batch (one call,
  // or a group's calls on this communicator) and numbers its messages.
  using Ticket = OpOrder::Ticket;
  Ticket issue(std::vector<OpRequest>* batch) { return order_.issue(batch); }
  // Any thread: waits for the ticket's turn, runs the batch to completion (Send/Recv all
  // together, then the collectives in order), releases the turn.
  Status execute(const Ticket& ticket, const std::vector<OpRequest>& batch);
  // Waits until every issued op has run (orderly destroy).
  void waitForIssuedOps();

  // Safe from any thread: fails in-flight and future ops at once and wakes waiters.
  void abort();
  ftcclResult_t asyncError() const { return revocation_.error(); }
  // The error an op of a revoked communicator fails with.
  Status revokedStatus(const char* opName) const { return revocation_.status(opName); }

  // Calls in progress and group holds (op_order.h).
  void enter() { order_.enter(); }
  void leave() { order_.leave(); }
  void waitUntilUnused() { order_.awaitUnused(); }
  void holdForGroup() { order_.holdForGroup(); }
  bool releaseGroupHold() { return order_.releaseGroupHold(); }
  bool markReleased() { return order_.markReleased(); }
  bool isReleased() const { return order_.isReleased(); }
  // Abort/destroy: the UCX worker goes now (bounded, see ucx_teardown.cc), even if a
  // group still holds the object.
  void closeTransport();

  void setLastError(const std::string& message) { revocation_.setLastError(message); }
  std::string lastError() const { return revocation_.lastError(); }

  // ftcclCommGetStats and the stats file: counters, progress, links (stats_json.h).
  CommStats stats();

 private:
  Communicator();
  // comm_init.cc
  Status init(int nranks, const ftcclUniqueId& id, int rank, const ftcclConfig_t* config,
              const std::function<bool()>& cancelled = {});
  Status initJoining(const ftcclUniqueId& joinId, const ftcclConfig_t* config);
  // This process's side: health service, UCX worker, and what it tells the others.
  Status startLocal(const UniqueIdContents& contents, PeerInfo* mine);
  Status allocateScratch();
  // Epoch 0: ranks whose process did not join the rendezvous are replaced or dropped.
  Status seatInitialMembers(const std::vector<bool>& present, int nranks, EpochView* view);
  // comm_tuning.cc: rank 0 measures the cost model (or takes FTCCL_TUNING) at init; at
  // init and after every rebuild it shares its model and algorithm overrides, so every
  // member chooses alike.
  Status tuneAtInit();
  Status measureCostModel();
  Status calibrate();
  Status shareTuning(const char* when);
  Status shareTuningAfterCommit(const char* when);
  // comm_node_memory.cc: at init and on entering each epoch, every rank maps a fresh
  // segment of its node (a node of several ranks) or none does.
  Status setUpNodeMemory(const char* when);
  Status setUpNodeMemoryAfterCommit(const char* when);
  void dropNodeMemory();
  // comm_split.cc: a blocking all-gather through the op order.
  Status allGatherBytes(const void* mine, void* all, size_t bytesEach);
  // comm_recovery.cc
  void registerHealth(const EpochView& view);
  // Enters the committed epoch: numbering, transport tags, health registration.
  // fromJoinAnswer: a newcomer's first commit, its sponsor's copy (agreed on without it).
  Status applyCommit(const AgreementCommit& commit, bool fromJoinAnswer = false);
  // worker_switch.cc: fresh UCX workers for the processes of a host where one died.
  Status createStandbys();
  Status switchWorkersSince(const Membership& next, uint64_t entered,
                            const std::unordered_map<ProcessKey, size_t>& worldByKey,
                            std::vector<PeerInfo>* peers, int worldRank);
  Status switchWorkers(const std::vector<bool>& switching, std::vector<PeerInfo>* peers,
                       int worldRank, uint64_t epoch);
  // comm_stats.cc
  Status openStats();
  void closeStats();
  void recordStats(const std::vector<OpRequest>& batch, uint64_t elapsedNs);
  // After an op timeout: every rank's progress in words (who has not reached the op,
  // who is inside it and how far), from their health threads' answers.
  std::string diagnoseHang();
  void logMidTransfer();
  // communicator.cc
  // `newsEpoch`: the epoch the news is about (health's), if older than ours: ignored.
  void revoke(const Status& cause, uint64_t newsEpoch = UINT64_MAX);
  // The transport's error mode differs for peers that shared memory and CMA reach.
  void markLocalPeers(const std::vector<PeerInfo>& peers);
  // Node layout of the current membership, for hierarchical algorithms and the tuner.
  void computeLayout(const EpochView& view);
  void chooseSpin(const EpochView& view);
  OpBuilder::Target opTarget() const;

  CommConfig config_;
  CommServices services_;  // what its transports and health service come from
  std::string netDevice_;  // the only network device its workers may use (empty: any)
  uint64_t commKey_ = 0;
  // The health channel's root key (health_auth.h): from the job's secret, or, for a
  // newcomer, sent sealed by its sponsor. Set during init, read-only afterwards.
  std::shared_ptr<const crypto::Key> authRoot_;
  bool promotedAtInit_ = false;  // a spare that took a missing rank's place at init

  EpochState epochs_;
  Revocation revocation_;
  OpOrder order_;
  OpBuilder builder_;
  OpDriver driver_;
  OpTimer timer_;  // used by the thread whose turn it is, as driver_
  RecoveryInbox inbox_;

  // The UCX worker, and standbys created ahead for when a process of this host dies
  // (worker_switch.cc), next first. Only the thread whose turn it is uses or replaces
  // the worker; transportMutex_ covers its replacement against interrupt() and close.
  mutable std::mutex transportMutex_;
  std::unique_ptr<WorldTransport> transport_;
  std::vector<std::unique_ptr<WorldTransport>> standbys_;

  std::shared_ptr<HealthService> health_;
  std::atomic<HealthService::RegistrationId> healthId_{0};  // the stats read it too

  // The segment before the arena that views it (destroyed after it); builder_ holds the
  // arena's address until dropNodeMemory().
  std::unique_ptr<shm::NodeSegment> nodeSegment_;
  std::unique_ptr<shm::NodeArena> nodeArena_;

  std::unique_ptr<uint8_t, void (*)(void*)> scratchMemory_{nullptr, free};
  Scratch scratch_;
  OpCounters counters_;
  std::shared_ptr<ProgressBoard> board_;
  std::shared_ptr<StatsFile> statsFile_;
  StatsFile::SourceId statsSource_ = 0;
};

}  // namespace ftccl
