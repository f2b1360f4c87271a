// Agreement on the next membership after failures (DESIGN.md section 4, step 3), as
// single-threaded event handlers: failure news and messages in, messages and a
// decision out. No socket, no thread, no clock: it runs on transports/sim in tests.
//
// The protocol, per communicator, from epoch e to e+1:
//  1. Every member that learns of failures reports its failed set to the coordinator,
//     the first member in coordinator order (coordinatorOrder) it believes alive: once
//     per coordinator (a coordinator that fails is simply replaced by the next), again
//     when the coordinator asks or the member holds news the coordinator may lack.
//     The coordinator spreads its round (its failed set) to every member as it starts,
//     and again when it learns more; it asks each survivor it has not heard from
//     directly at each stall (relays, below).
//  2. The coordinator waits until every member it believes alive has reported, merges
//     the failed sets, and decides: each failed rank is taken over by the next spare
//     in order (failed spares leave the pool); when the pool runs dry, the ranks left
//     are dropped and the survivors renumbered densely in their order (shrink), or,
//     without shrink, the communicator fails for good.
//  3. Epoch e+1 needs a strict majority of epoch e's members (reports, then accepts);
//     otherwise no side of a partition may go on, and a member that finds itself in a
//     minority is expelled (permanent error) instead of forming a communicator of its
//     own.
//  4. A decision is chosen Paxos-style before it is committed, because a coordinator
//     may die with its commit half delivered while the next one decides from older
//     reports (two different epochs e+1: found by the property test). The ballot is
//     the coordinator's place in coordinator order. A report promises the member's
//     coordinator to accept nothing of a lower ballot, and carries the decision the
//     member accepted, if any: a coordinator that hears of one proposes it (the
//     highest ballot's) instead of its own, whose extra failures wait for epoch e+1.
//     It then sends PROPOSE, members accept, and it commits once a majority of epoch e
//     accepted. Two majorities share a member, so a later coordinator always learns a
//     decision that may have been committed.
//  5. COMMIT carries only the failed set and newcomers: each member derives epoch e+1
//     from its own copy of epoch e (decide). Every member that adopts it forwards it to
//     the members 1, 2, 4, ... places after itself, so it reaches all in O(log N) hops
//     even if the coordinator dies mid-commit. A member of e+1 that speaks in an older
//     epoch (it missed the commit: its report, a vote to its relay, a forward) is sent
//     the commit, and one asked directly by e+1's coordinator answers with a report of
//     e to get it; a process that is no member of e+1 is answered with EXPELLED.
// Relays (issue 27: a coordinator of 100,000 members took a report and an accept from
// each, one after another, past the failure timeout). Reports and accepts climb a tree
// over the voters' places (ranks, then spares) instead of each going to the coordinator:
// blocks of kRelayFanIn places, of kRelayFanIn such blocks, and so on; a block's relay is
// its first member not known failed (a dead one is skipped in one step), and each member
// sends to the relay of the smallest block it does not lead itself (the relay of all
// sends to the coordinator). A relay gathers what its children send, with its own, and
// passes the union on once every child it believes alive is in (at a stall, whatever it
// has), again when it grows or its relay changes: a relay handles O(fan-in) messages per
// round, the coordinator too. What is gathered is exactly what the members sent (their
// places, the union of failed sets, the decision accepted under the highest ballot),
// addressed to the coordinator of one ballot, so the coordinator counts it as those
// members' own reports and accepts: safety is step 4's. Proposals spread like commits
// (each receiver forwards once to the members 1, 2, 4, ... after it); only what a stall
// repeats goes to the silent members directly.
//
// Refilling the pool: a member that accepted a JOIN (ftcclCommJoinAsSpare) passes it to
// the coordinator, which, when no failure is being agreed on, proposes epoch e+1 with
// the same ranks and the newcomer appended to the spares, and commits it once a majority
// accepted (a "pool-only" commit: the ranks need not rebuild for it).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "recovery/agreement_messages.h"
#include "recovery/epoch_store.h"
#include "util/run_set.h"

