// The health protocol as single-threaded event handlers: messages and timer ticks in,
// messages and failure reports out. It owns no socket and no clock, so the same code
// runs under the real health thread (health_service*.cc: TCP and UDP) and on the simulated
// network (transports/sim), where tests drive it deterministically with fault hooks.
//
// Steps (DESIGN.md section 4, steps 1, 2 and 5):
// 1. Each registered communicator names the ranks this process monitors (its ring
//    neighbours); the protocol asks the network to keep a connection to each monitored
//    process and sends it a heartbeat every probe interval. A peer that monitors us
//    too acks one heartbeat in ten (its own heartbeats prove it alive); one that does
//    not acks every heartbeat.
// 2. A suspicion (connection lost: crash; silence for failureTimeout: hang or lost
//    link) is reported to every registered communicator that contains the process,
//    and FAILED is sent to all their other members, which report it in turn: every
//    survivor learns within one message latency, not only the neighbours.
// 5. An orderly leave sends LEAVE: the members stop monitoring the leaver, so its exit
//    is never taken for a failure.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "health/failure_detector.h"
#include "health/health_auth.h"
#include "health/health_messages.h"
#include "health/link_quality.h"
#include "recovery/agreement_messages.h"
#include "stats/lateness.h"  // LatenessTracker::PeerView, held by value
#include "stats/progress_board.h"
#include "util/run_set.h"

