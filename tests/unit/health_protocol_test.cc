// The health protocol on the simulated network (transports/sim): deterministic virtual
// time, faults injected at exact moments, the real HealthProtocol code.
#include "health/health_protocol.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "health/failure_detector.h"
#include "health/health_messages.h"
#include "transports/sim/sim_network.h"

namespace ftccl {
namespace {

using namespace std::chrono_literals;
using sim::SimNetwork;
using sim::SimTime;

constexpr auto kLatency = 50us;
constexpr int kProbeMs = 10;
constexpr int kTimeoutMs = 200;

// One simulated process: the protocol, plus what its communicator was told.
class Process final : public sim::SimNode, public HealthNetwork, public HealthListener {
 public:
  Process(SimNetwork& net, std::string key)
      : net_(net), key_(key), protocol_(key, "simhost", 1000, this) {
    net.add(key, this);
  }
  // SimNode
  void onFrame(const std::string& from, const std::vector<uint8_t>& frame, SimTime now) override {
    HealthMessage m;
    size_t used = 0;
    ASSERT_EQ(decodeHealthMessage(frame.data(), frame.size(), &m, &used), 1);
    protocol_.onMessage(from, m, now);
  }
  void onConnectionLost(const std::string& peer, SimTime now) override {
    protocol_.onConnectionLost(peer, now);
  }
  SimTime onTick(SimTime now) override { return protocol_.onTick(now); }
  // HealthNetwork
  void send(const ProcessKey& to, const HealthMessage& message) override {
    net_.send(key_, to, encodeHealthMessage(message));
  }
  void monitor(const ProcessKey& peer) override { net_.connect(key_, peer); }
  void unmonitor(const ProcessKey& peer) override { net_.disconnect(key_, peer); }
  // HealthListener
  void onMemberFailed(const FailureReport& report) override {
    reports.push_back(report);
    reportedAt.push_back(net_.now());
  }

  void onRebuilt(const std::shared_ptr<const AgreementCommit>& commit) override {
    rebuilt.push_back(*commit);
  }
  void onAllRanksLeft() override { allRanksLeft = true; }
  void onSpareJoined(const JoiningSpare& spare) override { joined.push_back(spare.key); }
  std::vector<uint8_t> joinPackage() override { return {42}; }
  void onJoinAccepted(const JoinAccept& accept, const crypto::Key&) override {
    accepted.push_back(accept);
  }

  HealthProtocol& protocol() { return protocol_; }
  std::vector<FailureReport> reports;
  std::vector<SimTime> reportedAt;
  std::vector<AgreementCommit> rebuilt;
  std::vector<JoinAccept> accepted;
  std::vector<std::string> joined;
  bool allRanksLeft = false;