namespace ftccl {

// The order in which ranks take over as coordinator: rank 0, then the bit-reversed
// indices (n/2, n/4, 3n/4, ...), so consecutive candidates sit far apart in rank order.
// Hosts and racks are runs of consecutive ranks: when the one holding rank 0 is lost or
// cut off, the next candidate or the one after is on another, instead of a walk through
// every rank of the lost rack at several failure timeouts each (ftccl_sim "coordrack").
class CandidateWalk {
 public:
  explicit CandidateWalk(size_t nRanks);
  bool done() const { return i_ >> bits_ != 0; }
  size_t rank() const;
  void next();

 private:
  void skipPastEnd();
  size_t n_;
  int bits_ = 0;
  size_t i_ = 0;
};
std::vector<int> coordinatorOrder(int nRanks);

class AgreementNetwork {
 public:
  virtual ~AgreementNetwork() = default;
  virtual void send(const Member& to, const RecoveryMessage& message) = 0;
  // A commit is being adopted, before anything of the new epoch is sent (its forwards,
  // a report of the next round): the network learns the new epoch's salt here.
  virtual void onAdopting(const AgreementCommit& commit) {}
};

class Agreement {
 public:
  enum class State { kStable, kRecovering, kFailed, kExpelled };
  static constexpr int kRelayFanIn = 32;
  // The most failures heard of at once whose waiters the coordinator tells directly
  // (noteFailed); more wait for its next round.
  static constexpr size_t kTellWaitingMax = 1024;

  // `current` and `enteredBy` are shared with whoever holds them; `store` derives what
  // agreements of the same epoch share (epoch_store.h). enteredBy: the commit that made
  // `current` (none for the first epoch), resent to a member that reports from the epoch
  // before because it missed it.
  Agreement(Member self, std::shared_ptr<const Membership> current, bool shrinkWhenNoSpares,
            AgreementNetwork* net, std::shared_ptr<EpochStore> store,
            std::shared_ptr<const AgreementCommit> enteredBy = nullptr);

  // Health learnt that `who` failed or left (a member or a spare). A spare lost while
  // stable leaves the pool at the next decision without starting a round.
  // detectedHere: this process's own detector saw it (not a notice): it then tells the
  // members that wait on `who` in the relay tree at once.
  void onFailure(const Member& who, bool detectedHere = true);
  void onMessage(const Member& from, const RecoveryMessage& message);
  // No decision for a failure timeout: the first time, ask again (a message may have
  // been lost; a member whose coordinator has shown itself alive since need not);
  // after that, whoever did not answer counts as unreachable: the coordinator's silent
  // members at its second stall, a member's silent coordinator at the member's third
  // (so both timers firing together cannot evict the coordinator that is about to
  // decide). A coordinator waiting for accepts asks again and evicts nobody.
  void onStalled();
  // Every probe interval while waiting(): a coordinator that heard of more failures since
  // it spread its round spreads it again, so that relays stop waiting for the dead (a
  // host or rack: their detectors' news reached it alone), at most once per tick.
  void onTick();
  // A member accepted a newcomer's JOIN: the coordinator adds it to the pool (only while
  // stable; during a recovery the join is dropped and the newcomer times out).
  void requestJoin(const JoiningSpare& spare);
  // The relay tree's fan-in (tests: small, so that a few members make several levels).
  // Every member must use the same.
  void setRelayFanIn(int fanIn) { fanIn_ = fanIn < 2 ? 2 : fanIn; }
  // The failures this member learnt from the agreement's messages since the last call
  // (a round started, a proposal, a commit), not from onFailure: health tells its
  // communicators of them as of a FAILED notice.
  std::vector<Member> takeLearnedFailures();

  State state() const { return state_; }
  // Recovering, or a pool-only proposal awaiting its majority: onStalled() is due every
  // failure timeout without a decision.
  bool waiting() const { return state_ == State::kRecovering || proposalBallot_ >= 0; }
  const Membership& membership() const { return *current_; }
  int myRank() const;                    // -1 for a spare
  bool isMember(const Member& m) const;  // of the current epoch, rank or spare
  // The last commit: ranks lost (old numbering), replaced count, shrunk.
  const AgreementCommit& lastCommit() const;
  std::shared_ptr<const AgreementCommit> lastCommitShared() const { return lastCommit_; }
  const std::string& why() const { return why_; }  // for kFailed / kExpelled
  // What the round waits for, in words (for the error of a wait that gave up on it).
  std::string describeWait() const;
  // Moves whenever the round advances (a failure learnt, a report or an accept counted,
  // a proposal, a promise, a decision); stalls alone do not move it. A waiter watching it
  // tells a slow round from a stuck one.
  uint64_t progressMark() const;