namespace ftccl {

// Run by the protocol but only held here (recovery/agreement.h, epoch_store.h): the
// messages above are what its users see.
class Agreement;
class AgreementNetwork;
class EpochStore;

struct MemberInfo : ProcessId {
  int rank = -1;  // its index in the member table
};

// The members of one epoch as health sees them: the ranks (index = rank), then the hot
// spares (index = nRanks + position in the pool), indexed by key. Immutable, so every
// registration of the epoch shares one (a simulation's 100,000 virtual processes too).
struct MemberTable {
  std::vector<MemberInfo> members;
  std::unordered_map<ProcessKey, int> index;  // key -> member index
  int nRanks = 0;
  // nRanks < 0: every member is a rank. Each member's `rank` is its index.
  static std::shared_ptr<const MemberTable> make(std::vector<MemberInfo> members, int nRanks = -1);
  // The member `key` names, or null: O(1), for handlers that run once per message on
  // every process.
  const MemberInfo* find(const ProcessKey& key) const;
  int size() const { return static_cast<int>(members.size()); }
  const MemberInfo& operator[](int i) const { return members[static_cast<size_t>(i)]; }
};

struct FailureReport {
  int rank = -1;
  std::string host;
  int pid = 0;
  DetectionCause cause = DetectionCause::kSilence;
  double afterMs = 0;   // from the last sign of life to the detection
  int detectedBy = -1;  // the rank whose health thread detected it
  bool direct = false;  // detected here (true) or learnt from a FAILED notice
  bool spare = false;   // a hot spare (rank is its index in members): it leaves the pool
  uint64_t epoch = 0;   // of the registration that tells it
};

// Implemented by the communicator. Called from the protocol's thread; must not call
// back into the protocol.
class HealthListener {
 public:
  virtual ~HealthListener() = default;
  virtual void onMemberFailed(const FailureReport& report) = 0;
  // A recoverable communicator: the members agreed on the next epoch (rebuild).
  // The commit is shared with the agreement (a simulation's processes keep one copy).
  virtual void onRebuilt(const std::shared_ptr<const AgreementCommit>& commit) {}
  // A recoverable communicator cannot go on (expelled, or no spare and no shrink).
  virtual void onRecoveryFailed(const std::string& why) {}
  // Every rank (not counting spares) left in order: a waiting spare stops waiting.
  virtual void onAllRanksLeft() {}
  // Refilling the pool (ftcclCommJoinAsSpare). A member: a newcomer joined the pool
  // (every commit names the late joiners it involves, so each member learns them).
  virtual void onSpareJoined(const JoiningSpare& spare) {}
  // A member that accepted a newcomer: what the newcomer needs to reach everyone.
  virtual std::vector<uint8_t> joinPackage() { return {}; }
  // The newcomer: the member that accepted it answered (pool commit and package), and
  // sent the communicator's root key (zero where nothing is authenticated: simulator).
  virtual void onJoinAccepted(const JoinAccept& accept, const crypto::Key& rootKey) {}
};

struct HealthRegistration {
  uint64_t commKey = 0;
  uint32_t epoch = 0;
  int myRank = -1;
  // The epoch's members (null: none yet, a newcomer waiting to be accepted), and the
  // agreement's view of them (null: derived from the table).
  std::shared_ptr<const MemberTable> members;
  std::shared_ptr<const Membership> membership;
  std::vector<int> monitored;  // member indices this process probes
  // Processes of earlier epochs that are no longer members. One that still sends
  // heartbeats slept through the rebuild (SIGSTOP): it is told it was expelled.
  std::vector<ProcessKey> formerMembers;
  // Secrets of the join ids handed out (ftcclCommGetJoinId) for this communicator; for
  // a newcomer, the secret of the id it joins with.
  std::vector<std::vector<uint8_t>> joinSecrets;
  // The communicator's root key (health_auth.h), from which every epoch's key derives.
  // Null in the simulator, whose network authenticates nothing.
  std::shared_ptr<const crypto::Key> authRoot;
  // The salt of the commit that made this epoch (zero for the first): with the root
  // key, it gives the epoch's key.
  EpochSalt epochSalt{};
  // A newcomer waiting for its join to be accepted: no members yet, only listens.
  bool joining = false;
  HealthListener* listener = nullptr;
  int probeIntervalMs = 10;
  int failureTimeoutMs = 1000;
  // Run the agreement on the next membership as soon as a member fails.
  bool recoverable = false;
  // The commit that made this epoch (after a rebuild): resent to a member that reports
  // from the epoch before, having missed it, instead of expelling it.
  std::shared_ptr<const AgreementCommit> enteredBy;
  bool shrinkWhenNoSpares = true;
  // This rank's op progress (core publishes it): carried by heartbeats, answered to
  // progress queries, and the straggler detector's own side. Null in the simulator.
  std::shared_ptr<const ProgressBoard> progress;
  double stragglerMinLateMs = 5.0;  // FTCCL_STRAGGLER_MS
};

// A member's progress as last heard (heartbeat or answer to a query).
struct MemberProgress {
  int member = -1;
  bool known = false;
  bool gone = false;  // reported failed, or left in order: not asked
  OpProgress progress;
  double ageMs = 0;  // since it was heard
};

// What health knows of one monitored peer, for the stats.
struct PeerHealth {
  int member = -1;
  RoundTripStats roundTrips;  // no samples yet: none heard
  double lastMs = 0, baselineMs = 0, levelMs = 0;
  bool degraded = false;  // slower than its own best, or than this process's other links
  LatenessTracker::PeerView lateness;
};

// What the protocol needs from a network: TCP and UDP in production, transports/sim in
// tests.
class HealthNetwork {
 public:
  virtual ~HealthNetwork() = default;
  // Sends one message; opens a connection first if there is none.
  virtual void send(const ProcessKey& to, const HealthMessage& message) = 0;
  // Keeps (or stops keeping) a connection open to `peer`, whose loss the network
  // reports through HealthProtocol::onConnectionLost.
  virtual void monitor(const ProcessKey& peer) = 0;
  virtual void unmonitor(const ProcessKey& peer) = 0;
};

class HealthProtocol {
 public:
  // `epochs`: where its agreements share what they derive from an epoch (a simulator
  // hands every process the same one); null: a store of its own.
  HealthProtocol(ProcessKey self, std::string host, int pid, HealthNetwork* network,
                 std::shared_ptr<EpochStore> epochs = nullptr);
  ~HealthProtocol();  // out of line: Registration holds an Agreement, incomplete here

  using RegistrationId = uint64_t;
  RegistrationId add(HealthRegistration registration, HealthTime now);
  // `orderly`: sends LEAVE to the members first.
  void remove(RegistrationId id, bool orderly, HealthTime now);

  void onMessage(const ProcessKey& from, const HealthMessage& message, HealthTime now);
  void onConnectionLost(const ProcessKey& peer, HealthTime now);
  // Sends due heartbeats and checks silences. Returns when it wants the next tick.
  HealthTime onTick(HealthTime now);

  void allowJoin(RegistrationId id, std::vector<uint8_t> secret);
  // Sends one agreement message of communicator `commKey` (a newcomer's JOIN).
  void sendRecovery(const ProcessKey& to, uint64_t commKey, const RecoveryMessage& message);

