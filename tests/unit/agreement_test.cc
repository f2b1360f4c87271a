// The agreement protocol on the simulated network: crashes, failures during agreement,
// a coordinator lost mid-way, partitions, a resumed stale process. After every run the
// invariants hold: all live members agree on one membership and epoch, no failed
// process is a member, no spare is used twice, nobody outside a majority goes on.
#include "recovery/agreement.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "transports/sim/sim_network.h"

namespace ftccl {
namespace {

using namespace std::chrono_literals;
using sim::SimNetwork;
using sim::SimTime;

std::shared_ptr<const Membership> shared(const Membership& m) {
  return std::make_shared<const Membership>(m);
}

class Node final : public sim::SimNode, public AgreementNetwork {
 public:
  Node(SimNetwork& net, const Member& self, const Membership& m, bool shrink)
      : net_(net),
        self_(self),
        agreement(self, shared(m), shrink, this, std::make_shared<EpochStore>()) {
    net.add(self, this);
  }
  void onFrame(const std::string& from, const std::vector<uint8_t>& frame, SimTime) override {
    RecoveryMessage m;
    ASSERT_TRUE(decodeRecoveryMessage(frame, &m));
    agreement.onMessage(from, m);
  }
  void onConnectionLost(const std::string&, SimTime) override {}
  SimTime onTick(SimTime now) override { return now + 1s; }
  void send(const Member& to, const RecoveryMessage& m) override {
    if (drop && drop(to, m)) return;
    net_.send(self_, to, encodeRecoveryMessage(m));
  }

 private:
  SimNetwork& net_;
  Member self_;