 private:
  SimNetwork& net_;
  std::string key_;
  HealthProtocol protocol_;
};

std::string keyOf(int rank) { return "10.0.0." + std::to_string(rank) + ":4000"; }

// n processes, one communicator over all, each monitoring its ring neighbours.
class Ring {
 public:
  explicit Ring(int n, uint64_t commKey = 7) : net(kLatency) {
    for (int r = 0; r < n; ++r) procs.push_back(std::make_unique<Process>(net, keyOf(r)));
    for (int r = 0; r < n; ++r)
      ids.push_back(procs[r]->protocol().add(registration(r, n, commKey), net.now()));
  }
  // With links of their own (latency per pair).
  Ring(int n, sim::LinkModel links) : net(std::move(links), /*seed=*/1) {
    for (int r = 0; r < n; ++r) procs.push_back(std::make_unique<Process>(net, keyOf(r)));
    for (int r = 0; r < n; ++r)
      ids.push_back(procs[r]->protocol().add(registration(r, n, 7), net.now()));
  }
  HealthRegistration registration(int rank, int n, uint64_t commKey) {
    HealthRegistration reg;
    reg.commKey = commKey;
    reg.myRank = rank;
    std::vector<MemberInfo> members;
    for (int m = 0; m < n; ++m) members.push_back(MemberInfo{{keyOf(m), "simhost", 1000 + m}, m});
    reg.members = MemberTable::make(std::move(members));
    if (n > 1) reg.monitored.push_back((rank + 1) % n);
    if (n > 2) reg.monitored.push_back((rank + n - 1) % n);
    reg.listener = procs[rank].get();
    reg.probeIntervalMs = kProbeMs;
    reg.failureTimeoutMs = kTimeoutMs;
    return reg;
  }
  double msSince(SimTime t0, SimTime t) const {
    return std::chrono::duration<double, std::milli>(t - t0).count();
  }
  SimNetwork net;
  std::vector<std::unique_ptr<Process>> procs;
  std::vector<HealthProtocol::RegistrationId> ids;
};

TEST(HealthProtocol, HealthyRingNeverSuspectsAnyone) {
  Ring ring(8);
  ring.net.runFor(5s);
  for (auto& p : ring.procs) EXPECT_TRUE(p->reports.empty());
  // Heartbeats flowed and some were acked: round trips of two latencies.
  EXPECT_NEAR(ring.procs[0]->protocol().lastRoundTripMs(keyOf(1)), 0.1, 1e-6);
  // With two ranks each monitors the other: still no suspicion from sparse acks.
  Ring pair(2);
  pair.net.runFor(3s);
  for (auto& p : pair.procs) EXPECT_TRUE(p->reports.empty());
  // Constant probe traffic per process and second: heartbeats from 2 neighbours every
  // 10 ms, plus an ack for one heartbeat in ten.
  EXPECT_NEAR(ring.net.framesDelivered() / 5.0 / 8, 2 * 100 + 2 * 10, 5);
}

TEST(HealthProtocol, CrashReachesEverySurvivorWithinTwoLatencies) {
  Ring ring(8);
  ring.net.runFor(100ms);
  SimTime killed = ring.net.now();
  ring.net.kill(keyOf(3));
  ring.net.runFor(1s);
  for (int r = 0; r < 8; ++r) {
    if (r == 3) continue;
    Process& p = *ring.procs[r];
    ASSERT_EQ(p.reports.size(), 1u) << "rank " << r;
    EXPECT_EQ(p.reports[0].rank, 3);
    EXPECT_EQ(p.reports[0].pid, 1003);
    EXPECT_EQ(p.reports[0].cause, DetectionCause::kConnectionClosed);
    bool neighbour = r == 2 || r == 4;
    EXPECT_EQ(p.reports[0].direct, neighbour) << "rank " << r;
    // Neighbours see the close after one latency; the others get FAILED one later.
    EXPECT_LE(ring.msSince(killed, p.reportedAt[0]), neighbour ? 0.051 : 0.101) << "rank " << r;
  }
}

TEST(HealthProtocol, HangIsSuspectedAfterTheFailureTimeout) {
  Ring ring(6);
  ring.net.runFor(100ms);
  SimTime stopped = ring.net.now();
  ring.net.stop(keyOf(5));
  ring.net.runFor(1s);
  for (int r = 0; r < 5; ++r) {
    Process& p = *ring.procs[r];
    ASSERT_EQ(p.reports.size(), 1u) << "rank " << r;
    EXPECT_EQ(p.reports[0].rank, 5);
    EXPECT_EQ(p.reports[0].cause, DetectionCause::kSilence);
    double ms = ring.msSince(stopped, p.reportedAt[0]);
    EXPECT_GE(ms, kTimeoutMs - kProbeMs) << "rank " << r;
    EXPECT_LE(ms, kTimeoutMs + kProbeMs + 1) << "rank " << r;
  }
}

TEST(HealthProtocol, CutLinkIsSuspectedAndTheCutProcessLearnsItIsAlone) {
  Ring ring(5);
  ring.net.runFor(100ms);
  ring.net.cut(keyOf(2));
  ring.net.runFor(1s);
  for (int r : {0, 1, 3, 4}) {
    ASSERT_EQ(ring.procs[r]->reports.size(), 1u) << "rank " << r;
    EXPECT_EQ(ring.procs[r]->reports[0].rank, 2);
  }
  // The cut process hears no one: it suspects both neighbours and fails its ops.
  std::vector<int> seen;
  for (auto& rep : ring.procs[2]->reports) seen.push_back(rep.rank);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<int>{1, 3}));
}

TEST(HealthProtocol, OrderlyLeaveIsNeverTakenForAFailure) {
  Ring ring(4);
  ring.net.runFor(50ms);
  ring.procs[1]->protocol().remove(ring.ids[1], /*orderly=*/true, ring.net.now());
  ring.net.runFor(1ms);
  ring.net.kill(keyOf(1));  // the process exits after leaving
  ring.net.runFor(1s);
  for (auto& p : ring.procs) EXPECT_TRUE(p->reports.empty());
}

TEST(HealthProtocol, TwoAdjacentCrashesAreBothReportedEverywhere) {
  Ring ring(8);
  ring.net.runFor(50ms);
  ring.net.kill(keyOf(0));
  ring.net.kill(keyOf(1));
  ring.net.runFor(1s);
  for (int r = 2; r < 8; ++r) {
    std::vector<int> seen;
    for (auto& rep : ring.procs[r]->reports) seen.push_back(rep.rank);
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(seen, (std::vector<int>{0, 1})) << "rank " << r;
  }
}