 private:
  // Places among the voters: ranks, then spares, as EpochStore numbers them, kept as
  // runs. Failed sets too: a host, a rack or a subtree is a run or a few, so each process
  // remembers a rack's failure in O(1), and sends it as one range (PlaceRanges).
  using PlaceSet = RunSet;
  // A decision is its failed set (places of the epoch it ends), newcomers and salt, from
  // which decide() derives the commit.
  struct Decision {
    PlaceSet failed;
    std::vector<JoiningSpare> joined;
    EpochSalt salt{};
  };
  // What this member gathers for one coordinator's ballot (its own vote included) and
  // passes on up the tree.
  struct Gathered {
    PlaceSet places;
    PlaceSet failed;        // reports: the union
    size_t failedSent = 0;  // news (failures) travel at once, complete or not
    int64_t acceptedBallot = -1;
    Decision accepted;
    bool changed = true;  // since it was last passed on
    Member sentTo;
  };
  int placeOf(const Member& m) const;  // -1: not a voter of this epoch
  const Member& voterAt(int place) const;
  bool failedAt(int place) const { return failed_.count(place); }
  bool isFailed(const Member& m) const { return failed_.count(placeOf(m)); }
  // Place ranges on the wire (PlaceRanges), runs inside. A message's ranges reaching
  // past this epoch's voters are not this epoch's: false, and the message is ignored.
  bool placesIn(const PlaceRanges& ranges, PlaceSet* places) const;
  PlaceSet placesOf(const std::vector<Member>& names) const;  // non-voters are dropped
  bool decisionOf(const PlaceRanges& failed, const std::vector<JoiningSpare>& joined,
                  const EpochSalt& salt, Decision* decision) const {
    decision->joined = joined;
    decision->salt = salt;
    return placesIn(failed, &decision->failed);
  }
  int leaderOf(int level, size_t block) const;  // -1: every member of it failed
  int parentOf(int place) const;                // -1: leads the whole tree
  std::vector<int> childrenOf(int place) const;
  // Who waits on `m` while it counts as alive: its relay, its children, and the top of
  // the tree and the next candidate if it coordinates.
  std::vector<Member> waitingOn(const Member& m);
  // The coordinator, of news: `failed` are all in failed_ (just noted).
  void tellWaitingOn(const std::vector<Member>& failed);
  void sendNews(const std::vector<Member>& to);  // the failures known here, no ballot
  Member coordinatorAt(int64_t ballot) const;    // the candidate at that place
  // This member's report (accepts: its accept) for the coordinator of `ballot`, into
  // what it gathers, passed on when complete.
  void vote(bool accepts, int64_t ballot);
  void gather(Gathered& g, const AgreementVotes& votes, const PlaceSet& failed,
              const Decision& accepted);
  // Passes on what is complete (force: everything that changed, and what a new relay
  // needs again), after a vote, a failure learnt or a stall.
  void passOn(bool force);
  void handle(const Member& from, const AgreementVotes& m);
  void countReports(const AgreementVotes& m, const PlaceSet& failed, const Decision& accepted);
  void countAccepts(const AgreementVotes& m);
  AgreementVotes votesOf(const Gathered& g, bool accepts, int64_t ballot) const;
  // Sends `m` to the receivers 1, 2, 4, ... places after this member in one list, the
  // same on every member that forwards it (the voters not in `failed`, in place order,
  // then `joined`), so that it reaches all in O(log N) hops. O(|failed| log N), no scan.
  void spread(const PlaceSet& failed, const std::vector<JoiningSpare>& joined,
              const RecoveryMessage& m);
  std::vector<Member> survivors() const;  // members of current_ not known failed
  // A failure learnt from a message: recorded, and kept for takeLearnedFailures.
  bool noteFailed(const Member& m);
  // The same by places, whether any was new; at the coordinator it also tells those
  // waiting on the new ones (tellWaitingOn).
  bool noteFailed(const PlaceSet& places);
  // The coordinator spreads its round: once per ballot, and again (again) when it knows
  // of more failures than it spread.
  void startRound(int64_t ballot, bool again = false);
  void handleRound(const AgreementVotes& m, const PlaceSet& failed);
  size_t aliveCount() const;
  size_t voterCount() const { return current_->ranks.size() + current_->spares.size(); }
  // The first member in coordinator order not known failed; its place is its ballot.
  Member coordinator(int64_t* ballot = nullptr) const;
  // The commit taking the current epoch to the next (the same on every member; one
  // shared object for all that decide it from the same epoch object).
  std::shared_ptr<const AgreementCommit> decide(const Decision& decision);
  static AgreementCommit decideFrom(const Membership& current, const Decision& decision,
                                    bool shrink);
  void indexMembers();
  static AgreementCommit compact(const AgreementCommit& commit);
  bool expelIfMinority();
  AgreementReport reportMessage() const;
  // toSilent: the coordinator asks, directly, each survivor it has not heard from;
  // directly: a member answers its coordinator's ask straight back (its relay may be lost).
  void report(bool toSilent = false, bool directly = false);
  void tryDecide();
  void propose(const Decision& decision);
  void sendProposal(bool spreadToAll);
  // One handler per message type (onMessage dispatches).
  void handle(const Member& from, const AgreementReport& m);
  void handle(const Member& from, const AgreementCommit& m);
  void handle(const Member& from, const AgreementExpelled& m);
  void handle(const Member& from, const JoinRequest& m);
  void handle(const Member& from, const JoinAccept& m) {}  // the newcomer's core takes it
  void handle(const Member& from, const AgreementProposal& m);
  void handle(const Member& from, const AgreementAccept& m);
  void answerStale(const Member& from, uint64_t epoch);
  void adopt(std::shared_ptr<const AgreementCommit> commit, bool forward);
  void expel(const std::string& why);