  // Hang diagnosis: asks every member of the registration for its progress; answers
  // land in progressOf() as they come.
  void requestProgress(RegistrationId id);
  std::vector<MemberProgress> progressOf(RegistrationId id, HealthTime now) const;
  // Round trips and lateness of the members this registration monitors.
  std::vector<PeerHealth> peerHealth(RegistrationId id) const;
  // The agreement of a recoverable registration: where its round stands, and a mark that
  // moves whenever it advances (Agreement::describeWait, progressMark).
  struct AgreementView {
    bool waiting = false;  // a round (or a pool change) is under way
    uint64_t mark = 0;
    std::string description;
  };
  AgreementView agreementView(RegistrationId id) const;

  // Fault injection: a dropped process neither sends nor hears anything.
  void setDropAll(bool drop) { dropAll_ = drop; }

  // The network seals and verifies every frame (health_auth.h): the protocol names the
  // key of each message it sends, and takes a received one only when its key fits what
  // it says (its communicator and epoch). The simulator's network does not.
  // Heartbeat numbers then start from the clock, so that a peer's replay guard (the last
  // number taken from an address) never holds back a process that reuses the address.
  void requireAuthentication() {
    authenticated_ = true;
    heartbeatSeq_ = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count());
  }
  const HealthKeys& keys() const { return keys_; }
  HealthAuth attestFor(const ProcessKey& peer) const;
  // A newcomer waiting for its join answer: the answer (the member table, up to a frame's
  // cap) comes on a connection whose attestation it cannot verify yet.
  bool joining() const;
  bool knownProcess(const ProcessKey& key) const;

  const ProcessKey& self() const { return self_; }
  double lastRoundTripMs(const ProcessKey& peer) const;
  double maxRoundTripMs(const ProcessKey& peer) const;
  // Whether the round trips to `peer` stay well above its best (link_quality.h).
  bool linkDegraded(const ProcessKey& peer) const;

 private:
  struct Registration {
    HealthRegistration info;
    RunSet reported;  // ranks already reported failed (a rack: one run)
    RunSet left;      // ranks that announced an orderly leave
    bool allRanksLeftTold = false;
    std::unique_ptr<Agreement> agreement;  // recoverable communicators only
    std::unique_ptr<AgreementNetwork> agreementNet;
    bool agreementDone = false;    // failed or expelled: nothing more to say
    uint64_t notifiedEpoch = 0;    // the last epoch the listener was told of
    HealthTime recoveringSince{};  // when the agreement last started or stalled
    // Newcomers this member accepted, not yet answered, with their join id's secret.
    std::map<ProcessKey, std::vector<uint8_t>> sponsored;
    std::unique_ptr<LatenessTracker> lateness;  // with a progress board only
    struct Heard {
      OpProgress progress;
      HealthTime at;
    };
    std::unordered_map<int, Heard> progressOf;  // member -> its latest progress
    // Former members told EXPELLED, and when: at most one every kExpelledEvery each, so
    // a resumed process's heartbeats (or replays of them) cost one answer per interval.
    std::unordered_map<ProcessKey, HealthTime> expelledToldAt;
  };
  class AgreementSender;
  void checkAgreement(Registration& registration);

