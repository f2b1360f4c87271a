#include "recovery/agreement.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <mutex>
#include <unordered_set>

#include "util/byte_io.h"

namespace ftccl {
namespace {

bool contains(const std::vector<Member>& v, const Member& m) {
  return std::find(v.begin(), v.end(), m) != v.end();
}

// One shared object per (epoch object, derivation): every virtual process of a
// simulation that derives the same thing from the same epoch object gets the same
// instance (DESIGN: one immutable membership per epoch, so 100,000 ranks fit in
// memory). Keys name the epoch object by address; each entry holds that object, so the
// address cannot be reused while the entry exists. Derived objects are held weakly and
// entries whose object is gone are dropped; a real process has a handful.
template <typename T>
class Interned {
 public:
  std::shared_ptr<const T> get(const std::shared_ptr<const Membership>& from,
                               const std::string& derivation, const std::function<T()>& make) {
    const std::string key = std::to_string(reinterpret_cast<uintptr_t>(from.get())) + derivation;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      if (auto alive = it->second.object.lock()) return alive;
    }
    for (auto i = cache_.begin(); i != cache_.end();) {
      i = i->second.object.expired() ? cache_.erase(i) : std::next(i);
    }
    auto made = std::make_shared<const T>(make());
    cache_[key] = Entry{from, made};
    return made;
  }

 private:
  struct Entry {
    std::shared_ptr<const Membership> from;
    std::weak_ptr<const T> object;
  };
  std::mutex mutex_;
  std::map<std::string, Entry> cache_;
};

}  // namespace

std::vector<uint8_t> encodeRecoveryMessage(const RecoveryMessage& m) {
  ByteWriter w;
  w.put(static_cast<uint8_t>(m.type));
  w.put(m.epoch);
  w.putStrings(m.failed);
  w.put(m.next.epoch);
  w.putStrings(m.next.ranks);
  w.putStrings(m.next.spares);
  w.put(static_cast<uint32_t>(m.failedRanks.size()));
  for (int r : m.failedRanks) w.put(static_cast<int32_t>(r));
  w.put(static_cast<int32_t>(m.replaced));
  w.put(static_cast<uint8_t>(m.shrunk));
  w.put(static_cast<uint32_t>(m.joined.size()));
  for (const JoiningSpare& j : m.joined) {
    w.putString(j.key);
    w.putString(j.host);
    w.put(j.pid);
    w.putBlob(j.peerInfo);
  }
  w.putBlob(m.blob);
  return w.bytes();
}

bool decodeRecoveryMessage(const std::vector<uint8_t>& frame, RecoveryMessage* out) {
  ByteReader r(frame);
  RecoveryMessage m;
  uint8_t type = 0, shrunk = 0;
  uint32_t nFailed = 0;
  int32_t replaced = 0;
  if (!r.get(&type) || type < RecoveryMessage::kReport || type > RecoveryMessage::kJoinAccept ||
      !r.get(&m.epoch) || !r.getStrings(&m.failed) || !r.get(&m.next.epoch) ||
      !r.getStrings(&m.next.ranks) || !r.getStrings(&m.next.spares) || !r.get(&nFailed) ||
      nFailed > frame.size()) {
    return false;
  }
  for (uint32_t i = 0; i < nFailed; ++i) {
    int32_t rank = 0;
    if (!r.get(&rank)) return false;
    m.failedRanks.push_back(rank);
  }
  uint32_t nJoined = 0;
  if (!r.get(&replaced) || !r.get(&shrunk) || !r.get(&nJoined) || nJoined > frame.size()) {
    return false;
  }
  m.joined.resize(nJoined);
  for (JoiningSpare& j : m.joined) {
    if (!r.getString(&j.key) || !r.getString(&j.host) || !r.get(&j.pid) ||
        !r.getBlob(&j.peerInfo)) {
      return false;
    }
  }
  if (!r.getBlob(&m.blob) || !r.atEnd()) return false;
  m.type = static_cast<RecoveryMessage::Type>(type);
  m.replaced = replaced;
  m.shrunk = shrunk != 0;
  *out = std::move(m);
  return true;
}

Agreement::Agreement(Member self, Membership current, bool shrinkWhenNoSpares,
                     AgreementNetwork* net, RecoveryMessage enteredBy)
    : Agreement(std::move(self), std::make_shared<const Membership>(std::move(current)),
                shrinkWhenNoSpares, net,
                enteredBy.type == RecoveryMessage::kCommit
                    ? std::make_shared<const RecoveryMessage>(std::move(enteredBy))
                    : nullptr) {}