 public:
  Agreement agreement;
  // A fault on what this node sends: true drops the message.
  std::function<bool(const Member& to, const RecoveryMessage& m)> drop;
};

bool isCommit(const RecoveryMessage& m) { return std::holds_alternative<AgreementCommit>(m); }

// (epoch, process) of every loss a membership remembers, oldest first.
std::vector<std::pair<uint64_t, std::string>> lostOf(const Membership& m) {
  std::vector<std::pair<uint64_t, std::string>> lost;
  for (const LostMember& l : m.lost) lost.emplace_back(l.epoch, l.key);
  return lost;
}

class Cluster {
 public:
  // fanIn: the relay tree's (small: several levels with a few members).
  Cluster(int ranks, int spares, bool shrink = true, int fanIn = Agreement::kRelayFanIn)
      : net(20us) {
    for (int r = 0; r < ranks; ++r) m.ranks.push_back("p" + std::to_string(r));
    for (int s = 0; s < spares; ++s) m.spares.push_back("s" + std::to_string(s));
    for (auto& k : m.ranks) nodes[k] = std::make_unique<Node>(net, k, m, shrink);
    for (auto& k : m.spares) nodes[k] = std::make_unique<Node>(net, k, m, shrink);
    for (auto& [key, node] : nodes) node->agreement.setRelayFanIn(fanIn);
  }
  // Steps the network until `k` is in `epoch` (at most `limit`).
  void runUntilEpoch(const std::string& k, uint64_t epoch, std::chrono::microseconds limit = 1ms) {
    for (auto spent = 0us; spent < limit && at(k).membership().epoch < epoch; spent += 1us) {
      net.runFor(1us);
    }
  }
  void stallAll() {
    for (auto& [key, node] : nodes) {
      if (!dead.count(key)) node->agreement.onStalled();
    }
  }
  Agreement& at(const std::string& k) { return nodes.at(k)->agreement; }
  // Kill `k`; health tells every live process (each one, a little later).
  void kill(const std::string& k) {
    net.kill(k);
    dead.insert(k);
    tellAll(k);
  }
  void tellAll(const std::string& failed) {
    for (auto& [key, node] : nodes) {
      if (!dead.count(key) && key != failed) node->agreement.onFailure(failed);
    }
  }
  void run() { net.runFor(50ms); }
  // The invariants, over every process still alive and not expelled.
  void checkInvariants(uint64_t epoch) {
    const Membership* agreed = nullptr;
    for (auto& [key, node] : nodes) {
      const Agreement& a = node->agreement;
      if (dead.count(key) || a.state() == Agreement::State::kExpelled) continue;
      EXPECT_EQ(a.state(), Agreement::State::kStable) << key << ": " << a.describeWait();
      if (agreed == nullptr) agreed = &a.membership();
      EXPECT_EQ(a.membership().epoch, epoch) << key;
      EXPECT_EQ(a.membership().ranks, agreed->ranks) << key;
      EXPECT_EQ(a.membership().spares, agreed->spares) << key;
      EXPECT_EQ(lostOf(a.membership()), lostOf(*agreed)) << key;
    }
    ASSERT_NE(agreed, nullptr);
    std::set<std::string> seen;
    for (auto& k : agreed->ranks) {
      EXPECT_FALSE(dead.count(k)) << "failed process " << k << " is a member";
      EXPECT_TRUE(seen.insert(k).second) << k << " used twice";
    }
    for (auto& k : agreed->spares) EXPECT_TRUE(seen.insert(k).second) << k << " used twice";
  }
  SimNetwork net;
  Membership m;
  std::map<std::string, std::unique_ptr<Node>> nodes;
  std::set<std::string> dead;
};

using V = std::vector<std::string>;

TEST(Agreement, OneFailureTakenOverBySpare) {
  Cluster c(4, 1);
  c.kill("p2");
  c.run();
  c.checkInvariants(1);
  EXPECT_EQ(c.at("p0").membership().ranks, (V{"p0", "p1", "s0", "p3"}));
  EXPECT_EQ(c.at("s0").myRank(), 2);
  EXPECT_EQ(c.at("p3").lastCommit().failedRanks, (std::vector<int>{2}));
  EXPECT_EQ(c.at("p3").lastCommit().replaced, 1);
  EXPECT_FALSE(c.at("p3").lastCommit().shrunk);
}

// Each relay passes its subtree's reports up once per round: news of a failure may go
// ahead alone, but without the places, or the parent would count the subtree in and pass
// each later arrival up again (ftccl_sim: a 1,024-block relay sent the coordinator 33
// messages per round, O(N / 32) at the top). Fan-in 4, 64 ranks: three levels.
TEST(Agreement, ARelayPassesItsSubtreeUpOncePerRound) {
  Cluster c(64, 2, /*shrink=*/true, /*fanIn=*/4);
  std::map<std::pair<std::string, std::string>, int> reportsWithPlaces;
  int toCoordinator = 0;
  for (auto& [key, node] : c.nodes) {
    const std::string from = key;
    node->drop = [&, from](const Member& to, const RecoveryMessage& m) {
      const auto* votes = std::get_if<AgreementVotes>(&m);
      if (votes == nullptr || votes->accepts || votes->round) return false;
      if (!votes->places.empty()) ++reportsWithPlaces[{from, to}];
      if (to == "p0") ++toCoordinator;
      return false;
    };
  }
  c.kill("p37");
  c.run();
  c.checkInvariants(1);
  for (const auto& [link, count] : reportsWithPlaces) {
    EXPECT_EQ(count, 1) << link.first << " -> " << link.second;
  }
  // p0 leads a block at every level: 3 children each at the first three, and the spare
  // s0 (place 64) at the fourth; each sends it at most twice (news alone, then the
  // subtree).
  EXPECT_LE(toCoordinator, 2 * 10);
  EXPECT_FALSE(reportsWithPlaces.empty());
}

TEST(Agreement, TwoAtOnceWithTwoSpares) {
  Cluster c(6, 2);
  c.kill("p1");
  c.kill("p4");
  c.run();
  c.checkInvariants(1);
  EXPECT_EQ(c.at("p0").membership().ranks, (V{"p0", "s0", "p2", "p3", "s1", "p5"}));
  EXPECT_TRUE(c.at("p0").membership().spares.empty());
}

TEST(Agreement, TwoWithOneSpareReplaceThenShrink) {
  Cluster c(5, 1);
  c.kill("p1");
  c.kill("p3");
  c.run();
  c.checkInvariants(1);
  EXPECT_EQ(c.at("p4").membership().ranks, (V{"p0", "s0", "p2", "p4"}));
  EXPECT_TRUE(c.at("p4").lastCommit().shrunk);
  EXPECT_EQ(c.at("p4").myRank(), 3) << "renumbered densely, order kept";
}

TEST(Agreement, NoSpareAndNoShrinkEndsTheCommunicator) {
  Cluster c(4, 0, /*shrink=*/false);
  c.kill("p3");
  c.run();
  for (const char* k : {"p0", "p1", "p2"}) {
    EXPECT_EQ(c.at(k).state(), Agreement::State::kFailed) << k;
    EXPECT_NE(c.at(k).why().find("no spare"), std::string::npos);
  }
}

TEST(Agreement, CoordinatorKilledTheNextOneTakesOver) {
  Cluster c(4, 1);
  c.kill("p0");
  c.run();
  c.checkInvariants(1);
  EXPECT_EQ(c.at("p1").membership().ranks, (V{"s0", "p1", "p2", "p3"}));
}

TEST(Agreement, CoordinatorDiesDuringAgreementUnionOfFailures) {
  Cluster c(5, 2);
  c.kill("p3");
  c.net.runFor(10us);  // reports in flight to p0
  c.kill("p0");        // the coordinator dies before deciding
  c.run();
  c.checkInvariants(c.at("p1").membership().epoch);
  const Membership& m = c.at("p1").membership();
  EXPECT_EQ(m.ranks, (V{"s0", "p1", "p2", "s1", "p4"}));
}

// The coordinator reaches only one member with its commit, then dies: that member's
// forward brings everyone else into the same epoch, and the coordinator's death is
// agreed on in the next round (no member is left behind in the old epoch).
TEST(Agreement, CoordinatorDiesMidCommitTheForwardCarriesIt) {
  Cluster c(5, 2);
  c.nodes.at("p0")->drop = [](const Member& to, const RecoveryMessage& m) {
    return isCommit(m) && to != "p1";
  };
  c.kill("p3");
  c.runUntilEpoch("p0", 1);  // p0 commits: its commit gets through to p1 only
  ASSERT_EQ(c.at("p0").membership().epoch, 1u);
  c.kill("p0");  // ... and it dies before anything else
  c.run();
  // p1's forward brought everyone into epoch 1; p0's death was agreed on next.
  c.checkInvariants(2);
  EXPECT_EQ(c.at("p1").membership().ranks, (V{"s1", "p1", "p2", "s0", "p4"}));
}

// The coordinator commits to one member and dies, and that member neither forwards the
// commit nor relays anything of the old epoch (it is in the new one): the next
// coordinator (p4: order p0, p4, p2, p1, p3) starts its round, asks the silent members
// directly at its stalls, hears from p2, s0 and s1 (a majority of 7 with itself), and
// decides. It must commit what p0 committed (every member accepted it and says so in its
// report), not its own view: two different epochs 1 would split the members. Every
// epoch remembers what each commit lost, so one epoch 1 for all shows as one history.
TEST(Agreement, TheNextCoordinatorCommitsWhatTheLostOneMayHaveCommitted) {
  Cluster c(5, 2);
  c.nodes.at("p0")->drop = [](const Member& to, const RecoveryMessage& m) {
    return isCommit(m) && to != "p1";
  };
  c.nodes.at("p1")->drop = [](const Member&, const RecoveryMessage& m) { return isCommit(m); };
  c.kill("p3");
  c.runUntilEpoch("p0", 1);
  ASSERT_EQ(c.at("p0").membership().epoch, 1u);
  c.kill("p0");  // everyone reports to p4, through p1, which relays nothing of epoch 0
  c.run();
  ASSERT_EQ(c.at("p1").membership().epoch, 1u) << "the commit p0 sent before it died";
  EXPECT_EQ(c.at("p4").membership().epoch, 0u) << "waits for its relay until a stall";
  for (int stall = 0; stall < 3; ++stall) {
    c.stallAll();
    c.run();
  }
  ASSERT_GE(c.at("p4").membership().epoch, 1u) << c.at("p4").describeWait();
  const auto lost = lostOf(c.at("p4").membership());
  ASSERT_FALSE(lost.empty());
  EXPECT_EQ(lost.front(), std::make_pair(uint64_t{1}, std::string("p3")))
      << "epoch 1 as p0 committed it: p3 lost, nobody else";
  c.nodes.at("p1")->drop = nullptr;
  for (int round = 0; round < 3; ++round) {  // the rounds on p0's loss
    c.stallAll();
    c.run();
  }
  c.checkInvariants(c.at("p4").membership().epoch);  // p1 too, unless it was evicted
}

// A proposal whose ballot names no candidate (forged or garbled by a member) is neither
// spread nor accepted: accepted, its ballot would outrank every real coordinator's, and
// its decision (here: p0 failed) would be the one the next round must propose.
TEST(Agreement, AProposalOfNoCandidatesBallotIsIgnored) {
  Cluster c(4, 1);
  const RecoveryMessage forged = AgreementProposal{0, 999, {0, 1}, {}, {}};  // p0 failed
  c.net.send("p1", "p2", encodeRecoveryMessage(forged));
  c.net.runFor(1ms);
  c.kill("p3");
  c.run();
  c.checkInvariants(1);
  EXPECT_EQ(c.at("p2").membership().ranks, (V{"p0", "p1", "p2", "s0"}));
}

// Failed sets travel as places of the epoch: a range reaching past its voters (forged,
// garbled, or of another epoch) is refused whole, not taken up to the last voter (here it
// would have failed p3 and the spare s0 too).
TEST(Agreement, AFailedSetPastTheVotersIsIgnored) {
  Cluster c(4, 1);
  AgreementReport forged;
  forged.failed = {3, 5};  // places 3..7 of 5 voters
  c.net.send("p1", "p0", encodeRecoveryMessage(forged));
  AgreementVotes round;
  round.round = true;
  round.ballot = 0;
  round.failed = {3, 5};
  c.net.send("p1", "p2", encodeRecoveryMessage(round));
  c.net.runFor(1ms);
  EXPECT_EQ(c.at("p0").state(), Agreement::State::kStable);
  EXPECT_EQ(c.at("p2").state(), Agreement::State::kStable);
  c.kill("p3");
  c.run();
  c.checkInvariants(1);
  EXPECT_EQ(c.at("p2").membership().ranks, (V{"p0", "p1", "p2", "s0"}));
}

TEST(Agreement, SecondFailureDuringRebuild) {
  Cluster c(6, 2);
  c.kill("p2");
  c.net.runFor(30us);  // first round under way
  c.kill("p5");
  c.run();
  const Membership& m = c.at("p0").membership();
  c.checkInvariants(m.epoch);
  EXPECT_EQ(m.ranks, (V{"p0", "p1", "s0", "p3", "p4", "s1"}));
}

// Each epoch remembers what every commit before it lost, with its epoch: a process told
// only the newest commit acts on each (core/worker_switch.cc) as the others did.
TEST(Agreement, EveryCommitsLossesAreRemembered) {
  Cluster c(4, 2);
  c.kill("p1");
  c.run();
  c.kill("s1");
  c.kill("p3");
  c.run();
  c.checkInvariants(2);
  using Lost = std::vector<std::pair<uint64_t, std::string>>;
  EXPECT_EQ(lostOf(c.at("p0").membership()), (Lost{{1, "p1"}, {2, "p3"}, {2, "s1"}}));
  EXPECT_EQ(c.at("p0").membership().ranks, (V{"p0", "s0", "p2"}));
}

// A spare lost while every rank is well starts no round (the ranks keep working in
// their epoch); the next decision skips it.
TEST(Agreement, SpareKilledWhileWaitingLeavesThePool) {
  Cluster c(3, 2);
  c.kill("s0");
  c.run();
  for (const char* k : {"p0", "p1", "p2", "s1"}) {
    EXPECT_EQ(c.at(k).state(), Agreement::State::kStable) << k;
  }
  EXPECT_EQ(c.net.framesDelivered(), 0u);
  c.checkInvariants(0);
  c.kill("p1");
  c.run();
  c.checkInvariants(1);
  EXPECT_EQ(c.at("p0").membership().ranks, (V{"p0", "s1", "p2"}));
  EXPECT_TRUE(c.at("p0").membership().spares.empty());
}

// A spare that died unseen (no health report) still answers nobody: the coordinator
// gives up on it after two stalls and decides without it.
TEST(Agreement, SpareDeadUnseenIsDroppedAfterStalls) {
  Cluster c(4, 2);
  c.net.kill("s0");
  c.dead.insert("s0");
  c.kill("p2");
  c.run();
  EXPECT_EQ(c.at("p0").state(), Agreement::State::kRecovering);  // waiting for s0
  for (int round = 0; round < 2; ++round) {
    for (auto& [key, node] : c.nodes) {
      if (!c.dead.count(key)) node->agreement.onStalled();
    }
    c.run();
  }
  c.checkInvariants(1);
  EXPECT_EQ(c.at("p0").membership().ranks, (V{"p0", "p1", "s1", "p3"}));
}

// Refilling the pool: a member passes a newcomer's join to the coordinator, which
// commits the same ranks with the newcomer appended to the spares; the next failure
// activates it. A join during a recovery is dropped (the newcomer retries).
TEST(Agreement, JoinedSpareRefillsThePoolAndIsUsed) {
  Cluster c(3, 0);
  c.kill("p1");  // no spare: shrink to p0, p2
  c.run();
  c.checkInvariants(1);
  JoiningSpare newcomer{"j0", "host", 77, {1, 2, 3}};
  c.at("p2").requestJoin(newcomer);  // p2 is not the coordinator: it forwards
  c.run();
  c.checkInvariants(2);
  EXPECT_EQ(c.at("p0").membership().ranks, (V{"p0", "p2"}));
  EXPECT_EQ(c.at("p0").membership().spares, (V{"j0"}));
  EXPECT_TRUE(c.at("p2").lastCommit().failedRanks.empty());
  ASSERT_EQ(c.at("p2").lastCommit().joined.size(), 1u);
  EXPECT_EQ(c.at("p2").lastCommit().joined[0].peerInfo, (std::vector<uint8_t>{1, 2, 3}));
  c.nodes["j0"] = std::make_unique<Node>(c.net, "j0", c.at("p0").membership(), true);
  c.kill("p2");  // p0 and j0 are 2 of the 3 voters: a majority
  c.run();
  c.checkInvariants(3);
  EXPECT_EQ(c.at("p0").membership().ranks, (V{"p0", "j0"}));
  EXPECT_EQ(c.at("j0").myRank(), 1);
}

// A pool-only proposal whose messages are lost is asked again at the coordinator's
// stall (it is stable: nothing else would retry it), and then committed.
TEST(Agreement, LostJoinProposalIsAskedAgain) {
  Cluster c(4, 1);
  for (const char* k : {"p1", "p2", "p3"}) c.net.block("p0", k);
  c.at("p0").requestJoin(JoiningSpare{{"j0", "host", 77}, {}});
  c.run();
  EXPECT_EQ(c.at("p0").membership().epoch, 0u) << "p0 and s0 are 2 of 5: no majority";
  EXPECT_TRUE(c.at("p0").waiting());
  for (const char* k : {"p1", "p2", "p3"}) c.net.unblock("p0", k);
  c.at("p0").onStalled();
  c.run();
  c.checkInvariants(1);
  EXPECT_EQ(c.at("p3").membership().spares, (V{"s0", "j0"}));
  EXPECT_FALSE(c.at("p0").waiting());
}

TEST(Agreement, JoinDuringRecoveryIsDroppedThenAccepted) {
  Cluster c(4, 1);
  c.net.kill("p3");
  c.dead.insert("p3");
  c.at("p0").onFailure("p3");  // only the coordinator knows yet: it is recovering
  JoiningSpare newcomer{"j0", "host", 77, {}};
  c.at("p0").requestJoin(newcomer);
  c.tellAll("p3");
  c.run();
  c.checkInvariants(1);
  EXPECT_EQ(c.at("p0").membership().ranks, (V{"p0", "p1", "p2", "s0"}));
  EXPECT_TRUE(c.at("p0").membership().spares.empty());
  c.at("p1").requestJoin(newcomer);
  c.run();
  c.checkInvariants(2);
  EXPECT_EQ(c.at("p1").membership().spares, (V{"j0"}));
  // Every member took in the pool commit, so a later failure's commit (only the failed
  // set travels) gives the late joiner the same rank everywhere.
  c.nodes["j0"] = std::make_unique<Node>(c.net, "j0", c.at("p0").membership(), true);
  c.kill("p1");
  c.run();
  c.checkInvariants(3);
  EXPECT_EQ(c.at("p0").membership().ranks, (V{"p0", "j0", "p2", "s0"}));
  EXPECT_EQ(c.at("j0").myRank(), 1);
}

// A commit travels as the failed set; a member that reports from the epoch before (it
// missed the commit) is sent the commit again, anyone else from an old epoch EXPELLED.
TEST(Agreement, MemberThatMissedTheCommitGetsItAgain) {
  struct Sent final : AgreementNetwork {
    void send(const Member& to, const RecoveryMessage& m) override { out.push_back({to, m}); }
    std::vector<std::pair<Member, RecoveryMessage>> out;
  } sent;
  Membership before{0, {"p0", "p1", "p2", "p3"}, {"s0"}, {}};
  Agreement coordinator("p0", shared(before), true, &sent, std::make_shared<EpochStore>());
  coordinator.onFailure("p3");  // p0 coordinates: it asks p1, p2, s0 for their view
  for (const char* k : {"p1", "p2", "s0"}) {
    AgreementReport report;
    report.failed = {3, 1};  // p3
    coordinator.onMessage(k, report);
  }
  EXPECT_EQ(coordinator.membership().epoch, 0u) << "committed before a majority accepted";
  AgreementAccept accept;
  accept.ballot = 0;  // p0 is first in coordinator order
  coordinator.onMessage("p1", accept);
  EXPECT_EQ(coordinator.membership().epoch, 0u) << "2 of 5 accepted: not a majority";
  coordinator.onMessage("p2", accept);
  ASSERT_EQ(coordinator.membership().epoch, 1u);
  const AgreementCommit commit = coordinator.lastCommit();
  EXPECT_EQ(commit.next.ranks, (V{"p0", "p1", "p2", "s0"}));
  size_t commits = 0;
  for (const auto& [to, m] : sent.out) {
    const auto* sentCommit = std::get_if<AgreementCommit>(&m);
    if (sentCommit == nullptr) continue;
    ++commits;
    EXPECT_TRUE(sentCommit->next.ranks.empty())
        << "a commit carries the failed set, not the membership";
    EXPECT_EQ(sentCommit->failed, (PlaceRanges{3, 1}));  // p3, as a place of epoch 0
  }
  EXPECT_EQ(commits, 2u);  // 1 and 2 places on among 4 receivers: log2, not all

  // After the rebuild, epoch 1's agreement (entered by that commit) answers a late
  // report from epoch 0 with the commit, and a stranger with EXPELLED.
  Agreement after("p0", shared(commit.next), true, &sent, std::make_shared<EpochStore>(),
                  std::make_shared<const AgreementCommit>(commit));
  sent.out.clear();
  AgreementReport late;
  late.epoch = 0;
  after.onMessage("p2", late);
  after.onMessage("p3", late);
  ASSERT_EQ(sent.out.size(), 2u);
  EXPECT_EQ(sent.out[0].first, "p2");
  EXPECT_TRUE(std::holds_alternative<AgreementCommit>(sent.out[0].second));
  EXPECT_EQ(sent.out[1].first, "p3");
  EXPECT_TRUE(std::holds_alternative<AgreementExpelled>(sent.out[1].second));

  // The member that missed it derives the same epoch from the compact commit.
  Agreement behind("p2", shared(before), true, &sent, std::make_shared<EpochStore>());
  behind.onFailure("p3");
  behind.onMessage("p0", sent.out[0].second);
  EXPECT_EQ(behind.membership().epoch, 1u);
  EXPECT_EQ(behind.membership().ranks, commit.next.ranks);
  EXPECT_EQ(behind.state(), Agreement::State::kStable);
}

// A rebuild that waits on the agreement gives up only when the round stops moving,
// and says what it waited for: the mark moves with every step of the round, not with
// stalls alone, and the description names the coordinator or the missing reports.
TEST(Agreement, AWaitCanTellASlowRoundFromAStuckOneAndSayWhy) {
  struct Quiet final : AgreementNetwork {
    void send(const Member&, const RecoveryMessage&) override {}
  } net;
  Membership epoch0{0, {"p0", "p1", "p2", "p3"}, {"s0"}, {}};
  Agreement member("p2", shared(epoch0), true, &net, std::make_shared<EpochStore>());
  EXPECT_FALSE(member.waiting());
  EXPECT_NE(member.describeWait().find("no agreement round under way"), std::string::npos);
  uint64_t mark = member.progressMark();
  member.onFailure("p3");
  EXPECT_TRUE(member.waiting());
  EXPECT_NE(member.progressMark(), mark) << "a failure learnt is a step";
  EXPECT_NE(member.describeWait().find("waiting for the coordinator p0 (ballot 0)"),
            std::string::npos)
      << member.describeWait();
  mark = member.progressMark();
  member.onStalled();
  member.onStalled();
  EXPECT_EQ(member.progressMark(), mark) << "stalls alone are no progress";
  member.onStalled();  // the third: the silent coordinator is given up, p1... takes over
  EXPECT_NE(member.progressMark(), mark);
  EXPECT_EQ(member.describeWait().find("coordinator p0 "), std::string::npos)
      << member.describeWait();

  Agreement coordinator("p0", shared(epoch0), true, &net, std::make_shared<EpochStore>());
  coordinator.onFailure("p3");
  AgreementReport report;
  report.failed = {3, 1};  // p3
  coordinator.onMessage("p1", report);
  const std::string waits = coordinator.describeWait();
  EXPECT_NE(waits.find("2 live member(s) have not reported (p2, s0)"), std::string::npos) << waits;
}

TEST(Agreement, ThreeFailuresOneAfterAnotherWithThreeSpares) {
  Cluster c(4, 3);
  for (const char* victim : {"p1", "s0", "p3"}) {  // s0 replaced p1, then fails itself
    c.kill(victim);
    c.run();
  }
  c.checkInvariants(3);
  EXPECT_EQ(c.at("p0").membership().ranks, (V{"p0", "s1", "p2", "s2"}));
}

TEST(Agreement, CutOffRankIsExpelledTheRestGoOn) {
  Cluster c(4, 0);
  c.net.cut("p3");
  // The majority sees p3 fail; p3 sees everyone else fail.
  for (const char* k : {"p0", "p1", "p2"}) c.at(k).onFailure("p3");
  for (const char* k : {"p0", "p1", "p2"}) c.at("p3").onFailure(k);
  c.run();
  EXPECT_EQ(c.at("p3").state(), Agreement::State::kExpelled);
  EXPECT_NE(c.at("p3").why().find("majority"), std::string::npos);
  c.dead.insert("p3");  // out of the invariants: it is expelled, not a member
  c.checkInvariants(1);
  EXPECT_EQ(c.at("p0").membership().ranks, (V{"p0", "p1", "p2"}));
}

TEST(Agreement, PartitionTwoPlusTwoNobodyGoesOn) {
  Cluster c(4, 0);
  for (const char* a : {"p0", "p1"}) {
    for (const char* b : {"p2", "p3"}) {
      c.net.block(a, b);
      c.at(a).onFailure(b);
      c.at(b).onFailure(a);
    }
  }
  c.run();
  for (const char* k : {"p0", "p1", "p2", "p3"}) {
    EXPECT_EQ(c.at(k).state(), Agreement::State::kExpelled) << k;
    EXPECT_EQ(c.at(k).membership().epoch, 0u) << k;
  }
}

TEST(Agreement, StoppedRankResumedIntoAnOldEpochIsExpelled) {
  Cluster c(4, 1);
  c.net.stop("p1");
  for (const char* k : {"p0", "p2", "p3", "s0"}) c.at(k).onFailure("p1");
  c.run();
  c.net.resume("p1");
  // Woken up, p1's health finds its neighbours gone silent; its report goes to the
  // coordinator it believes in, already in epoch 1, once its stall ends its wait for the
  // members it would relay for.
  c.at("p1").onFailure("p0");
  c.run();
  c.at("p1").onStalled();
  c.run();
  EXPECT_EQ(c.at("p1").state(), Agreement::State::kExpelled);
  c.dead.insert("p1");
  c.checkInvariants(1);
  EXPECT_EQ(c.at("p2").membership().ranks, (V{"p0", "s0", "p2", "p3"}));
}

TEST(Agreement, MessagesSurviveEncodingAndGarbageIsRejected) {
  AgreementCommit m;
  m.epoch = 7;
  m.failed = {0, 2, 5, 1};
  m.next.epoch = 7;
  m.next.ranks = {"x", "y", "z"};
  m.next.spares = {"s"};
  m.failedRanks = {1, 4};
  m.replaced = 1;
  m.shrunk = true;
  std::vector<uint8_t> f = encodeRecoveryMessage(m);
  RecoveryMessage back;
  ASSERT_TRUE(decodeRecoveryMessage(f, &back));
  ASSERT_TRUE(std::holds_alternative<AgreementCommit>(back));
  EXPECT_EQ(std::get<AgreementCommit>(back).next.ranks, m.next.ranks);
  EXPECT_EQ(std::get<AgreementCommit>(back).failedRanks, m.failedRanks);
  EXPECT_TRUE(std::get<AgreementCommit>(back).shrunk);
  for (size_t cut = 0; cut < f.size(); ++cut) {
    std::vector<uint8_t> shorter(f.begin(), f.begin() + cut);
    EXPECT_FALSE(decodeRecoveryMessage(shorter, &back)) << cut;
  }
  f[0] = 9;
  EXPECT_FALSE(decodeRecoveryMessage(f, &back));
  // A count is checked against the bytes left before anything is allocated: a frame
  // naming a million newcomers (or failed ranks) it does not carry is refused.
  JoinRequest join;
  join.candidate = JoiningSpare{{"s9", "h", 9}, {1, 2}};
  std::vector<uint8_t> forged = encodeRecoveryMessage(join);
  RecoveryMessage decoded;
  ASSERT_TRUE(decodeRecoveryMessage(forged, &decoded));
  // type, epoch, failed (4), next epoch, ranks (4), spares (4), nFailed, replaced,
  // shrunk: then nJoined.
  const size_t nJoinedAt = 1 + 8 + 4 + 8 + 4 + 4 + 4 + 4 + 1;
  const uint32_t million = 1u << 20;
  std::memcpy(forged.data() + nJoinedAt, &million, sizeof(million));
  EXPECT_FALSE(decodeRecoveryMessage(forged, &decoded));
  std::vector<uint8_t> failedRanks = encodeRecoveryMessage(join);
  std::memcpy(failedRanks.data() + 1 + 8 + 4 + 8 + 4 + 4, &million, sizeof(million));
  EXPECT_FALSE(decodeRecoveryMessage(failedRanks, &decoded));
}

}  // namespace
}  // namespace ftccl