  void send(const ProcessKey& to, const HealthMessage& message,
            const RecoveryMessage* recovery = nullptr);
  void authorize(const ProcessKey& to, HealthMessage* m, const RecoveryMessage* recovery) const;
  bool authentic(const HealthMessage& m, const RecoveryMessage* recovery) const;
  bool fresh(const ProcessKey& from, const HealthMessage& m);
  bool reporterIsMember(const ProcessKey& from, uint64_t commKey) const;
  void holdKeys(const HealthRegistration& info);
  bool takeOverAgreement(Registration& fresh);
  void syncWatched(HealthTime now);
  void suspect(const Suspicion& suspicion);
  void announce(Registration& registration, const MemberInfo& failed, DetectionCause cause,
                double afterMs);
  void reportKnownFailures(Registration& registration);
  void deliver(Registration& registration, const FailureReport& report);
  // From the agreement of `commKey` (checkAgreement): its registrations only. The watched
  // set is brought up to date once for all (a rack: 256 at once, on every process).
  void learntFailures(uint64_t commKey, const std::vector<ProcessKey>& failed);
  void learntFailure(uint64_t commKey, const ProcessKey& failed);  // one, watched set as it was
  void onLeave(Registration& registration, int index);
  void tellIfRanksGone(Registration& registration);
  void tellIfExpelled(const ProcessKey& from);
  void onRoundTrip(const ProcessKey& from, double ms);
  void compareWithOtherLinks(const ProcessKey& from, LinkQuality& link);
  void onProgress(const ProcessKey& from, const OpProgress& progress, bool fromHeartbeat,
                  HealthTime now);
  void answerProgressQuery(const ProcessKey& from, const HealthProgressQuery& query,
                           HealthTime now);
  void checkLateness(Registration& registration, HealthTime now);
  std::string describeMember(const ProcessKey& key) const;
  void onRecoveryMessage(const ProcessKey& from, const HealthRecovery& frame,
                         const HealthAuth& auth, const RecoveryMessage& m);
  bool acceptJoin(Registration& registration, const ProcessKey& from, const HealthAuth& auth,
                  const JoinRequest& m);
  void adoptJoined(Registration& registration, const AgreementCommit& commit);
  static const MemberInfo* memberOf(const HealthRegistration& info, const ProcessKey& key) {
    return info.members->find(key);
  }
  // A newcomer's own JOIN carries its proof of a join id; a sponsor's forward carries none.
  static bool isNewcomersJoin(const RecoveryMessage& m) {
    const auto* join = std::get_if<JoinRequest>(&m);
    return join != nullptr && !join->secret.empty();
  }
  static int64_t toNs(HealthTime t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }

  ProcessKey self_;
  std::string host_;
  HealthNetwork* network_;
  std::shared_ptr<EpochStore> epochs_;
  std::map<RegistrationId, Registration> registrations_;
  RegistrationId nextId_ = 1;
  FailureDetector detector_{std::chrono::milliseconds(1000)};
  std::set<ProcessKey> watched_;
  std::chrono::milliseconds probeInterval_{10};
  HealthTime nextProbe_{};
  uint64_t heartbeatSeq_ = 0;
  std::map<ProcessKey, LinkQuality> roundTrips_;
  // Every process this one knows failed, in any registration: a failure is the process's,
  // not one epoch's (a commit may still list it, when it was decided before the news).
  // Only a report whose source is still a member is repeated in a new epoch: a process
  // that slept through a rebuild sends stale suspicions, and it is expelled.
  struct KnownFailure {
    DetectionCause cause;
    double afterMs;
    ProcessKey reporter;  // this process, or the sender of the FAILED notice
  };
  void rememberFailure(const ProcessKey& failed, DetectionCause cause, double afterMs,
                       const ProcessKey& reporter);
  std::unordered_map<ProcessKey, KnownFailure> failed_;
  // Learnt from a communicator's agreement, which may have evicted a live process for
  // silence towards it: only that communicator's next epochs take them for failed. Kept
  // by index in the member tables of its registrations, a rack as one run (issue 27:
  // 100,000 simulated processes kept 100 bytes a failure each), and carried over to each
  // new epoch's table as it registers; a table no registration holds any more is dropped
  // (a new epoch registers before the old one leaves), and all of it with the last one.
  struct LearntFailures {
    std::shared_ptr<const MemberTable> table;
    RunSet indices;
  };
  struct LearntOfComm {
    std::vector<LearntFailures> byTable;
    std::vector<ProcessKey> unlisted;  // learnt before any table here listed them (rare)
  };
  void rememberLearnt(LearntOfComm& known, const std::shared_ptr<const MemberTable>& table,
                      int index);
  void pruneLearnt(uint64_t commKey);
  std::unordered_map<uint64_t, LearntOfComm> learnt_;  // by comm key
  bool dropAll_ = false;
  bool authenticated_ = false;
  HealthKeys keys_;
  // The message being handled, and its sender: replies to it (ack, progress, EXPELLED)
  // go under its key, the one key the sender surely holds.
  const HealthAuth* inbound_ = nullptr;
  const ProcessKey* inboundFrom_ = nullptr;
  // Replay guards for probes, per monitored peer: the last heartbeat and ack taken.
  std::unordered_map<ProcessKey, uint64_t> lastHeartbeat_, lastAck_;
  HealthTime lastNow_{};  // the latest time an event brought (for changes made in passing)
};

}  // namespace ftccl