Agreement::Agreement(Member self, std::shared_ptr<const Membership> current,
                     bool shrinkWhenNoSpares, AgreementNetwork* net,
                     std::shared_ptr<const RecoveryMessage> enteredBy)
    : self_(std::move(self)), current_(std::move(current)), shrink_(shrinkWhenNoSpares), net_(net) {
  if (enteredBy && enteredBy->epoch == current_->epoch) lastCommit_ = std::move(enteredBy);
  indexMembers();
}

const RecoveryMessage& Agreement::lastCommit() const {
  static const RecoveryMessage kNone;
  return lastCommit_ ? *lastCommit_ : kNone;
}

// Membership tests in O(1): the set is shared by everyone on the same epoch object.
void Agreement::indexMembers() {
  static auto* sets = new Interned<std::unordered_set<Member>>;  // never destroyed: safe at exit
  const Membership& m = *current_;
  members_ = sets->get(current_, "", [&m] {
    std::unordered_set<Member> all(m.ranks.begin(), m.ranks.end());
    all.insert(m.spares.begin(), m.spares.end());
    return all;
  });
}

bool Agreement::isMember(const Member& m) const { return members_->count(m) != 0; }

int Agreement::myRank() const {
  auto it = std::find(current_->ranks.begin(), current_->ranks.end(), self_);
  return it == current_->ranks.end() ? -1 : static_cast<int>(it - current_->ranks.begin());
}

// Everyone who votes in this epoch (ranks, then spares) and is not known failed.
std::vector<Member> Agreement::survivors() const {
  std::vector<Member> alive;
  for (const Member& m : current_->ranks) {
    if (!failed_.count(m)) alive.push_back(m);
  }
  for (const Member& m : current_->spares) {
    if (!failed_.count(m)) alive.push_back(m);
  }
  return alive;
}

// The lowest surviving rank; spares only when no rank is left. O(failures), not O(N).
Member Agreement::coordinator() const {
  for (const auto* list : {&current_->ranks, &current_->spares}) {
    for (const Member& m : *list) {
      if (!failed_.count(m)) return m;
    }
  }
  return self_;
}

size_t Agreement::aliveCount() const {
  return current_->ranks.size() + current_->spares.size() - failed_.size();  // failed_ ⊆ members
}

void Agreement::expel(const std::string& why) {
  if (state_ == State::kExpelled || state_ == State::kFailed) return;
  state_ = State::kExpelled;
  why_ = "expelled: " + why;
}

void Agreement::onFailure(const Member& who) {
  if (state_ == State::kExpelled || state_ == State::kFailed || who == self_) return;
  if (!isMember(who)) return;
  if (!failed_.insert(who).second) return;
  // A spare lost while all ranks are well only leaves the pool: no round, no new epoch
  // (the next decision skips it). During a round it is news like any other.
  if (state_ == State::kStable && contains(current_->spares, who)) return;
  state_ = State::kRecovering;
  report();
}

// Sends this member's failed set to the coordinator (itself included). The coordinator
// sends its own to the survivors it has not heard from, or, when it stalls, to all: its
// members then know it is alive and deciding (see onMessage).
void Agreement::report(bool toEveryone) {
  size_t voters = current_->ranks.size() + current_->spares.size();
  const size_t alive = aliveCount();
  if (alive * 2 <= voters) {
    expel("only " + std::to_string(alive) + " of the " + std::to_string(voters) +
          " processes of epoch " + std::to_string(current_->epoch) +
          " are reachable: not a majority, so this side may not go on");
    return;
  }
  Member coord = coordinator();
  RecoveryMessage m;
  m.type = RecoveryMessage::kReport;
  m.epoch = current_->epoch;
  m.failed.assign(failed_.begin(), failed_.end());
  // Each coordinator gets its own stall budget: without this reset, a member that had
  // already waited out one dead coordinator evicted the next after a single timeout,
  // before that one could gather the reports, and a chain of such evictions ended with
  // a live coordinator declaring every silent member failed (found by ftccl_sim).
  if (coord != reportedTo_) stalls_ = 0;
  reportedTo_ = coord;
  if (coord == self_) {
    // The coordinator's own report goes to every survivor it has not heard from: it
    // tells them of the failures and asks for their view (one in a newer epoch
    // answers EXPELLED instead: this process slept through a rebuild).
    reports_[self_] = failed_;
    for (const Member& other : survivors()) {
      if (other != self_ && (toEveryone || !reports_.count(other))) net_->send(other, m);
    }
    tryDecide();
  } else {
    net_->send(coord, m);
  }
}

