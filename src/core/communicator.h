// The communicator: membership, transport, staging memory, and the order of its ops.
//
// Ordering: every op gets a ticket on the issuing (application) thread; tickets run
// one after another in issue order, whatever stream they were queued on, so every
// rank runs op k of a communicator as its k-th op and one thread at a time drives
// the communicator's UCX worker. Ops of different communicators run concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "algorithms/collective.h"
#include "core/config.h"
#include "core/peer_info.h"
#include "ftccl.h"
#include "health/health_service.h"
#include "stats/op_counters.h"
#include "stats/progress_board.h"
#include "stats/stats_file.h"
#include "stats/stats_json.h"
#include "util/status.h"

namespace ftccl {

class UcxTransport;
struct UniqueIdContents;

enum class OpKind { kAllReduce, kBroadcast, kReduce, kAllGather, kReduceScatter, kSend, kRecv };

// One call of the C API, as queued: a collective, or one side of a Send/Recv (the
// buffer in args.sendbuff or args.recvbuff, `peer` the other side).
struct OpRequest {
  OpKind kind = OpKind::kAllReduce;
  CollectiveArgs args;
  int peer = -1;
  int algorithm = -1;     // >= 0: run this Algorithm, unlogged (calibration probes)
  bool internal = false;  // ftccl's own (calibration, CommSplit): not in the stats
};

// The ranks `rank` probes (health/monitoring.h), nodes by FTCCL_NODE_ID or host name.
const char* opKindName(OpKind kind);

class Communicator final : public HealthListener {
 public:
  // `cancelled` (CommSplit: the parent was revoked) ends a rendezvous that waits.
  static Status create(int nranks, const ftcclUniqueId& id, int rank,
                       const ftcclConfig_t* config, std::unique_ptr<Communicator>* out,
                       const std::function<bool()>& cancelled = {});
  // ftcclCommJoinAsSpare: a new process joins the spare pool of a running communicator
  // through the member that handed out `joinId`.
  static Status joinAsSpare(const ftcclUniqueId& joinId, const ftcclConfig_t* config,
                            std::unique_ptr<Communicator>* out);
  // ftcclCommSplit, collective over this communicator: ranks of one color form a child
  // ordered by (key, rank); FTCCL_SPLIT_NOCOLOR takes part and gets no child (*out null).
  Status split(int color, int key, const ftcclConfig_t* config,
               std::unique_ptr<Communicator>* out);
  // ftcclCommGetJoinId: an id naming this member, for any number of newcomers.
  Status joinId(ftcclUniqueId* id);
  ~Communicator() override;

  // Before destroy: stop being monitored. `orderly` (CommDestroy) tells the members
  // this rank leaves so they never take its exit for a failure; abort just stops.
  void leaveHealth(bool orderly);
  // Health thread: a member failed. Revokes the communicator (fails in-flight ops).
  void onMemberFailed(const FailureReport& report) override;
  void onRebuilt(const RecoveryMessage& commit) override;
  void onRecoveryFailed(const std::string& why) override;
  void onAllRanksLeft() override;
  void onSpareJoined(const JoiningSpare& spare) override;
  std::vector<uint8_t> joinPackage() override;
  void onJoinAccepted(const RecoveryMessage& accept, const crypto::Key& rootKey) override;

  // ftcclCommRebuild: waits for the members' agreement on the next epoch (started by
  // the health thread as soon as a failure is known), then switches to it.
  Status rebuild(ftcclRebuildInfo_t* info);
  std::vector<int> failedRanks() const;
  // ftcclCommStandby: a hot spare waits until an agreement gives it a rank (1), or
  // every rank has left in order (0). Commits that keep it a spare are followed.
  Status standby(int* activated);

  int nranks() const { return nranks_; }
  int rank() const { return rank_; }  // -1 while a hot spare

  // Application thread: reserves the next slot in this communicator's op order for a
  // batch (one call, or a group's calls on this communicator) and numbers its messages:
  // collectives take the next op sequence numbers, Send/Recv the next per-peer ones.
  struct Ticket {
    uint64_t index = 0;
    uint64_t epoch = 0;
  };
  Ticket issue(std::vector<OpRequest>* batch);
  // Any thread: waits for the ticket's turn, runs the batch to completion (Send/Recv all
  // together, then the collectives in order), releases the turn.
  Status execute(const Ticket& ticket, const std::vector<OpRequest>& batch);
  // Waits until every issued op has run (orderly destroy).
  void waitForIssuedOps();