TEST(HealthProtocol, FailureRevokesEveryCommunicatorContainingTheProcess) {
  Ring ring(4);
  // A second communicator {0, 2} (ranks 0 and 1 in it), where nobody monitors rank 3.
  std::vector<HealthRegistration> extra(2);
  for (int i = 0; i < 2; ++i) {
    HealthRegistration& reg = extra[i];
    reg.commKey = 99;
    reg.myRank = i;
    reg.members = MemberTable::make(
        {MemberInfo{{keyOf(0), "simhost", 1000}, 0}, MemberInfo{{keyOf(2), "simhost", 1002}, 1}});
    reg.monitored = {1 - i};
    reg.probeIntervalMs = kProbeMs;
    reg.failureTimeoutMs = kTimeoutMs;
  }
  Process& p0 = *ring.procs[0];
  Process& p2 = *ring.procs[2];
  std::vector<FailureReport> sub0, sub2;
  struct Sink : HealthListener {
    std::vector<FailureReport>* out;
    void onMemberFailed(const FailureReport& r) override { out->push_back(r); }
  } sink0, sink2;
  sink0.out = &sub0;
  sink2.out = &sub2;
  extra[0].listener = &sink0;
  extra[1].listener = &sink2;
  p0.protocol().add(extra[0], ring.net.now());
  p2.protocol().add(extra[1], ring.net.now());
  ring.net.runFor(50ms);
  ring.net.kill(keyOf(2));
  ring.net.runFor(1s);
  // Process 0 detects 2's death via the sub-communicator's monitoring (or a notice)
  // and both of its communicators are told.
  ASSERT_EQ(sub0.size(), 1u);
  EXPECT_EQ(sub0[0].rank, 1);  // rank 1 of the sub-communicator is process 2
  bool bigComm = false;
  for (auto& rep : p0.reports) bigComm = bigComm || rep.rank == 2;
  EXPECT_TRUE(bigComm);
}

// A commit decided before the news of a failure reached its coordinator lists the dead
// process in the new epoch. A member that knew enters it and reports it again, there,
// to members that never heard (chaos seed 7975: nobody did, and a rank waited for good).
// A suspicion whose only source is no member of the new epoch is not repeated.
TEST(HealthProtocol, AFailureKnownBeforeAnEpochIsReportedAgainInIt) {
  Ring ring(6);
  ring.net.runFor(50ms);
  ring.net.kill(keyOf(3));
  ring.net.runFor(1s);
  ASSERT_EQ(ring.procs[1]->reports.size(), 1u);
  // A stale suspicion of 4, from process 5 (which the next epoch no longer lists).
  HealthFailed stale;
  stale.commKey = 7;
  stale.rank = 4;
  stale.failedKey = keyOf(4);
  stale.reporterRank = 5;
  ring.procs[1]->protocol().onMessage(keyOf(5), stale, ring.net.now());
  ASSERT_EQ(ring.procs[1]->reports.size(), 2u);

  // Epoch 1 lists 0-4 and a newcomer (key 6) that never heard of either failure.
  Process late(ring.net, keyOf(6));
  auto epochOne = [&](int rank, HealthListener* listener) {
    HealthRegistration reg = ring.registration(rank, 6, 7);
    reg.epoch = 1;
    std::vector<MemberInfo> members = reg.members->members;
    members[5] = MemberInfo{{keyOf(6), "simhost", 1006}, 5};
    reg.members = MemberTable::make(std::move(members));
    reg.monitored.clear();
    reg.listener = listener;
    return reg;
  };
  late.protocol().add(epochOne(5, &late), ring.net.now());
  ring.net.runFor(10ms);
  EXPECT_TRUE(late.reports.empty());

  Process& p1 = *ring.procs[1];
  p1.protocol().remove(ring.ids[1], /*orderly=*/false, ring.net.now());
  p1.protocol().add(epochOne(1, &p1), ring.net.now());
  ASSERT_EQ(p1.reports.size(), 3u);  // at once, in the new registration
  EXPECT_EQ(p1.reports[2].rank, 3);
  EXPECT_EQ(p1.reports[2].cause, DetectionCause::kConnectionClosed);
  ring.net.runFor(10ms);
  ASSERT_EQ(late.reports.size(), 1u);  // told by process 1, in epoch 1
  EXPECT_EQ(late.reports[0].rank, 3);
  EXPECT_EQ(late.reports[0].detectedBy, 1);
  EXPECT_FALSE(late.reports[0].direct);
}

TEST(HealthProtocol, RankZeroCrashAndLateMonitorOfADeadPeer) {
  Ring ring(3);
  ring.net.runFor(20ms);
  ring.net.kill(keyOf(0));
  ring.net.runFor(500ms);
  EXPECT_EQ(ring.procs[1]->reports.size(), 1u);
  EXPECT_EQ(ring.procs[2]->reports.size(), 1u);
  // A communicator registered after the death: connecting to the dead process fails.
  Process late(ring.net, keyOf(9));
  HealthRegistration reg = ring.registration(0, 3, 11);
  reg.myRank = 1;
  std::vector<MemberInfo> members = reg.members->members;
  members[1].key = keyOf(9);
  reg.members = MemberTable::make(std::move(members));
  reg.monitored = {0};
  reg.listener = &late;
  late.protocol().add(reg, ring.net.now());
  ring.net.runFor(10ms);
  ASSERT_EQ(late.reports.size(), 1u);
  EXPECT_EQ(late.reports[0].cause, DetectionCause::kConnectionClosed);
}