void Agreement::onMessage(const Member& from, const RecoveryMessage& m) {
  if (state_ == State::kExpelled || state_ == State::kFailed) return;
  switch (m.type) {
    case RecoveryMessage::kReport: {
      if (m.epoch < current_->epoch) {
        // A member of this epoch one behind missed the commit (a forwarder died): it
        // gets the commit again. Any other process from an older epoch (resumed after
        // SIGSTOP, or cut off) is out.
        if (m.epoch + 1 == current_->epoch && lastCommit_ && isMember(from)) {
          net_->send(from, compact(*lastCommit_));
          return;
        }
        RecoveryMessage out;
        out.type = RecoveryMessage::kExpelled;
        out.epoch = current_->epoch;
        net_->send(from, out);
        return;
      }
      if (m.epoch > current_->epoch || failed_.count(from)) return;
      bool grew = false;
      for (const Member& f : m.failed) {
        if (f != self_ && isMember(f)) {
          grew = failed_.insert(f).second || grew;
        }
      }
      reports_[from] = std::set<Member>(m.failed.begin(), m.failed.end());
      // A report from our coordinator is its sign of life: it is deciding (waiting out
      // silent members, which takes it two stalls), so our stall count starts again.
      // Without this, a member whose count began before the coordinator took over
      // could evict it just before its decision (ftccl_sim, random schedules).
      if (from == coordinator() && from != self_) stalls_ = 0;
      if (grew || state_ == State::kStable || from == coordinator()) {
        // New failures, or the coordinator asking for our view: (re)send our report.
        state_ = State::kRecovering;
        report();  // may change the coordinator, or record our own report
      } else if (coordinator() == self_) {
        tryDecide();
      }
      break;
    }
    case RecoveryMessage::kCommit:
      if (m.epoch == current_->epoch + 1) {
        std::set<Member> failed(m.failed.begin(), m.failed.end());
        adopt(decide(failed, m.joined), /*forward=*/true);
      } else if (m.epoch > current_->epoch + 1) {
        expel("missed the commit of epoch " + std::to_string(current_->epoch + 1) +
              " (received that of epoch " + std::to_string(m.epoch) + ")");
      }
      break;
    case RecoveryMessage::kExpelled:
      if (m.epoch > current_->epoch) {
        expel("the others went on to epoch " + std::to_string(m.epoch) + " without this process");
      }
      break;
    case RecoveryMessage::kJoin:
      if (m.epoch == current_->epoch && m.joined.size() == 1) requestJoin(m.joined.front());
      break;
    case RecoveryMessage::kJoinAccept:
      break;  // for the newcomer's core, not for an agreement
  }
}

void Agreement::requestJoin(const JoiningSpare& spare) {
  if (state_ != State::kStable) return;
  if (isMember(spare.key)) return;
  Member coord = coordinator();
  if (coord != self_) {
    RecoveryMessage forward;
    forward.type = RecoveryMessage::kJoin;
    forward.epoch = current_->epoch;
    forward.joined.push_back(spare);
    net_->send(coord, forward);
    return;
  }
  adopt(decide(failed_, {spare}), /*forward=*/true);
}

void Agreement::onStalled() {
  if (state_ != State::kRecovering) return;
  ++stalls_;
  // The coordinator gives up on silent members at its second stall; a member gives
  // up on its coordinator one stall later, so that a coordinator deciding without a
  // silent member is not itself evicted by members whose timers fired alongside.
  if (coordinator() == self_ && stalls_ >= 2) {
    for (const Member& m : survivors()) {
      if (m != self_ && !reports_.count(m)) failed_.insert(m);
    }
  } else if (coordinator() != self_ && stalls_ >= 3) {
    failed_.insert(coordinator());
  }
  reports_.erase(self_);
  report(/*toEveryone=*/coordinator() == self_);
}