  // Safe from any thread: fails in-flight and future ops at once and wakes waiters.
  void abort();
  ftcclResult_t asyncError() const { return asyncError_.load(); }
  // The error an op of a revoked communicator fails with.
  Status revokedStatus(const char* opName) const;

  // Calls in progress on this communicator (API guards, queued stream ops); abort and
  // destroy wait for them to leave before freeing.
  void enter();
  void leave();
  void waitUntilUnused();
  // Calls queued in an open group hold the communicator without being in progress: abort
  // and destroy do not wait for them (a group may never end), but the object is freed by
  // whichever comes last, the release (abort/destroy) or the last group letting go.
  void holdForGroup();
  bool releaseGroupHold();  // true: released and no hold left, the caller frees it
  bool markReleased();      // true: no group holds it, the caller frees it
  bool isReleased() const;
  // Abort/destroy: the UCX worker goes now (bounded, see ucx_teardown.cc), even if a
  // group still holds the object.
  void closeTransport();

  void setLastError(const std::string& message);
  std::string lastError() const;

  // ftcclCommGetStats and the stats file: counters, progress, links (stats_json.h).
  CommStats stats();

 private:
  Communicator() = default;
  Status init(int nranks, const ftcclUniqueId& id, int rank, const ftcclConfig_t* config,
              const std::function<bool()>& cancelled = {});
  Status initJoining(const ftcclUniqueId& joinId, const ftcclConfig_t* config);
  // This process's side: health service, UCX worker, and what it tells the others.
  Status startLocal(const UniqueIdContents& contents, PeerInfo* mine);
  Status allocateScratch();
  // Epoch 0: ranks whose process did not join the rendezvous are replaced or dropped.
  Status seatInitialMembers(const std::vector<bool>& present);
  Status tuneAtInit();
  void chooseSpin();
  // `started`: when the caller began timing the op (saves a clock read), else now.
  // `timeoutMs`: no progress for that long fails the op (0: never; -1: FTCCL_OP_TIMEOUT_MS).
  Status drive(Collective& op, const std::string& what,
               std::chrono::steady_clock::time_point started = {}, int timeoutMs = -1);
  // The bound of the library's own ops (calibration, the cost model's sharing after a
  // rebuild): the op timeout if set, else 10 failure timeouts without progress. They
  // must never wait forever, even when the application set no op timeout.
  int internalOpTimeoutMs() const;
  Status failDisagreement(Collective& op, const std::string& what, const Status& cause);
  // A blocking all-gather through the op order (CommSplit's exchanges).
  Status allGatherBytes(const void* mine, void* all, size_t bytesEach);
  std::unique_ptr<Collective> buildBatch(const std::vector<OpRequest>& batch);
  std::unique_ptr<Collective> buildCollective(const OpRequest& request);
  std::unique_ptr<Collective> makeAllReduce(const AlgorithmChoice& choice,
                                            const CollectiveArgs& args);
  // Node layout of the current membership, for hierarchical algorithms and the tuner.
  void computeLayout();
  // Rank 0 measures the cost model (or takes FTCCL_TUNING) at init; at init and after
  // every rebuild it shares its model and algorithm overrides, so every member chooses
  // alike.
  Status measureCostModel();
  Status shareTuning(const char* when);
  Status calibrate();
  Status shareTuningAfterCommit(const char* when);
  // worker_switch.cc: fresh UCX workers for the processes of a host where one died.
  Status createStandbys();
  Status switchWorkersSince(const Membership& next,
                            const std::unordered_map<ProcessKey, size_t>& worldByKey);
  std::vector<bool> processesToSwitch(const std::vector<Member>& failed,
                                      const std::unordered_map<ProcessKey, size_t>& worldByKey) const;
  Status switchWorkers(const std::vector<bool>& switching);
  void revoke(const Status& cause);
  // After a transport error: waits (bounded by the failure timeout) for health to
  // revoke the communicator; true if it did.
  bool awaitHealthVerdict();
  void logMidTransfer();
  void registerHealth();
  // Health key -> worker index, over every process this communicator knows.
  std::unordered_map<ProcessKey, size_t> worldIndexByKey() const;
  // Starts the stats file's lines for this communicator (FTCCL_STATS_FILE), and ends them.
  Status openStats();
  void closeStats();
  void recordStats(const std::vector<OpRequest>& batch, uint64_t elapsedNs);
  // After an op timeout: every rank's progress in words (who has not reached the op,
  // who is inside it and how far), from their health threads' answers.
  std::string diagnoseHang();
  // Waits for the next decision of the agreement (or an end) and takes its commit.
  Status awaitDecision(const char* call, bool forever, RecoveryMessage* commit);
  // Enters the committed epoch: numbering, transport tags, health registration.
  Status applyCommit(const RecoveryMessage& commit);
  bool takeNewerCommit(RecoveryMessage* newer);
  void markLocalPeers();