// Ranks and hot spares with the agreement on (recoverable): spare j is probed by rank
// j % nranks and probes it back, as core/ registers them.
class WithSpares {
 public:
  WithSpares(int nranks, int nspares) : net(kLatency) {
    int n = nranks + nspares;
    for (int i = 0; i < n; ++i) procs.push_back(std::make_unique<Process>(net, keyOf(i)));
    for (int i = 0; i < n; ++i) {
      HealthRegistration reg;
      reg.commKey = 7;
      reg.myRank = i;
      std::vector<MemberInfo> members;
      for (int m = 0; m < n; ++m) members.push_back(MemberInfo{{keyOf(m), "simhost", 1000 + m}, m});
      reg.members = MemberTable::make(std::move(members), nranks);
      if (i < nranks) {
        reg.monitored = {(i + 1) % nranks, (i + nranks - 1) % nranks};
        for (int j = i; j < nspares; j += nranks) reg.monitored.push_back(nranks + j);
      } else {
        reg.monitored = {(i - nranks) % nranks};
      }
      reg.listener = procs[i].get();
      reg.probeIntervalMs = kProbeMs;
      reg.failureTimeoutMs = kTimeoutMs;
      reg.recoverable = true;
      ids.push_back(procs[i]->protocol().add(reg, net.now()));
    }
  }
  SimNetwork net;
  std::vector<std::unique_ptr<Process>> procs;
  std::vector<HealthProtocol::RegistrationId> ids;
};

TEST(HealthProtocolSpares, RankCrashActivatesTheSpareSpareCrashOnlyLeavesThePool) {
  WithSpares c(4, 2);
  c.net.runFor(100ms);
  c.net.kill(keyOf(5));  // spare 1 dies while waiting
  c.net.runFor(500ms);
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(c.procs[i]->reports.size(), 1u) << i;
    EXPECT_TRUE(c.procs[i]->reports[0].spare);
    EXPECT_TRUE(c.procs[i]->rebuilt.empty()) << "a lost spare needs no rebuild";
  }
  c.net.kill(keyOf(2));
  c.net.runFor(500ms);
  for (int i : {0, 1, 3, 4}) {
    ASSERT_EQ(c.procs[i]->rebuilt.size(), 1u) << i;
    const Membership& next = c.procs[i]->rebuilt[0].next;
    EXPECT_EQ(next.ranks, (std::vector<std::string>{keyOf(0), keyOf(1), keyOf(4), keyOf(3)}));
    EXPECT_TRUE(next.spares.empty()) << "the dead spare was skipped";
  }
}

// An agreement evicts a member that stays silent towards its coordinator, though others
// see it alive: that conclusion is its communicator's alone. Process 2, cut off from the
// coordinator (process 0) only, is dropped from communicator 7 after rank 3 dies, while
// communicator 99 of processes 1 and 2 (no agreement) and a later one must not take it
// for failed.
TEST(HealthProtocolSpares, AnAgreementsEvictionStaysInItsCommunicator) {
  WithSpares c(4, 1);
  auto pair = [&](uint64_t commKey, int myRank, HealthListener* listener) {
    HealthRegistration reg;
    reg.commKey = commKey;
    reg.myRank = myRank;
    reg.members = MemberTable::make(
        {MemberInfo{{keyOf(1), "simhost", 1001}, 0}, MemberInfo{{keyOf(2), "simhost", 1002}, 1}});
    reg.monitored = {1 - myRank};
    reg.probeIntervalMs = kProbeMs;
    reg.failureTimeoutMs = kTimeoutMs;
    reg.listener = listener;
    return reg;
  };
  struct Sink : HealthListener {
    std::vector<FailureReport> reports;
    void onMemberFailed(const FailureReport& r) override { reports.push_back(r); }
  } other1, other2, later1;
  c.procs[1]->protocol().add(pair(99, 0, &other1), c.net.now());
  c.procs[2]->protocol().add(pair(99, 1, &other2), c.net.now());
  c.net.runFor(100ms);
  c.net.block(keyOf(0), keyOf(2));
  c.net.kill(keyOf(3));
  c.net.runFor(3s);
  bool evicted = false;
  for (const FailureReport& r : c.procs[1]->reports) evicted = evicted || r.rank == 2;
  ASSERT_TRUE(evicted) << "communicator 7 dropped process 2 (silent towards its coordinator)";
  EXPECT_TRUE(other1.reports.empty()) << "communicator 99 was told of 2, alive and watched";
  EXPECT_TRUE(other2.reports.empty());
  c.procs[1]->protocol().add(pair(123, 0, &later1), c.net.now());
  c.net.runFor(100ms);
  EXPECT_TRUE(later1.reports.empty()) << "a later communicator was told of 2";

  // Communicator 7's next registration on process 1 whose table still lists process 2
  // (as an epoch decided before the eviction would) is told at once, in its own
  // numbering: what its agreement learnt carries over to its later epochs. Once no
  // registration of communicator 7 is left, nothing of it is kept.
  auto seven = [&](HealthListener* listener) {
    HealthRegistration reg;
    reg.commKey = 7;
    reg.epoch = 1;
    reg.myRank = 0;
    reg.members = MemberTable::make({MemberInfo{{keyOf(1), "simhost", 1001}, 0},
                                     MemberInfo{{keyOf(4), "simhost", 1004}, 1},
                                     MemberInfo{{keyOf(2), "simhost", 1002}, 2}});
    reg.probeIntervalMs = kProbeMs;
    reg.failureTimeoutMs = kTimeoutMs;
    reg.listener = listener;
    return reg;
  };
  Sink next7, after7;
  const auto nextId = c.procs[1]->protocol().add(seven(&next7), c.net.now());
  ASSERT_EQ(next7.reports.size(), 1u);
  EXPECT_EQ(next7.reports[0].rank, 2);
  c.procs[1]->protocol().remove(nextId, /*orderly=*/false, c.net.now());
  c.procs[1]->protocol().remove(c.ids[1], /*orderly=*/false, c.net.now());
  c.procs[1]->protocol().add(seven(&after7), c.net.now());
  EXPECT_TRUE(after7.reports.empty()) << "kept after its communicator's last registration left";
}

