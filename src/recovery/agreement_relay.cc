// Agreement, relays (agreement.h): the tree over the voters' places that reports and
// accepts climb, what a relay gathers and passes on, what the coordinator counts, and
// the spreading of proposals and commits.
#include <algorithm>
#include <iterator>

#include "recovery/agreement.h"

namespace ftccl {

// ---------------------------------------------------------------------------------
// The tree

int Agreement::placeOf(const Member& m) const {
  auto it = places_->find(m);
  return it == places_->end() ? -1 : it->second;
}

const Member& Agreement::voterAt(int place) const {
  const size_t p = static_cast<size_t>(place), nRanks = current_->ranks.size();
  return p < nRanks ? current_->ranks[p] : current_->spares[p - nRanks];
}

bool Agreement::placesIn(const PlaceRanges& ranges, PlaceSet* places) const {
  places->clear();
  if (ranges.size() % 2 != 0) return false;
  for (size_t i = 0; i < ranges.size(); i += 2) {
    if (uint64_t{ranges[i]} + ranges[i + 1] > voterCount()) return false;
  }
  for (size_t i = 0; i < ranges.size(); i += 2) places->insert(ranges[i], ranges[i + 1]);
  return true;
}

Agreement::PlaceSet Agreement::placesOf(const std::vector<Member>& names) const {
  PlaceSet places;
  for (const Member& m : names) places.insert(placeOf(m));
  return places;
}

// Block `block` of `level` holds places [block * F^level, (block + 1) * F^level).
int Agreement::leaderOf(int level, size_t block) const {
  const size_t n = voterCount();
  size_t span = 1;  // saturates at n: a level past the top is the whole tree
  for (int l = 0; l < level && span < n; ++l) span *= static_cast<size_t>(fanIn_);
  const size_t first = block * span;
  if (first >= n) return -1;
  const size_t end = std::min(n, first + span);
  for (size_t p = first; p < end; ++p) {
    if (!failedAt(static_cast<int>(p))) return static_cast<int>(p);
  }
  return -1;
}

// The relay of the smallest block this place does not lead. A member never counts
// itself failed, so it leads every block whose first live place it is.
int Agreement::parentOf(int place) const {
  const size_t n = voterCount(), p = static_cast<size_t>(place);
  size_t span = 1;
  for (int level = 1;; ++level) {
    span *= static_cast<size_t>(fanIn_);
    const int lead = leaderOf(level, p / span);
    if (lead != place) return lead;
    if (span >= n) return -1;
  }
}

// The relays of the other sub-blocks of every block this place leads.
std::vector<int> Agreement::childrenOf(int place) const {
  std::vector<int> children;
  const size_t n = voterCount(), p = static_cast<size_t>(place), fan = static_cast<size_t>(fanIn_);
  size_t span = 1;
  for (int level = 1; span < n; ++level) {
    const size_t sub = span;
    span *= fan;
    const size_t block = p / span;
    if (leaderOf(level, block) != place) break;
    for (size_t s = block * fan; s < (block + 1) * fan && s * sub < n; ++s) {
      if (s == p / sub) continue;
      const int lead = leaderOf(level - 1, s);
      if (lead >= 0) children.push_back(lead);
    }
  }
  return children;
}

void Agreement::onTick() {
  int64_t ballot = -1;
  if (state_ != State::kRecovering || proposalBallot_ >= 0 || coordinator(&ballot) != self_) return;
  startRound(ballot, /*again=*/true);
}

std::vector<Member> Agreement::waitingOn(const Member& m) {
  std::vector<Member> waiting;
  const int place = placeOf(m);
  if (place < 0) return waiting;
  const int parent = parentOf(place);
  if (parent >= 0) waiting.push_back(voterAt(parent));
  for (int child : childrenOf(place)) waiting.push_back(voterAt(child));
  if (coordinator() == m) {
    const int top = leaderOf(64, 0);  // the relay of all (a level past any tree's top)
    if (top >= 0 && top != place) waiting.push_back(voterAt(top));
  }
  // And the coordinator (the next one, if `m` was it): relays on the way to it may have
  // died with `m` (a host, a rack), unknown to the others yet. And the candidate after
  // it: the coordinator may have died with `m` too, unseen (a rack holding rank 0:
  // every detector's news went to rank 0), and the next one is far away in candidate
  // order, so it gathers the news until it learns it coordinates.
  const bool wasFailed = !failed_.insert(place);
  const Member coord = coordinator();
  waiting.push_back(coord);
  const int coordPlace = placeOf(coord);
  const bool coordWasFailed = !failed_.insert(coordPlace);
  const Member next = coordinator();
  if (next != coord) waiting.push_back(next);
  if (!coordWasFailed) failed_.erase(coordPlace);
  if (!wasFailed) failed_.erase(place);
  return waiting;
}

// The coordinator hears of failures (noteFailed: a detector's news, a relay's votes, a
// report) that those waiting on them may not know of: when a host dies, a detector that
// believes the host's relay alive tells it (dead) and the coordinator only, and the
// relay above waits on a dead child until the round the coordinator's next tick spreads
// (a probe interval: in ftccl_sim a host at 60,000 ranks settled in 10.5 ms, a rack at
// 10,000 in 10.4; now 0.7 and 1.5). The coordinator tells them at once, as a detector
// does (onFailure): each failure's waiters found as if it alone were alive.
void Agreement::tellWaitingOn(const std::vector<Member>& failed) {
  std::vector<Member> waiting;
  for (const Member& m : failed) {
    const int place = placeOf(m);
    failed_.erase(place);
    std::vector<Member> more = waitingOn(m);
    failed_.insert(place);
    waiting.insert(waiting.end(), more.begin(), more.end());
  }
  std::sort(waiting.begin(), waiting.end());
  waiting.erase(std::unique(waiting.begin(), waiting.end()), waiting.end());
  sendNews(waiting);
}

// Ballots number the candidates: the ranks in CandidateWalk order, then the spares.
Member Agreement::coordinatorAt(int64_t ballot) const {
  if (ballot < 0) return self_;
  const std::vector<Member>& ranks = current_->ranks;
  int64_t place = 0;
  for (CandidateWalk walk(ranks.size()); !walk.done(); walk.next(), ++place) {
    if (place == ballot) return ranks[walk.rank()];
  }
  const uint64_t spare = static_cast<uint64_t>(ballot - place);
  return spare < current_->spares.size() ? current_->spares[spare] : self_;
}

// ---------------------------------------------------------------------------------
// Votes up the tree

void Agreement::vote(bool accepts, int64_t ballot) {
  const int me = placeOf(self_);
  if (me < 0) return;
  // Sent again even if nothing changed: a vote is cast when the coordinator may lack it
  // (news, its ask, its proposal again).
  Gathered& g = gathered_[{accepts, ballot}];
  g.places.insert(me);
  g.changed = true;
  if (!accepts) {
    g.failed.insertAll(failed_);
    if (acceptedBallot_ > g.acceptedBallot) {
      g.acceptedBallot = acceptedBallot_;
      g.accepted = accepted_;
    }
  }
  passOn(false);
}

void Agreement::gather(Gathered& g, const AgreementVotes& m, const PlaceSet& failed,
                       const Decision& accepted) {
  for (size_t i = 0; i + 1 < m.places.size(); i += 2) {
    if (g.places.insert(m.places[i], m.places[i + 1]) > 0) g.changed = true;
  }
  const size_t before = g.failed.size();
  g.failed.insertAll(failed);
  if (g.failed.size() > before) g.changed = true;
  if (m.acceptedBallot > g.acceptedBallot) {
    g.acceptedBallot = m.acceptedBallot;
    g.accepted = accepted;
    g.changed = true;
  }
}

AgreementVotes Agreement::votesOf(const Gathered& g, bool accepts, int64_t ballot) const {
  AgreementVotes m;
  m.epoch = current_->epoch;
  m.ballot = ballot;
  m.accepts = accepts;
  m.places = g.places.ranges();
  if (!accepts) {
    m.failed = g.failed.ranges();
    m.acceptedBallot = g.acceptedBallot;
    m.acceptedFailed = g.accepted.failed.ranges();
    m.joined = g.accepted.joined;
    m.salt = g.accepted.salt;
  }
  return m;
}

// A relay waits for its own vote and every child it believes alive: then the coordinator
// gets one message per subtree, not one per member. Forced (a stall), it passes on what
// it has: a child that died unseen must not hold its subtree back for good.
void Agreement::passOn(bool force) {
  const int me = placeOf(self_);
  if (me < 0 || gathered_.empty()) return;
  const int parent = parentOf(me);
  std::vector<int> children;
  bool childrenKnown = false;
  for (auto& [key, g] : gathered_) {
    const auto [accepts, ballot] = key;
    // Its own vote first (an accept needs the proposal), unless forced: a relay that
    // turned a proposal down still passes on its children's accepts at a stall.
    if (!force && !g.places.count(me)) continue;
    const Member to = parent >= 0 ? voterAt(parent) : coordinatorAt(ballot);
    if (!force && !g.changed && to == g.sentTo) continue;
    const bool news = g.failed.size() > g.failedSent;  // failures: on at once
    bool complete = force;
    if (!force) {
      if (!childrenKnown) {
        children = childrenOf(me);
        childrenKnown = true;
      }
      const PlaceSet& have = g.places;  // C++17 lambdas cannot capture a structured binding
      complete = std::all_of(children.begin(), children.end(),
                             [&have](int child) { return have.count(child); });
    }
    if (!complete && !news) continue;
    AgreementVotes votes = votesOf(g, accepts, ballot);
    g.failedSent = g.failed.size();
    if (complete) {
      g.changed = false;
      g.sentTo = to;
    } else {
      // News alone, without the places: a parent counts a child in once the child's
      // place came, so an early partial pass made this subtree look complete there, and
      // each later arrival here went up again (a 1,024-block relay sent the coordinator
      // 33 messages per round instead of 1: O(N / 32) at the top, ftccl_sim).
      votes.places.clear();
    }
    if (parent >= 0) {
      net_->send(to, votes);
      continue;
    }
    votes.toCoordinator = true;
    if (to != self_) {
      net_->send(to, votes);
    } else if (accepts) {
      countAccepts(votes);  // may adopt: gathered_ is then cleared, so stop here
      return;
    } else {
      const PlaceSet failed = g.failed;  // g goes if the count decides (gathered_ cleared)
      const Decision accepted = g.accepted;
      countReports(votes, failed, accepted);
      if (gathered_.empty()) return;
    }
  }
}

void Agreement::handle(const Member& from, const AgreementVotes& m) {
  if (m.epoch < current_->epoch) {
    answerStale(from, m.epoch);
    return;
  }
  if (m.epoch > current_->epoch || !isMember(from) || isFailed(from)) return;
  // A ballot names a candidate (ranks, then spares); a round's news names none.
  if (m.ballot >= static_cast<int64_t>(voterCount()) || (m.ballot < 0 && !m.round)) return;
  PlaceSet failed;
  Decision accepted;
  if (!placesIn(m.failed, &failed)) return;  // not this epoch's
  if (m.round) return handleRound(m, failed);
  for (size_t i = 0; i + 1 < m.places.size(); i += 2) {
    if (uint64_t{m.places[i]} + m.places[i + 1] > voterCount()) return;
  }
  if (!decisionOf(m.acceptedFailed, m.joined, m.salt, &accepted)) return;
  if (m.toCoordinator) {
    if (coordinatorAt(m.ballot) != self_) return;
    m.accepts ? countAccepts(m) : countReports(m, failed, accepted);
    return;
  }
  // News in the failed sets: as from a member's report (agreement.cc), this member joins
  // the round and votes itself; a relay's subtree may have changed too.
  const bool grew = noteFailed(failed);
  gather(gathered_[{m.accepts, m.ballot}], m, failed, accepted);
  if (grew || (state_ == State::kStable && !m.accepts)) {
    state_ = State::kRecovering;
    report();  // votes, and passes on
  } else {
    passOn(false);
  }
}

// The coordinator of m.ballot: the gathered reports count as those members' own.
void Agreement::countReports(const AgreementVotes& m, const PlaceSet& failed,
                             const Decision& accepted) {
  int64_t ballot = -1;
  noteFailed(failed);
  if (expelIfMinority() || coordinator(&ballot) != self_ || ballot != m.ballot) return;
  for (size_t i = 0; i + 1 < m.places.size(); i += 2) reports_.insert(m.places[i], m.places[i + 1]);
  if (m.acceptedBallot > reportedBallot_) {  // the highest accepted ballot heard of
    reportedBallot_ = m.acceptedBallot;
    reported_ = accepted;
  }
  if (state_ == State::kStable) {
    state_ = State::kRecovering;
    report();
  }
  tryDecide();
}

void Agreement::countAccepts(const AgreementVotes& m) {
  if (proposalBallot_ < 0 || m.ballot != proposalBallot_) return;
  for (size_t i = 0; i + 1 < m.places.size(); i += 2) accepts_.insert(m.places[i], m.places[i + 1]);
  if (accepts_.size() * 2 <= voterCount()) return;
  const Decision chosen = proposal_;
  adopt(decide(chosen), /*forward=*/true);
}

// ---------------------------------------------------------------------------------
// Spreading

// Once per ballot, as the coordinator's round begins: every member learns the failures
// it knows of and reports, within O(log N) hops, however many processes detected them.
void Agreement::startRound(int64_t ballot, bool again) {
  if (spreadRound_ == ballot && !(again && failed_.size() > spreadRoundFailed_)) return;
  spreadRound_ = ballot;
  spreadRoundFailed_ = failed_.size();
  AgreementVotes round;
  round.epoch = current_->epoch;
  round.ballot = ballot;
  round.round = true;
  round.failed = failed_.ranges();
  spread(failed_, {}, round);
}

void Agreement::handleRound(const AgreementVotes& m, const PlaceSet& failed) {
  if (m.ballot < 0) {  // a detector's news for those that waited on the failed (onFailure)
    if (!noteFailed(failed)) return;
    if (state_ == State::kStable || coordinator() != reportedTo_ || coordinator() == self_) {
      state_ = State::kRecovering;
      report();
    } else {
      passOn(/*force=*/false);
    }
    return;
  }
  // Another copy of a round handled here (a spread reaches each member about log2 N
  // times), or an older one of the same ballot: one coordinator's failed set only grows,
  // so it names nothing new.
  const bool seen = m.ballot == spreadRound_ && failed.size() <= spreadRoundFailed_;
  bool grew = false;
  if (!seen) {
    // Passed on once per ballot and failed set, never back to an older ballot: copies of
    // two coordinators' rounds in flight must not set each other off again and again.
    if (m.ballot >= spreadRound_) {
      spreadRound_ = m.ballot;
      spreadRoundFailed_ = failed.size();
      spread(failed, {}, m);
    }
    grew = noteFailed(failed);
  }
  const Member coord = coordinator();
  if (coord == coordinatorAt(m.ballot) && coord != self_) {  // a sign of life
    stalls_ = 0;
    heardFromCoordinator_ = true;
  }
  if (state_ == State::kStable || grew || coord != reportedTo_) {
    state_ = State::kRecovering;
    report();
  }
}

void Agreement::spread(const PlaceSet& failed, const std::vector<JoiningSpare>& joined,
                       const RecoveryMessage& m) {
  std::vector<size_t> gone;  // the failed voters' places, ascending
  gone.reserve(failed.size());
  failed.forEach([&](int p) { gone.push_back(static_cast<size_t>(p)); });
  const size_t live = voterCount() - gone.size(), n = live + joined.size();
  // This member's index in the list; one not listed starts from the beginning.
  size_t me = n;
  const int mine = placeOf(self_);
  if (mine >= 0 && !std::binary_search(gone.begin(), gone.end(), static_cast<size_t>(mine))) {
    me = static_cast<size_t>(mine) -
         static_cast<size_t>(std::lower_bound(gone.begin(), gone.end(), static_cast<size_t>(mine)) -
                             gone.begin());
  } else {
    for (size_t j = 0; j < joined.size(); ++j) {
      if (joined[j].key == self_) me = live + j;
    }
  }
  auto receiver = [&](size_t index) -> const Member& {
    if (index >= live) return joined[index - live].key;
    size_t p = index;  // the index-th place not in `gone`
    for (size_t g : gone) {
      if (g > p) break;
      ++p;
    }
    return voterAt(static_cast<int>(p));
  };
  for (size_t step = 1; step < n; step *= 2) net_->send(receiver((me + step) % n), m);
}

}  // namespace ftccl