  int nranks_ = 0;
  int rank_ = -1;
  CommConfig config_;
  std::vector<PeerInfo> peers_;
  std::unique_ptr<UcxTransport> transport_;
  // A second UCX worker, created ahead, for when a process of this host dies
  // (worker_switch.cc); null once used.
  std::vector<std::unique_ptr<UcxTransport>> standbys_;  // next first
  std::shared_ptr<HealthService> health_;
  std::atomic<HealthService::RegistrationId> healthId_{0};  // the stats read it too
  uint64_t commKey_ = 0;
  // The health channel's root key (health_auth.h): from the job's secret, or, for a
  // newcomer, sent sealed by its sponsor.
  std::shared_ptr<const crypto::Key> authRoot_;
  uint64_t epoch_ = 0;
  std::vector<int> worldOf_;  // logical rank -> index in peers_ (every process of the job)
  std::vector<int> spares_;   // the hot spare pool, in activation order (indices in peers_)
  int worldRank_ = -1;        // this process's index in peers_
  bool promotedAtInit_ = false;  // a spare that took a missing rank's place at init

  // Set by the health thread when the agreement decides; consumed by rebuild(). Every
  // commit told is entered, in order, none skipped: each may move processes to standby
  // workers, and every process must make the same moves (mp.spares.
  // second_failure_during_rebuild hung when a process skipped one).
  std::condition_variable decided_;
  std::deque<RecoveryMessage> commits_;  // told and not entered yet, oldest first
  uint64_t newestTold_ = 0;              // the newest epoch ever queued
  std::string recoveryError_;
  bool allRanksLeft_ = false;
  // Refilled pool: processes that joined after init, not yet in peers_ (health thread
  // adds, the next applyCommit merges); join ids handed out; a newcomer's answer.
  std::vector<PeerInfo> joinedPeers_;
  std::vector<std::vector<uint8_t>> joinSecrets_;
  bool hasJoinAccept_ = false;
  RecoveryMessage joinAccept_;
  std::vector<int> lastFailedRanks_;
  RecoveryMessage enteredBy_;  // the commit of the current epoch (none before a rebuild)
  Tuner tuner_;
  std::vector<std::vector<int>> nodes_;  // ranks of each node, intra-node ring order
  CommShape shape_;
  std::vector<uint64_t> loggedChoices_;  // (collective, algorithm, size class) logged
  uint64_t collectivesIssued_ = 0;       // this epoch's op sequence numbers
  std::vector<uint32_t> sendsIssued_, recvsIssued_;  // per peer, this epoch
  std::unique_ptr<uint8_t, void (*)(void*)> scratchMemory_{nullptr, free};
  Scratch scratch_;
  std::chrono::microseconds spinBudget_{200};
  OpCounters counters_;
  std::shared_ptr<ProgressBoard> board_;
  std::shared_ptr<StatsFile> statsFile_;
  StatsFile::SourceId statsSource_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable turn_;
  uint64_t issued_ = 0;
  uint64_t executed_ = 0;
  int users_ = 0;
  int groupHolds_ = 0;
  bool released_ = false;
  std::string lastError_;
  std::atomic<bool> aborted_{false};
  std::atomic<ftcclResult_t> asyncError_{ftcclSuccess};
  std::string revokeReason_;
};

}  // namespace ftccl