// A spare that joined while the ranks were leaving is an epoch ahead of their LEAVE: it
// must still count them as gone in order, by their keys (their numbers are another
// epoch's), and never take their exits for failures (chaos seed 9088).
TEST(HealthProtocolSpares, ALeaveSentInAnotherEpochStillCounts) {
  WithSpares c(2, 1);
  c.net.runFor(50ms);
  for (int r : {0, 1}) {
    HealthLeave leave;
    leave.commKey = 7;
    leave.epoch = 3;     // not the spare's epoch (0)
    leave.rank = 1 - r;  // numbered as in that other epoch: not to be trusted here
    EXPECT_FALSE(c.procs[2]->allRanksLeft);
    c.procs[2]->protocol().onMessage(keyOf(r), leave, c.net.now());
  }
  EXPECT_TRUE(c.procs[2]->allRanksLeft);
  c.net.kill(keyOf(0));  // the exits close the connections: no failure
  c.net.kill(keyOf(1));
  c.net.runFor(500ms);
  EXPECT_TRUE(c.procs[2]->reports.empty());
  // A LEAVE from a process that is no member here changes nothing.
  WithSpares d(2, 1);
  HealthLeave stranger;
  stranger.commKey = 7;
  stranger.epoch = 3;
  d.procs[2]->protocol().onMessage("127.0.0.1:9", stranger, d.net.now());
  EXPECT_FALSE(d.procs[2]->allRanksLeft);
}

TEST(HealthProtocolSpares, WaitingSparesHearWhenEveryRankLeft) {
  WithSpares c(2, 1);
  c.net.runFor(50ms);
  c.procs[0]->protocol().remove(c.ids[0], /*orderly=*/true, c.net.now());
  c.net.runFor(50ms);
  EXPECT_FALSE(c.procs[2]->allRanksLeft);
  c.procs[1]->protocol().remove(c.ids[1], /*orderly=*/true, c.net.now());
  c.net.runFor(50ms);
  EXPECT_TRUE(c.procs[2]->allRanksLeft);
  EXPECT_TRUE(c.procs[2]->reports.empty());
}

// A newcomer with the right secret joins through rank 1; the ranks are not disturbed
// (no rebuild), everyone learns the newcomer, rank 0 probes it (spare 0 of 3 ranks),
// and the newcomer gets the commit and rank 1's package. A wrong secret is refused.
TEST(HealthProtocolSpares, NewcomerJoinsThePoolWithoutARebuild) {
  WithSpares c(3, 0);
  Process newcomer(c.net, keyOf(9));
  HealthRegistration waiting;
  waiting.commKey = 7;
  waiting.joining = true;
  waiting.listener = &newcomer;
  newcomer.protocol().add(waiting, c.net.now());
  c.procs[1]->protocol().allowJoin(c.ids[1], {1, 2, 3});
  JoinRequest ask;
  ask.candidate = JoiningSpare{{keyOf(9), "simhost", 1009}, {7}};
  ask.secret = {9, 9, 9};
  newcomer.protocol().sendRecovery(keyOf(1), 7, ask);
  c.net.runFor(100ms);
  EXPECT_TRUE(newcomer.accepted.empty()) << "a wrong secret must be refused";
  ask.secret = {1, 2, 3};
  newcomer.protocol().sendRecovery(keyOf(1), 7, ask);
  c.net.runFor(100ms);
  ASSERT_EQ(newcomer.accepted.size(), 1u);
  EXPECT_EQ(newcomer.accepted[0].commit.next.spares, (std::vector<std::string>{keyOf(9)}));
  EXPECT_EQ(newcomer.accepted[0].package, (std::vector<uint8_t>{42}));
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(c.procs[i]->rebuilt.empty()) << i;
    EXPECT_EQ(c.procs[i]->joined, (std::vector<std::string>{keyOf(9)})) << i;
  }
  // Rank 0 now probes the newcomer: its death is reported as a spare's.
  c.net.kill(keyOf(9));
  c.net.runFor(100ms);
  ASSERT_EQ(c.procs[2]->reports.size(), 1u);
  EXPECT_TRUE(c.procs[2]->reports[0].spare);
}

