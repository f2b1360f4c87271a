#include "recovery/agreement.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <mutex>
#include <type_traits>
#include <unordered_set>

#include "util/byte_io.h"
#include "util/crypto.h"

namespace ftccl {
namespace {

bool contains(const std::vector<Member>& v, const Member& m) {
  return std::find(v.begin(), v.end(), m) != v.end();
}

}  // namespace

CandidateWalk::CandidateWalk(size_t nRanks) : n_(nRanks) {
  while ((size_t{1} << bits_) < n_) ++bits_;
  skipPastEnd();
}

void CandidateWalk::next() {
  ++i_;
  skipPastEnd();
}

size_t CandidateWalk::rank() const {
  size_t reversed = 0;
  for (int b = 0; b < bits_; ++b) reversed |= ((i_ >> b) & 1) << (bits_ - 1 - b);
  return reversed;
}

// Fewer than half of the indices below the next power of two reverse past the end.
void CandidateWalk::skipPastEnd() {
  while (!done() && rank() >= n_) ++i_;
}

std::vector<int> coordinatorOrder(int nRanks) {
  std::vector<int> order;
  for (CandidateWalk walk(static_cast<size_t>(nRanks)); !walk.done(); walk.next()) {
    order.push_back(static_cast<int>(walk.rank()));
  }
  return order;
}

Agreement::Agreement(Member self, std::shared_ptr<const Membership> current,
                     bool shrinkWhenNoSpares, AgreementNetwork* net,
                     std::shared_ptr<EpochStore> store,
                     std::shared_ptr<const AgreementCommit> enteredBy)
    : self_(std::move(self)),
      current_(std::move(current)),
      shrink_(shrinkWhenNoSpares),
      net_(net),
      store_(std::move(store)) {
  if (enteredBy && enteredBy->epoch == current_->epoch) lastCommit_ = std::move(enteredBy);
  indexMembers();
}

const AgreementCommit& Agreement::lastCommit() const {
  static const AgreementCommit kNone;
  return lastCommit_ ? *lastCommit_ : kNone;
}

// Membership tests in O(1): the places are shared by everyone on the same epoch object.
void Agreement::indexMembers() { places_ = store_->memberPlaces(current_); }

bool Agreement::isMember(const Member& m) const { return places_->count(m) != 0; }

int Agreement::myRank() const {
  const int place = placeOf(self_);
  return place >= 0 && static_cast<size_t>(place) < current_->ranks.size() ? place : -1;
}

// Everyone who votes in this epoch (ranks, then spares) and is not known failed.
std::vector<Member> Agreement::survivors() const {
  std::vector<Member> alive;
  const int voters = static_cast<int>(voterCount());
  alive.reserve(aliveCount());
  for (int p = 0; p < voters; ++p) {
    if (!failed_.count(p)) alive.push_back(voterAt(p));
  }
  return alive;
}

// The first surviving rank in candidate order (coordinatorOrder); spares, in pool order,
// only when no rank is left. O(failures), not O(N).
Member Agreement::coordinator(int64_t* ballot) const {
  int64_t place = 0;
  const Member* found = nullptr;
  const std::vector<Member>& ranks = current_->ranks;
  for (CandidateWalk walk(ranks.size()); !walk.done() && !found; walk.next(), ++place) {
    if (!failed_.count(static_cast<int>(walk.rank()))) found = &ranks[walk.rank()];
  }
  for (size_t i = 0; i < current_->spares.size() && !found; ++i, ++place) {
    if (!failed_.count(static_cast<int>(ranks.size() + i))) found = &current_->spares[i];
  }
  if (ballot != nullptr) *ballot = found ? place - 1 : -1;
  return found ? *found : self_;
}

std::string Agreement::describeWait() const {
  if (state_ == State::kExpelled || state_ == State::kFailed) return why_;
  if (!waiting()) return "no agreement round under way in epoch " + std::to_string(current_->epoch);
  int64_t ballot = -1;
  const Member coord = coordinator(&ballot);
  std::string text = "epoch " + std::to_string(current_->epoch) + ", " +
                     std::to_string(failed_.size()) + " of " + std::to_string(voterCount()) +
                     " processes known failed; ";
  if (coord != self_) {
    return text + "waiting for the coordinator " + coord + " (ballot " + std::to_string(ballot) +
           ") to decide; " + (heardFromCoordinator_ ? "it has answered" : "not heard from it") +
           ", " + std::to_string(stalls_) + " failure timeout(s) without a decision";
  }
  if (proposalBallot_ >= 0) {
    return text + "this process coordinates: its proposal (ballot " +
           std::to_string(proposalBallot_) + ") has " + std::to_string(accepts_.size()) +
           " accept(s), a majority of " + std::to_string(voterCount()) + " is needed";
  }
  std::string missing;
  size_t nMissing = 0;
  for (const Member& m : survivors()) {
    if (reports_.count(placeOf(m))) continue;
    if (nMissing++ < 3) missing += (missing.empty() ? "" : ", ") + m;
  }
  return text + "this process coordinates ballot " + std::to_string(ballot) + ": " +
         std::to_string(nMissing) + " live member(s) have not reported (" + missing +
         (nMissing > 3 ? ", ..." : "") + ")";
}

uint64_t Agreement::progressMark() const {
  const int64_t parts[] = {static_cast<int64_t>(current_->epoch),
                           static_cast<int64_t>(state_),
                           static_cast<int64_t>(failed_.size()),
                           static_cast<int64_t>(reports_.size()),
                           static_cast<int64_t>(accepts_.size()),
                           promised_,
                           acceptedBallot_,
                           proposalBallot_,
                           heardFromCoordinator_ ? 1 : 0};
  uint64_t mark = 0;
  for (int64_t part : parts) mark = mark * 1000003u + static_cast<uint64_t>(part);
  return mark;
}

size_t Agreement::aliveCount() const {
  return current_->ranks.size() + current_->spares.size() - failed_.size();  // failed_ ⊆ members
}

void Agreement::expel(const std::string& why) {
  if (state_ == State::kExpelled || state_ == State::kFailed) return;
  state_ = State::kExpelled;
  why_ = "expelled: " + why;
}

void Agreement::onFailure(const Member& who, bool detectedHere) {
  if (state_ == State::kExpelled || state_ == State::kFailed || who == self_) return;
  const int place = placeOf(who);
  if (place < 0 || failed_.count(place)) return;
  // Who waits on `who` (its relay, its children, the top of the tree if it coordinates),
  // found while it still counts as alive; told below by its detector.
  std::vector<Member> waiting;
  if (detectedHere) waiting = waitingOn(who);
  failed_.insert(place);
  // A spare lost while all ranks are well only leaves the pool: no round, no new epoch
  // (the next decision skips it). During a round it is news like any other.
  if (state_ == State::kStable && contains(current_->spares, who)) return;
  const bool wasStable = state_ == State::kStable;
  state_ = State::kRecovering;
  // News climbs the tree at once, and the coordinator's round tells every member
  // (relays, agreement.h); those that wait on `who` hear from its detector directly
  // (waitingOn: its relay, its children, the coordinator and the candidate after it).
  if (wasStable || coordinator() == self_ || coordinator() != reportedTo_) {
    report();
  } else if (!expelIfMinority()) {
    if (detectedHere) {  // the news climbs with its vote; a notice's reached all anyway
      int64_t ballot = -1;
      coordinator(&ballot);
      vote(/*accepts=*/false, ballot);
    } else {
      passOn(/*force=*/false);  // the tree changed: a new relay, or fewer children
    }
  }
  if (waiting.empty() || state_ != State::kRecovering) return;
  sendNews(waiting);
}

// A round without a ballot: the failures known here, no sign of any coordinator.
void Agreement::sendNews(const std::vector<Member>& to) {
  AgreementVotes news;
  news.epoch = current_->epoch;
  news.round = true;
  news.failed = failed_.ranges();
  const RecoveryMessage wire = news;
  for (const Member& m : to) {
    if (m != self_ && !isFailed(m)) net_->send(m, wire);
  }
}

// A side of a partition that holds no strict majority of the epoch may not go on.
bool Agreement::expelIfMinority() {
  const size_t voters = voterCount();
  const size_t alive = aliveCount();
  if (alive * 2 > voters) return false;
  expel("only " + std::to_string(alive) + " of the " + std::to_string(voters) +
        " processes of epoch " + std::to_string(current_->epoch) +
        " are reachable: not a majority, so this side may not go on");
  return true;
}

// This member's report: its failed set, and the decision it accepted, if any.
AgreementReport Agreement::reportMessage() const {
  AgreementReport m;
  m.epoch = current_->epoch;
  m.failed = failed_.ranges();
  m.ballot = acceptedBallot_;
  m.acceptedFailed = accepted_.failed.ranges();
  m.joined = accepted_.joined;
  m.salt = accepted_.salt;
  return m;
}

// Sends this member's failed set up the relay tree to the coordinator (relays,
// agreement.h); the coordinator records its own, and when it stalls asks each survivor
// it has not heard from, directly (their relay may be the one lost).
void Agreement::report(bool toSilent, bool directly) {
  if (expelIfMinority()) return;
  int64_t ballot = -1;
  Member coord = coordinator(&ballot);
  // The report is a promise to accept no proposal of a lower ballot, and tells what
  // this member accepted (agreement.h, step 4).
  promised_ = std::max(promised_, ballot);
  // Each coordinator gets its own stall budget: without this reset, a member that had
  // already waited out one dead coordinator evicted the next after a single timeout,
  // before that one could gather the reports, and a chain of such evictions ended with
  // a live coordinator declaring every silent member failed (found by ftccl_sim).
  if (coord != reportedTo_) {
    stalls_ = 0;
    heardFromCoordinator_ = false;
  }
  reportedTo_ = coord;
  if (coord == self_) {
    reports_.insert(placeOf(self_));
    startRound(ballot);
    if (toSilent) {
      // Asked once per stall: each ask may bring a report back. A process in a newer
      // epoch answers EXPELLED instead: this one slept through a rebuild.
      RecoveryMessage wire = reportMessage();
      std::get<AgreementReport>(wire).wantsReport = true;
      for (const Member& other : survivors()) {
        const int place = placeOf(other);
        if (other != self_ && !reports_.count(place) && asked_.insert(place)) {
          net_->send(other, wire);
        }
      }
    }
    vote(/*accepts=*/false, ballot);  // the relays below wait for it
    tryDecide();
    return;
  }
  if (directly) net_->send(coord, reportMessage());
  vote(/*accepts=*/false, ballot);
}

void Agreement::onMessage(const Member& from, const RecoveryMessage& m) {
  if (state_ == State::kExpelled || state_ == State::kFailed) return;
  // A round of the next epoch may reach this member before the commit that enters it
  // does (a relay, or a forwarder of the proposal, one hop behind): kept, and handled
  // once the commit is adopted, instead of lost until a stall (at most kMaxEarly).
  const bool ofARound =
      std::holds_alternative<AgreementReport>(m) || std::holds_alternative<AgreementVotes>(m) ||
      std::holds_alternative<AgreementProposal>(m) || std::holds_alternative<AgreementAccept>(m);
  if (ofARound && epochOf(m) == current_->epoch + 1) {
    // A coordinator of the next epoch asking us directly: we missed its commit (and our
    // relay, which would have been answered with it, may be dead). Our report of this
    // epoch makes it send the commit (answerStale).
    const auto* ask = std::get_if<AgreementReport>(&m);
    if (ask != nullptr && ask->wantsReport && isMember(from)) net_->send(from, reportMessage());
    // Bounded in messages and in the ranges they carry (a 1 MiB frame holds 260,000).
    const size_t ranges = std::visit(
        [](const auto& one) -> size_t {
          using T = std::decay_t<decltype(one)>;
          if constexpr (std::is_same_v<T, AgreementReport> || std::is_same_v<T, AgreementVotes>) {
            return one.failed.size() + one.acceptedFailed.size();
          } else if constexpr (std::is_same_v<T, AgreementProposal>) {
            return one.failed.size();
          } else {
            return 0;
          }
        },
        m);
    if (early_.size() < kMaxEarly && earlyRanges_ + ranges <= 4 * voterCount() + 4096) {
      earlyRanges_ += ranges;
      early_.emplace_back(from, m);
    }
    return;
  }
  std::visit([&](const auto& one) { handle(from, one); }, m);
}

// A process of an older epoch. A member of this epoch one behind missed the commit (a
// forwarder died): it gets the commit again. Any other (resumed after SIGSTOP, or cut
// off) is out.
void Agreement::answerStale(const Member& from, uint64_t epoch) {
  // The commit to any member of this epoch, however far behind it seemed: it may have
  // adopted the epoch between (a relay child or a forwarder, not only a coordinator,
  // speaks to it now), and one still two behind expels itself for the missed commit.
  if (lastCommit_ && isMember(from)) {
    net_->send(from, compact(*lastCommit_));
  } else {
    net_->send(from, AgreementExpelled{current_->epoch});
  }
}

void Agreement::handle(const Member& from, const AgreementReport& m) {
  if (m.epoch < current_->epoch) {
    answerStale(from, m.epoch);
    return;
  }
  if (m.epoch > current_->epoch || isFailed(from)) return;
  PlaceSet failed;
  Decision accepted;
  if (!placesIn(m.failed, &failed) || !decisionOf(m.acceptedFailed, m.joined, m.salt, &accepted)) {
    return;  // not this epoch's
  }
  const bool grew = noteFailed(failed);
  reports_.insert(placeOf(from));
  if (m.ballot > reportedBallot_) {  // the highest accepted ballot heard of (tryDecide)
    reportedBallot_ = m.ballot;
    reported_ = std::move(accepted);
  }
  // A report from our coordinator is its sign of life: it is deciding (waiting out
  // silent members, which takes it two stalls), so our stall count starts again.
  // Without this, a member whose count began before the coordinator took over
  // could evict it just before its decision (ftccl_sim, random schedules).
  if (from == coordinator() && from != self_) {
    stalls_ = 0;
    heardFromCoordinator_ = true;
  }
  // Report when the coordinator may lack it: it asks (straight back: our relay may be
  // the one lost), it is new, or the news came from a member that took us for its
  // coordinator (ours may not have it). As the coordinator, only new failures are news.
  const bool coordinating = coordinator() == self_;
  const bool asked = !coordinating && from == coordinator() && m.wantsReport;
  if (state_ == State::kStable || coordinator() != reportedTo_ || asked || grew) {
    state_ = State::kRecovering;
    report(/*toSilent=*/false, /*directly=*/asked);  // may change the coordinator
  } else if (coordinating) {
    tryDecide();
  }
}

void Agreement::handle(const Member& from, const AgreementCommit& m) {
  Decision decision;
  if (m.epoch == current_->epoch + 1) {
    if (!decisionOf(m.failed, m.joined, m.salt, &decision)) return;  // a forged or garbled one
    adopt(decide(decision), /*forward=*/true);
  } else if (m.epoch > current_->epoch + 1) {
    expel("missed the commit of epoch " + std::to_string(current_->epoch + 1) +
          " (received that of epoch " + std::to_string(m.epoch) + ")");
  }
}

void Agreement::handle(const Member& from, const AgreementExpelled& m) {
  if (m.epoch > current_->epoch) {
    expel("the others went on to epoch " + std::to_string(m.epoch) + " without this process");
  }
}

// A sponsor's forward of a newcomer's JOIN (the newcomer's own goes through acceptJoin
// in health, which calls requestJoin).
void Agreement::handle(const Member& from, const JoinRequest& m) {
  if (m.epoch == current_->epoch && m.candidate) requestJoin(*m.candidate);
}

// A member: accepts a proposal unless it promised a later coordinator (one that took
// over from the proposer: the proposer will learn the outcome from it).
void Agreement::handle(const Member& from, const AgreementProposal& m) {
  if (m.epoch < current_->epoch) {
    answerStale(from, m.epoch);
    return;
  }
  if (m.epoch > current_->epoch || !isMember(from)) return;
  // A ballot names a candidate and a failed set names voters: anything else (forged, or
  // garbled) would be spread to every member and could win the promises.
  PlaceSet failed;
  if (m.ballot < 0 || m.ballot >= static_cast<int64_t>(voterCount()) ||
      !placesIn(m.failed, &failed)) {
    return;
  }
  const Member proposer = coordinatorAt(m.ballot);
  // Another copy of the proposal accepted here (a spread reaches each member about
  // log2 N times): its failures were noted and the accept voted with the first. Only the
  // proposer's own ask (a stall) is answered again; the rest would note the failed set
  // again and send the vote up the tree once per copy.
  if (m.ballot == acceptedBallot_ && m.ballot <= spreadProposal_ && from != proposer) {
    if (proposer == coordinator()) {
      stalls_ = 0;
      heardFromCoordinator_ = true;
    }
    return;
  }
  if (m.ballot > spreadProposal_) {  // passed on once (never back to an older ballot)
    spreadProposal_ = m.ballot;
    spread(failed, {}, m);
  }
  noteFailed(failed);  // decided, heard of here first
  if (m.ballot < promised_ || isFailed(proposer)) return;
  promised_ = m.ballot;
  acceptedBallot_ = m.ballot;
  accepted_ = Decision{failed, m.joined, m.salt};
  if (proposer == coordinator()) {  // the coordinator is alive and deciding
    stalls_ = 0;
    heardFromCoordinator_ = true;
  }
  // Straight from the proposer (its first few receivers, or its ask again at a stall,
  // when the tree lost the accept: a relay it evicted as silent that we still wait on),
  // the accept goes straight back too.
  if (from == proposer) net_->send(from, AgreementAccept{current_->epoch, m.ballot});
  vote(/*accepts=*/true, m.ballot);
}

// The coordinator: commits once a strict majority of the epoch accepted its proposal.
void Agreement::handle(const Member& from, const AgreementAccept& m) {
  if (m.epoch != current_->epoch || m.ballot != proposalBallot_ || proposalBallot_ < 0 ||
      !isMember(from)) {
    return;
  }
  accepts_.insert(placeOf(from));
  if (accepts_.size() * 2 <= voterCount()) return;
  const Decision chosen = proposal_;
  adopt(decide(chosen), /*forward=*/true);
}

// The coordinator proposes one decision per epoch: its ballot is fixed (its place in
// coordinator order), and a ballot must never carry two different decisions.
void Agreement::propose(const Decision& decision) {
  // A decision reported by another member may name failures this one has not noted: the
  // copies of its own proposal, which would have told it, are skipped (handle below).
  decision.failed.forEach([&](int p) { noteFailed(voterAt(p)); });
  int64_t ballot = -1;
  coordinator(&ballot);
  proposalBallot_ = ballot;
  proposal_ = decision;
  promised_ = std::max(promised_, ballot);
  acceptedBallot_ = ballot;
  accepted_ = proposal_;
  accepts_.clear();
  accepts_.insert(placeOf(self_));
  spreadProposal_ = ballot;
  sendProposal(/*spreadToAll=*/true);
  if (accepts_.size() * 2 > voterCount()) {
    const Decision chosen = proposal_;
    adopt(decide(chosen), /*forward=*/true);
    return;
  }
  vote(/*accepts=*/true, ballot);  // the relays below wait for it
}

// Spread to all (each receiver passes it on once), or again to those that have not
// accepted, directly.
void Agreement::sendProposal(bool spreadToAll) {
  const RecoveryMessage m =
      AgreementProposal{current_->epoch, proposalBallot_, proposal_.failed.ranges(),
                        proposal_.joined, proposal_.salt};
  if (spreadToAll) {
    spread(proposal_.failed, {}, m);
    return;
  }
  for (const Member& other : survivors()) {
    if (other != self_ && !accepts_.count(placeOf(other))) net_->send(other, m);
  }
}

void Agreement::requestJoin(const JoiningSpare& spare) {
  if (state_ != State::kStable) return;
  if (isMember(spare.key)) return;
  Member coord = coordinator();
  if (coord != self_) {
    net_->send(coord, JoinRequest{current_->epoch, spare, {}});
    return;
  }
  // One proposal per epoch: a join while one is pending is dropped (the newcomer retries).
  if (proposalBallot_ < 0 && !expelIfMinority())
    propose(Decision{failed_, {spare}, freshEpochSalt()});
}

void Agreement::onStalled() {
  if (!waiting()) return;
  ++stalls_;
  const uint64_t epoch = current_->epoch;
  passOn(/*force=*/true);  // what waits for a child that may have died unseen
  // Forced accepts may have reached a majority here: the next epoch's round, if any,
  // starts on its own (its coordinator would otherwise ask every member at once).
  if (current_->epoch != epoch || !waiting()) return;
  if (proposalBallot_ >= 0 && coordinator() == self_) {
    // Waiting for a majority: ask again, directly (lost messages, a lost relay).
    sendProposal(/*spreadToAll=*/false);
    return;
  }
  if (state_ != State::kRecovering) return;
  // The coordinator gives up on silent members at its second stall; a member gives
  // up on its coordinator one stall later, so that a coordinator deciding without a
  // silent member is not itself evicted by members whose timers fired alongside.
  if (coordinator() == self_ && stalls_ >= 2) {
    for (const Member& m : survivors()) {
      if (m != self_ && !reports_.count(placeOf(m))) failed_.insert(placeOf(m));
    }
  } else if (coordinator() != self_ && stalls_ >= 3) {
    failed_.insert(placeOf(coordinator()));
  }
  if (coordinator() == self_) {
    asked_.clear();
    report(/*toSilent=*/true);
  } else if (!heardFromCoordinator_ || coordinator() != reportedTo_) {
    report();  // again: it may have been lost (a coordinator that heard it asks instead)
  }
}

// Coordinator: once every survivor has reported, decide and commit.
void Agreement::tryDecide() {
  if (state_ != State::kRecovering || coordinator() != self_) return;
  if (reports_.size() < aliveCount()) return;  // cheap: some are surely missing
  const int voters = static_cast<int>(voterCount());
  for (int p = 0; p < voters; ++p) {
    if (!reports_.count(p) && !failed_.count(p)) return;  // still waiting for it
  }
  if (proposalBallot_ >= 0) return;  // proposed already: waiting for a majority to accept
  // The decision accepted under the highest ballot, if any member accepted one, may
  // have been committed by a coordinator since lost: it must be the one proposed.
  const Decision decision = reportedBallot_ > acceptedBallot_ ? reported_
                            : acceptedBallot_ >= 0            ? accepted_
                                                   : Decision{failed_, {}, freshEpochSalt()};
  propose(decision);
}

std::shared_ptr<const AgreementCommit> Agreement::decide(const Decision& decision) {
  std::string key = shrink_ ? "s" : "n";
  decision.failed.forEach([&](int p) { key += "|" + voterAt(p); });
  key += "+";
  for (const JoiningSpare& spare : decision.joined) key += "|" + spare.key;
  key += "#";
  key.append(reinterpret_cast<const char*>(decision.salt.data()), decision.salt.size());
  const Membership& current = *current_;
  const bool shrink = shrink_;
  return store_->commit(current_, key, [&] { return decideFrom(current, decision, shrink); });
}

AgreementCommit Agreement::decideFrom(const Membership& current, const Decision& decision,
                                      bool shrink) {
  const PlaceSet& failed = decision.failed;  // places of `current`: ranks, then spares
  const std::vector<JoiningSpare>& added = decision.joined;
  const size_t nRanks = current.ranks.size(), voters = nRanks + current.spares.size();
  AgreementCommit commit;
  commit.salt = decision.salt;
  commit.epoch = current.epoch + 1;
  commit.next.epoch = current.epoch + 1;
  commit.next.lost = current.lost;
  PlaceSet decided;
  failed.forEach([&](int place) {
    const size_t p = static_cast<size_t>(place);
    if (p >= voters) return;
    const Member& f = p < nRanks ? current.ranks[p] : current.spares[p - nRanks];
    decided.insert(place);
    commit.next.lost.push_back(LostMember{commit.next.epoch, f});
  });
  commit.failed = decided.ranges();
  std::vector<Member> pool;
  for (size_t i = 0; i < current.spares.size(); ++i) {
    if (!failed.count(static_cast<int>(nRanks + i))) pool.push_back(current.spares[i]);
  }
  size_t nextSpare = 0;
  std::vector<Member> ranks;
  for (size_t r = 0; r < nRanks; ++r) {
    const Member& m = current.ranks[r];
    if (!failed.count(static_cast<int>(r))) {
      ranks.push_back(m);
      continue;
    }
    commit.failedRanks.push_back(static_cast<int>(r));
    if (nextSpare < pool.size()) {
      ranks.push_back(pool[nextSpare++]);  // the spare takes the failed rank's number
      ++commit.replaced;
    } else if (shrink) {
      commit.shrunk = true;  // dropped: the survivors keep their order, renumbered densely
    } else {
      ranks.clear();  // no spare and no shrink: the communicator ends
      break;
    }
  }
  commit.next.ranks = ranks;
  commit.next.spares.assign(pool.begin() + std::min(nextSpare, pool.size()), pool.end());
  for (const JoiningSpare& spare : added) {
    commit.next.spares.push_back(spare.key);
    commit.joined.push_back(spare);
  }
  return commit;
}

// What travels: the epoch, the failed set and the newcomers; every receiver derives the
// rest from its own copy of the current epoch (decide), so a commit is O(failures)
// bytes, not O(members).
AgreementCommit Agreement::compact(const AgreementCommit& commit) {
  AgreementCommit wire;
  wire.epoch = commit.epoch;
  wire.failed = commit.failed;
  wire.joined = commit.joined;
  wire.salt = commit.salt;
  return wire;
}

void Agreement::adopt(std::shared_ptr<const AgreementCommit> shared, bool forward) {
  const AgreementCommit& commit = *shared;
  net_->onAdopting(commit);
  PlaceSet covered;  // decide() made the commit from this epoch: its places are ours
  placesIn(commit.failed, &covered);
  covered.forEach([&](int p) {
    if (voterAt(p) != self_ && !failedAt(p)) learned_.push_back(voterAt(p));  // without news
  });
  // Failures the commit did not cover (places change with the epoch: names until then).
  std::vector<Member> stillFailed;
  failed_.forEach([&](int p) {
    if (!covered.count(p)) stillFailed.push_back(voterAt(p));
  });
  if (forward) {
    // Everyone who adopts a commit forwards it once, to the members 1, 2, 4, 8, ...
    // places after it in the list of receivers (the same list everywhere): from any
    // member that has it, it reaches all in O(log N) hops with O(log N) sends each, so a
    // coordinator dying mid-commit cannot split the members between two epochs, and a
    // commit costs O(N log N) messages, not O(N^2). Members dropped by a shrink learn it
    // too.
    spread(covered, commit.joined, compact(commit));  // converted once, sent O(log N) times
  }
  lastCommit_ = shared;
  current_ = std::shared_ptr<const Membership>(shared, &shared->next);  // shares the commit
  indexMembers();
  failed_.clear();
  reports_.clear();
  reportedTo_.clear();
  asked_.clear();
  heardFromCoordinator_ = false;
  stalls_ = 0;
  promised_ = acceptedBallot_ = proposalBallot_ = -1;
  accepted_ = proposal_ = Decision{};
  reportedBallot_ = -1;
  reported_ = Decision{};
  accepts_.clear();
  gathered_.clear();
  spreadProposal_ = spreadRound_ = -1;
  spreadRoundFailed_ = 0;
  if (commit.next.ranks.empty()) {
    state_ = State::kFailed;
    why_ = "ranks failed and no spare is left (shrinkWhenNoSpares=0)";
    return;
  }
  if (!isMember(self_)) {  // O(1): a scan of the ranks was O(N) on every member, O(N^2) in all
    expel("not a member of epoch " + std::to_string(current_->epoch));
    return;
  }
  state_ = State::kStable;
  failed_ = placesOf(stillFailed);  // failures the commit did not cover yet
  const bool rankGone = std::any_of(stillFailed.begin(), stillFailed.end(), [&](const Member& f) {
    const int p = placeOf(f);
    return p >= 0 && static_cast<size_t>(p) < current_->ranks.size();
  });
  if (rankGone) {  // a rank of the new epoch is gone: next round
    state_ = State::kRecovering;
    report();
  }
  std::vector<std::pair<Member, RecoveryMessage>> early;
  early.swap(early_);
  earlyRanges_ = 0;
  for (const auto& [from, m] : early) onMessage(from, m);  // those of this epoch are heard now
}

bool Agreement::noteFailed(const Member& m) {
  if (m == self_ || !failed_.insert(placeOf(m))) return false;
  learned_.push_back(m);
  return true;
}

// By places, run by run (the coordinator tells those waiting on what is new: see
// tellWaitingOn): every copy of a round or proposal brings the whole failed set
// again (a rack: 256 places), and a run known already costs one look, where converting
// each place to its name and back cost 7 million set inserts in a 10,000-rank run
// of the rack holding rank 0.
bool Agreement::noteFailed(const PlaceSet& places) {
  const size_t known = learned_.size();
  const int mine = placeOf(self_);
  places.forEachRun([&](uint32_t first, uint32_t end) {
    if (failed_.covers(first, end - first)) return;
    for (uint32_t p = first; p < end; ++p) {
      const int place = static_cast<int>(p);
      if (place == mine || !failed_.insert(place)) continue;
      learned_.push_back(voterAt(place));
    }
  });
  if (learned_.size() == known) return false;
  // Each failure's waiters cost a look at its blocks, and a block of failed places is
  // scanned: O(k^2) for k news at once. Past a rack's worth, the round at the next tick
  // tells everyone instead (O(log N) messages per member).
  const size_t fresh = learned_.size() - known;
  if (fresh <= kTellWaitingMax && coordinator() == self_) {
    tellWaitingOn(std::vector<Member>(learned_.begin() + known, learned_.end()));
  }
  return true;
}

std::vector<Member> Agreement::takeLearnedFailures() {
  std::vector<Member> learned;
  learned.swap(learned_);
  return learned;
}

}  // namespace ftccl