namespace ftccl {
namespace {

// Property test: random sizes, spares, shrink policy and crash schedules (crashes at
// random moments, also while an agreement is under way). A majority of the first epoch
// always survives; then every live process must end in one agreed membership, or, when
// ranks outnumber the spares and shrinking is off, every live process must have failed.
// Relay trees of fan-in 2 and 3 (several levels over a few members) as well as the
// default (one level here).
TEST(AgreementProperty, RandomCrashSchedulesKeepTheInvariants) {
  for (uint32_t seed = 1; seed <= 1200; ++seed) {
    std::mt19937 rng(seed);
    int ranks = 2 + static_cast<int>(rng() % 10);
    int spares = static_cast<int>(rng() % 4);
    bool shrink = rng() % 4 != 0;
    const int fanIn = seed % 3 == 0 ? Agreement::kRelayFanIn : 2 + static_cast<int>(seed % 3);
    Cluster c(ranks, spares, shrink, fanIn);
    int maxKills = (ranks + spares - 1) / 2;
    int kills = maxKills == 0 ? 0 : 1 + static_cast<int>(rng() % std::min(maxKills, 3));
    std::vector<std::string> everyone = c.m.ranks;
    everyone.insert(everyone.end(), c.m.spares.begin(), c.m.spares.end());
    std::shuffle(everyone.begin(), everyone.end(), rng);
    int rankKills = 0;
    for (int k = 0; k < kills; ++k) {
      const std::string& victim = everyone[k];
      rankKills += victim[0] == 'p' ? 1 : 0;
      c.kill(victim);
      c.net.runFor(std::chrono::microseconds(rng() % 120));  // maybe mid-agreement
    }
    c.run();
    SCOPED_TRACE("seed " + std::to_string(seed) + ", fan-in " + std::to_string(fanIn) + ": " +
                 std::to_string(ranks) + " ranks, " + std::to_string(spares) + " spares, shrink " +
                 std::to_string(shrink) + ", " + std::to_string(kills) + " kills");
    bool anyFailed = false;
    for (auto& [key, node] : c.nodes) {
      if (c.dead.count(key)) continue;
      EXPECT_NE(node->agreement.state(), Agreement::State::kExpelled)
          << key << ": " << node->agreement.why();
      anyFailed = anyFailed || node->agreement.state() == Agreement::State::kFailed;
    }
    if (anyFailed) {
      EXPECT_FALSE(shrink);
      continue;
    }
    uint64_t epoch = 0;
    for (auto& [key, node] : c.nodes) {
      if (!c.dead.count(key)) epoch = node->agreement.membership().epoch;
    }
    c.checkInvariants(epoch);
    if (HasFailure()) return;  // one failing seed is enough to read
  }
}

}  // namespace
}  // namespace ftccl