TEST(FailureDetector, SilenceConnectionLossAndLeaving) {
  FailureDetector d(100ms);
  HealthTime t0{};
  d.watch("a", t0);
  d.watch("b", t0);
  d.watch("c", t0);
  d.heard("a", t0 + 90ms);
  auto found = d.tick(t0 + 100ms);  // b and c silent for exactly the timeout
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].peer, "b");
  EXPECT_DOUBLE_EQ(found[0].silentMs, 100.0);
  EXPECT_TRUE(d.tick(t0 + 150ms).empty()) << "each peer is reported once";
  EXPECT_EQ(d.tick(t0 + 190ms).size(), 1u);  // a, 100 ms after it was last heard
  FailureDetector e(100ms);
  e.watch("x", t0);
  e.leaving("x");
  Suspicion s;
  EXPECT_FALSE(e.connectionLost("x", t0 + 1ms, &s)) << "an orderly leaver never fails";
  EXPECT_TRUE(e.tick(t0 + 1s).empty());
  e.watch("y", t0);
  EXPECT_TRUE(e.connectionLost("y", t0 + 5ms, &s));
  EXPECT_EQ(s.cause, DetectionCause::kConnectionClosed);
  EXPECT_FALSE(e.connectionLost("y", t0 + 6ms, &s));
  EXPECT_FALSE(e.connectionLost("unknown", t0, &s));
  e.heard("z", t0);  // unwatched peers are ignored
  EXPECT_FALSE(e.watching("z"));
  EXPECT_GE(d.longestSilenceMs("a"), 90.0);
}

// Records what a protocol sends.
class SentFrames final : public HealthNetwork {
 public:
  void send(const ProcessKey& to, const HealthMessage& message) override {
    sent.push_back(message);
  }
  void monitor(const ProcessKey&) override {}
  void unmonitor(const ProcessKey&) override {}
  std::vector<HealthMessage> sent;
};

// Heartbeats and acks wait unread for the next tick (up to 10 ms): the
// round trip leaves out the wait at both ends, so it measures the network.
TEST(HealthProtocol, RoundTripLeavesOutTheWaitForTicks) {
  SentFrames net;
  HealthProtocol protocol("10.0.0.1:4000", "simhost", 1000, &net);
  HealthTime t0{std::chrono::seconds(5)};
  // It monitors 10.0.0.2 (an ack counts only from a monitored peer, and only of a
  // heartbeat it was sent): our heartbeat leaves at t0.
  HealthRegistration reg;
  reg.myRank = 0;
  reg.members = MemberTable::make({MemberInfo{{"10.0.0.1:4000", "simhost", 1000}, 0},
                                   MemberInfo{{"10.0.0.2:4000", "simhost", 1001}, 1}});
  reg.monitored = {1};
  protocol.add(std::move(reg), t0);
  protocol.onTick(t0);
  ASSERT_FALSE(net.sent.empty());
  ASSERT_NE(net.sent.back().as<HealthHeartbeat>(), nullptr);
  const uint64_t ours = net.sent.back().as<HealthHeartbeat>()->seq;
  net.sent.clear();
  HealthMessage heartbeat = HealthHeartbeat{10, 123, {}};
  heartbeat.waitedNs = 7'000'000;  // sat 7 ms in our socket before this tick read it
  protocol.onMessage("10.0.0.2:4000", heartbeat, t0);
  ASSERT_EQ(net.sent.size(), 1u);
  ASSERT_EQ(net.sent[0].type(), HealthType::kAck);
  EXPECT_EQ(net.sent[0].as<HealthAck>()->sentNs, 123);
  EXPECT_EQ(net.sent[0].as<HealthAck>()->heldNs, 7'000'000);
  // Our heartbeat left at t0, the peer held it 6 ms, its ack sat 13.8 ms in our socket:
  // of the 20 ms until we read it, the network took 0.2.
  HealthMessage ack = HealthAck{
      ours, std::chrono::duration_cast<std::chrono::nanoseconds>(t0.time_since_epoch()).count(),
      6'000'000};
  ack.waitedNs = 13'800'000;
  protocol.onMessage("10.0.0.2:4000", ack, t0 + std::chrono::milliseconds(20));
  EXPECT_NEAR(protocol.lastRoundTripMs("10.0.0.2:4000"), 0.2, 1e-6);
  // The held time survives the wire.
  std::vector<uint8_t> frame = encodeHealthMessage(ack);
  HealthMessage back;
  size_t used = 0;
  ASSERT_EQ(decodeHealthMessage(frame.data(), frame.size(), &back, &used), 1);
  ASSERT_NE(back.as<HealthAck>(), nullptr);
  EXPECT_EQ(back.as<HealthAck>()->heldNs, 6'000'000);
  EXPECT_EQ(back.waitedNs, 0);  // local only
}