  Member self_;
  std::shared_ptr<const Membership> current_;
  std::shared_ptr<const EpochStore::Places> places_;  // current_'s voters, for lookups
  bool shrink_;
  AgreementNetwork* net_;
  std::shared_ptr<EpochStore> store_;
  State state_ = State::kStable;
  PlaceSet failed_;   // known failed in this epoch
  PlaceSet reports_;  // coordinator: who reported in this epoch
  PlaceSet asked_;    // coordinator: asked for a report since its last stall
  int fanIn_ = kRelayFanIn;
  std::map<std::pair<bool, int64_t>, Gathered> gathered_;  // (accepts, ballot) -> votes
  int64_t spreadProposal_ = -1;   // the ballot whose proposal this member forwarded
  int64_t spreadRound_ = -1;      // the ballot whose round start it forwarded (or spread)
  size_t spreadRoundFailed_ = 0;  // and how many failures that one named
  std::vector<Member> learned_;   // for takeLearnedFailures
  // Of the next epoch (onMessage): what one round sends a member (votes of its children,
  // a few copies of a spread), with room to spare.
  static constexpr size_t kMaxEarly = 1024;
  std::vector<std::pair<Member, RecoveryMessage>> early_;
  size_t earlyRanges_ = 0;             // failed-set range entries early_ holds (bounded too)
  bool heardFromCoordinator_ = false;  // since it became our coordinator
  Member reportedTo_;
  int stalls_ = 0;
  // Paxos state of this epoch (cleared by adopt).
  int64_t promised_ = -1;        // the highest ballot reported to (or proposed)
  int64_t acceptedBallot_ = -1;  // the ballot of the accepted decision (-1: none)
  Decision accepted_;
  int64_t reportedBallot_ = -1;  // coordinator: the highest accepted ballot reported
  Decision reported_;
  int64_t proposalBallot_ = -1;  // coordinator: its proposal (one per epoch), if any
  Decision proposal_;
  PlaceSet accepts_;  // who accepted it
  std::shared_ptr<const AgreementCommit> lastCommit_;
  std::string why_;
};

}  // namespace ftccl