// Coordinator: once every survivor has reported, decide and commit.
void Agreement::tryDecide() {
  if (state_ != State::kRecovering || coordinator() != self_) return;
  if (reports_.size() < aliveCount()) return;  // cheap: some are surely missing
  for (const auto* list : {&current_->ranks, &current_->spares}) {
    for (const Member& m : *list) {
      if (!failed_.count(m) && !reports_.count(m)) return;  // still waiting for this one
    }
  }
  adopt(decide(failed_, {}), /*forward=*/true);
}

std::shared_ptr<const RecoveryMessage> Agreement::decide(const std::set<Member>& failed,
                                                         const std::vector<JoiningSpare>& added) {
  static auto* commits = new Interned<RecoveryMessage>;  // never destroyed: safe at exit
  std::string key = shrink_ ? "s" : "n";
  for (const Member& f : failed) key += "|" + f;
  key += "+";
  for (const JoiningSpare& spare : added) key += "|" + spare.key;
  const Membership& current = *current_;
  const bool shrink = shrink_;
  return commits->get(current_, key, [&] { return decideFrom(current, failed, added, shrink); });
}

RecoveryMessage Agreement::decideFrom(const Membership& current, const std::set<Member>& failed,
                                      const std::vector<JoiningSpare>& added, bool shrink) {
  RecoveryMessage commit;
  commit.type = RecoveryMessage::kCommit;
  commit.epoch = current.epoch + 1;
  commit.next.epoch = current.epoch + 1;
  for (const Member& f : failed) {
    if (contains(current.ranks, f) || contains(current.spares, f)) commit.failed.push_back(f);
  }
  std::vector<Member> pool;
  for (const Member& s : current.spares) {
    if (!failed.count(s)) pool.push_back(s);
  }
  size_t nextSpare = 0;
  std::vector<Member> ranks;
  for (size_t r = 0; r < current.ranks.size(); ++r) {
    const Member& m = current.ranks[r];
    if (!failed.count(m)) {
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
RecoveryMessage Agreement::compact(const RecoveryMessage& commit) {
  RecoveryMessage wire;
  wire.type = RecoveryMessage::kCommit;
  wire.epoch = commit.epoch;
  wire.failed = commit.failed;
  wire.joined = commit.joined;
  return wire;
}

void Agreement::adopt(std::shared_ptr<const RecoveryMessage> shared, bool forward) {
  const RecoveryMessage& commit = *shared;
  std::set<Member> stillFailed;
  for (const Member& f : failed_) {
    if (contains(commit.next.ranks, f) || contains(commit.next.spares, f)) stillFailed.insert(f);
  }
  if (forward) {
    // Everyone who adopts a commit forwards it once, to the members 1, 2, 4, 8, ...
    // places after it in the list of receivers (the same list everywhere): from any
    // member that has it, it reaches all in O(log N) hops with O(log N) sends each, so a
    // coordinator dying mid-commit cannot split the members between two epochs, and a
    // commit costs O(N log N) messages, not O(N^2). Members dropped by a shrink learn it
    // too.
    std::set<Member> failed(commit.failed.begin(), commit.failed.end());
    std::vector<Member> to;
    for (const auto* list : {&current_->ranks, &current_->spares}) {
      for (const Member& m : *list) {
        if (!failed.count(m)) to.push_back(m);
      }
    }
    for (const JoiningSpare& spare : commit.joined) to.push_back(spare.key);
    const size_t n = to.size();
    const size_t me = static_cast<size_t>(std::find(to.begin(), to.end(), self_) - to.begin());
    const RecoveryMessage wire = compact(commit);
    for (size_t step = 1; step < n; step *= 2) {
      net_->send(to[(me + step) % n], wire);  // me == n (not listed): from the start
    }
  }
  lastCommit_ = shared;
  current_ = std::shared_ptr<const Membership>(shared, &shared->next);  // shares the commit
  indexMembers();
  failed_.clear();
  reports_.clear();
  stalls_ = 0;
  if (commit.next.ranks.empty()) {
    state_ = State::kFailed;
    why_ = "ranks failed and no spare is left (shrinkWhenNoSpares=0)";
    return;
  }
  if (!contains(current_->ranks, self_) && !contains(current_->spares, self_)) {
    expel("not a member of epoch " + std::to_string(current_->epoch));
    return;
  }
  state_ = State::kStable;
  failed_ = stillFailed;  // failures the commit did not cover yet
  for (const Member& f : stillFailed) {
    if (contains(current_->ranks, f)) {  // a rank of the new epoch is gone: next round
      state_ = State::kRecovering;
      report();
      break;
    }
  }
}

}  // namespace ftccl