TEST(HealthMessages, RoundTripAndCorruptInput) {
  HealthFailed m;
  m.commKey = 0x1234567890abcdefull;
  m.epoch = 3;
  m.rank = 17;
  m.failedKey = "127.0.0.1:999";
  m.cause = 1;
  m.afterMs = 12.5;
  m.reporterRank = 4;
  std::vector<uint8_t> frame = encodeHealthMessage(m);
  HealthMessage back;
  size_t used = 0;
  ASSERT_EQ(decodeHealthMessage(frame.data(), frame.size(), &back, &used), 1);
  EXPECT_EQ(used, frame.size());
  const HealthFailed* failed = back.as<HealthFailed>();
  ASSERT_NE(failed, nullptr);
  EXPECT_EQ(failed->commKey, m.commKey);
  EXPECT_EQ(failed->failedKey, m.failedKey);
  EXPECT_EQ(failed->rank, 17);
  EXPECT_DOUBLE_EQ(failed->afterMs, 12.5);
  for (size_t cut = 0; cut < frame.size(); ++cut) {
    EXPECT_EQ(decodeHealthMessage(frame.data(), cut, &back, &used), 0) << "truncated at " << cut;
  }
  std::vector<uint8_t> bad = frame;
  bad[4] = 77;  // unknown type
  EXPECT_EQ(decodeHealthMessage(bad.data(), bad.size(), &back, &used), -1);
  bad = frame;
  bad[0] = 0xff, bad[1] = 0xff, bad[2] = 0xff;  // absurd length
  EXPECT_EQ(decodeHealthMessage(bad.data(), bad.size(), &back, &used), -1);
  bad = frame;
  bad[0] -= 1;  // length disagrees with the body
  EXPECT_EQ(decodeHealthMessage(bad.data(), bad.size(), &back, &used), -1);
  for (const HealthMessage& x :
       {HealthMessage(HealthHello{"k", "", 0, ""}), HealthMessage(HealthHeartbeat{}),
        HealthMessage(HealthAck{}), HealthMessage(HealthLeave{})}) {
    std::vector<uint8_t> f = encodeHealthMessage(x);
    ASSERT_EQ(decodeHealthMessage(f.data(), f.size(), &back, &used), 1);
    EXPECT_EQ(back.type(), x.type());
  }
}

// A probe datagram is exactly a hello with a key and one heartbeat or ack; anything
// else (another type, a missing key, a cut or padded datagram) is refused.
TEST(HealthMessages, ProbeDatagrams) {
  HealthHello hello;
  hello.senderKey = "10.99.0.2:4242";
  hello.pid = 77;
  std::vector<uint8_t> helloFrame = encodeHealthMessage(hello);
  HealthAck ack;
  ack.seq = 90;
  ack.sentNs = 123456789;
  ack.heldNs = 4000;
  std::vector<uint8_t> datagram = encodeProbe(helloFrame, ack);
  std::string from;
  HealthMessage back;
  ASSERT_TRUE(decodeProbe(datagram.data(), datagram.size(), &from, &back));
  EXPECT_EQ(from, "10.99.0.2:4242");
  const HealthAck* backAck = back.as<HealthAck>();
  ASSERT_NE(backAck, nullptr);
  EXPECT_EQ(backAck->seq, 90u);
  EXPECT_EQ(backAck->sentNs, 123456789);
  EXPECT_EQ(backAck->heldNs, 4000);
  for (size_t cut = 0; cut < datagram.size(); ++cut) {
    EXPECT_FALSE(decodeProbe(datagram.data(), cut, &from, &back)) << "cut at " << cut;
  }
  std::vector<uint8_t> padded = datagram;
  padded.push_back(0);
  EXPECT_FALSE(decodeProbe(padded.data(), padded.size(), &from, &back));
  HealthLeave leave;
  std::vector<uint8_t> notProbe = encodeProbe(helloFrame, leave);
  EXPECT_FALSE(decodeProbe(notProbe.data(), notProbe.size(), &from, &back));
  hello.senderKey.clear();
  std::vector<uint8_t> anonymous = encodeProbe(encodeHealthMessage(hello), ack);
  EXPECT_FALSE(decodeProbe(anonymous.data(), anonymous.size(), &from, &back));
  HealthHeartbeat heartbeat;
  heartbeat.seq = 5;
  std::vector<uint8_t> noHello = encodeHealthMessage(heartbeat);
  EXPECT_FALSE(decodeProbe(noHello.data(), noHello.size(), &from, &back));
}

// Heartbeats carry each rank's op progress. Rank 2 starts every op 20 ms after the
// others: its two ring neighbours flag it, nobody else is flagged, and a progress query
// gets every member's op count.
TEST(HealthProtocol, ALateRankIsFlaggedByItsNeighboursOnly) {
  constexpr int n = 4;
  Ring ring(n);
  std::vector<std::shared_ptr<ProgressBoard>> boards;
  for (int r = 0; r < n; ++r) {
    boards.push_back(std::make_shared<ProgressBoard>(7));
    ring.procs[r]->protocol().remove(ring.ids[r], false, ring.net.now());
    HealthRegistration reg = ring.registration(r, n, 7);
    reg.progress = boards[r];
    ring.ids[r] = ring.procs[r]->protocol().add(std::move(reg), ring.net.now());
  }
  auto ns = [&] { return static_cast<int64_t>(ring.net.now().time_since_epoch().count()); };
  for (int op = 0; op < 80; ++op) {  // 2 s of 25 ms ops
    ring.net.runFor(25ms);
    for (int r = 0; r < n; ++r) {
      boards[r]->begin(0, 1, ns());
      boards[r]->end(true, r == 2 ? 1'000'000 : 21'000'000, ns());
    }
  }
  ring.net.runFor(50ms);
  for (int r = 0; r < n; ++r) {
    for (const PeerHealth& h : ring.procs[r]->protocol().peerHealth(ring.ids[r])) {
      bool neighbourOfLate = h.member == 2 && (r == 1 || r == 3);
      EXPECT_EQ(h.lateness.flagged, neighbourOfLate) << "rank " << r << " on " << h.member;
      EXPECT_TRUE(h.lateness.known) << "rank " << r << " on " << h.member;
      if (neighbourOfLate) {
        EXPECT_NEAR(h.lateness.lateMs, 20.0, 0.5);
      }
      EXPECT_GT(h.roundTrips.samples(), 0u);
    }
  }
  boards[2]->begin(0, 1, ns());  // rank 2 enters op 80 and stays
  ring.procs[0]->protocol().requestProgress(ring.ids[0]);
  ring.net.runFor(1ms);
  std::vector<MemberProgress> table =
      ring.procs[0]->protocol().progressOf(ring.ids[0], ring.net.now());
  ASSERT_EQ(table.size(), static_cast<size_t>(n));
  for (const MemberProgress& m : table) {
    EXPECT_TRUE(m.known) << m.member;
    EXPECT_EQ(m.progress.done, 80u) << m.member;
    EXPECT_EQ(m.progress.inOp, m.member == 2) << m.member;
    EXPECT_LE(m.ageMs, 1.0) << "answered, not the last heartbeat: " << m.member;
    EXPECT_FALSE(m.gone);
  }
  ring.net.kill(keyOf(3));  // a failed member is not waited for
  ring.net.runFor(10ms);
  table = ring.procs[0]->protocol().progressOf(ring.ids[0], ring.net.now());
  EXPECT_TRUE(table[3].gone);
  EXPECT_FALSE(table[1].gone);
}

// A link slow from the first probe (10 ms round trips where the others take 0.1): no past of its
// own to compare with, but far slower than the other links of the same processes.
TEST(HealthProtocol, ALinkSlowFromTheStartIsFlaggedAgainstTheOthers) {
  auto slowPair = [](const std::string& a, const std::string& b) {
    return (a == keyOf(1) && b == keyOf(2)) || (a == keyOf(2) && b == keyOf(1));
  };
  Ring ring(4, [&](const std::string& from, const std::string& to) {
    sim::LinkSpec spec;
    spec.latency =
        slowPair(from, to) ? std::chrono::nanoseconds(5ms) : std::chrono::nanoseconds(kLatency);
    return spec;
  });
  ring.net.runFor(3s);
  for (int r = 0; r < 4; ++r) {
    for (const PeerHealth& h : ring.procs[r]->protocol().peerHealth(ring.ids[r])) {
      bool slow = (r == 1 && h.member == 2) || (r == 2 && h.member == 1);
      EXPECT_EQ(h.degraded, slow) << "rank " << r << " to " << h.member;
      EXPECT_FALSE(ring.procs[r]->protocol().linkDegraded(keyOf(h.member)))
          << "its own best was never better";
    }
  }
}

}  // namespace
}  // namespace ftccl
