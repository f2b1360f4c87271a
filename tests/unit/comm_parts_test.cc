// The communicator's parts alone, without a transport: the op order, the revocation
// state, the recovery inbox and the epoch snapshots.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "core/epoch_state.h"
#include "core/op_order.h"
#include "core/recovery_inbox.h"
#include "core/revocation.h"

namespace ftccl {
namespace {

OpRequest request(OpKind kind, int peer = -1) {
  OpRequest op;
  op.kind = kind;
  op.peer = peer;
  return op;
}

AgreementCommit commitOf(uint64_t epoch) {
  AgreementCommit m;
  m.next.epoch = epoch;
  return m;
}

TEST(OpOrder, NumbersCollectivesAndEachPeersTransfersApartAndRestartsPerEpoch) {
  OpOrder order;
  order.startEpoch(0, 3);
  std::vector<OpRequest> batch{request(OpKind::kAllReduce), request(OpKind::kSend, 2),
                               request(OpKind::kRecv, 2),   request(OpKind::kSend, 2),
                               request(OpKind::kBroadcast), request(OpKind::kSend, 1)};
  OpOrder::Ticket first = order.issue(&batch);
  EXPECT_EQ(first.index, 0u);
  EXPECT_EQ(first.epoch, 0u);
  std::vector<uint32_t> seqs;
  for (const OpRequest& op : batch) seqs.push_back(op.args.opSeq);
  EXPECT_EQ(seqs, (std::vector<uint32_t>{0, 0, 0, 1, 1, 0}));
  EXPECT_EQ(order.collectivesIssued(), 2u);

  order.startEpoch(4, 2);
  std::vector<OpRequest> next{request(OpKind::kReduce), request(OpKind::kSend, 1)};
  OpOrder::Ticket second = order.issue(&next);
  EXPECT_EQ(second.index, 1u);  // the order goes on across epochs
  EXPECT_EQ(second.epoch, 4u);
  EXPECT_EQ(next[0].args.opSeq, 0u);
  EXPECT_EQ(next[1].args.opSeq, 0u);
}

TEST(OpOrder, TicketsRunInIssueOrderWhateverThreadWaits) {
  OpOrder order;
  order.startEpoch(0, 1);
  std::vector<OpRequest> a{request(OpKind::kAllReduce)}, b{request(OpKind::kAllReduce)};
  OpOrder::Ticket t0 = order.issue(&a), t1 = order.issue(&b);
  std::atomic<int> ran{0};
  std::thread later([&] {
    EXPECT_TRUE(order.awaitTurn(t1, [] { return false; }));
    EXPECT_EQ(ran.load(), 1);  // ticket 0 finished first
    ran = 2;
    order.finish(t1);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(ran.load(), 0);
  EXPECT_TRUE(order.awaitTurn(t0, [] { return false; }));
  ran = 1;
  order.finish(t0);
  later.join();
  EXPECT_EQ(ran.load(), 2);
  order.awaitAllRun([] { return false; });  // returns: everything issued ran
}

TEST(OpOrder, AStopWakesWaitersWhoseTurnNeverComes) {
  OpOrder order;
  order.startEpoch(0, 1);
  std::vector<OpRequest> a{request(OpKind::kAllReduce)}, b{request(OpKind::kAllReduce)};
  order.issue(&a);
  OpOrder::Ticket t1 = order.issue(&b);
  std::atomic<bool> stop{false};
  std::atomic<bool> turn{true};
  std::thread waiter([&] { turn = order.awaitTurn(t1, [&] { return stop.load(); }); });
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  stop = true;
  order.wakeAll();
  waiter.join();
  EXPECT_FALSE(turn.load());
}

TEST(OpOrder, TheLastOfReleaseAndGroupHoldFrees) {
  OpOrder order;
  order.holdForGroup();
  EXPECT_FALSE(order.markReleased());  // a group still holds it
  EXPECT_TRUE(order.isReleased());
  EXPECT_TRUE(order.releaseGroupHold());  // the last hold of a released object frees it
  OpOrder unheld;
  EXPECT_TRUE(unheld.markReleased());
}

// Abort and destroy wait for calls in progress, then free the order: the wait returns
// only once every user has left, whether a user leaves before the waiter counts itself
// in, while it does or after it sleeps, and no leave touches the object once it may be
// freed (freed at once here, as destroy does; ASan would see a late touch).
TEST(OpOrder, AwaitUnusedReturnsOnlyAfterEveryUserLeft) {
  for (int round = 0; round < 300; ++round) {
    auto order = std::make_unique<OpOrder>();
    OpOrder* shared = order.get();
    constexpr int kUsers = 3;
    std::atomic<int> stillIn{kUsers};
    for (int u = 0; u < kUsers; ++u) order->enter();
    std::vector<std::thread> users;
    for (int u = 0; u < kUsers; ++u) {
      users.emplace_back([&, u] {
        // Rounds spread the leaves around the waiter's start: none, a yield, a sleep.
        if ((round + u) % 3 == 1) std::this_thread::yield();
        if ((round + u) % 3 == 2) std::this_thread::sleep_for(std::chrono::microseconds(200));
        stillIn.fetch_sub(1);
        shared->leave();
      });
    }
    order->awaitUnused();
    EXPECT_EQ(stillIn.load(), 0) << "round " << round;
    order.reset();  // what destroy does next
    for (std::thread& t : users) t.join();
  }
}

TEST(Revocation, TheFirstCauseWinsUntilTheNextEpoch) {
  Revocation revocation;
  EXPECT_FALSE(revocation.revoked());
  EXPECT_TRUE(revocation.revoke(remoteError("rank 1 failed")));
  EXPECT_FALSE(revocation.revoke(timeoutError("later")));
  EXPECT_EQ(revocation.error(), ftcclRemoteError);
  EXPECT_EQ(revocation.reason(), "rank 1 failed");
  EXPECT_EQ(revocation.lastError(), "communicator revoked: rank 1 failed");
  EXPECT_EQ(revocation.status("ftcclAllReduce").message(),
            "ftcclAllReduce: the communicator is revoked: rank 1 failed");
  revocation.startEpoch(1);
  EXPECT_FALSE(revocation.revoked());
  EXPECT_EQ(revocation.lastError(), "");
}

TEST(Revocation, NewsOfAnEpochLeftRevokesNothing) {
  Revocation revocation;
  revocation.startEpoch(3);
  EXPECT_FALSE(revocation.revoke(remoteError("rank 2 failed in epoch 2"), 2));
  EXPECT_FALSE(revocation.revoked());
  EXPECT_TRUE(revocation.revoke(remoteError("rank 2 failed in epoch 3"), 3));
  EXPECT_TRUE(revocation.revoked());
}

TEST(RecoveryInbox, CommitsAreEnteredOldestFirstAndNeverTwice) {
  RecoveryInbox inbox;
  EXPECT_TRUE(inbox.tellCommit(commitOf(2), /*entered=*/1));
  EXPECT_TRUE(inbox.tellCommit(commitOf(3), 1));
  EXPECT_FALSE(inbox.tellCommit(commitOf(3), 1));  // told again by the other registration
  EXPECT_FALSE(inbox.tellCommit(commitOf(1), 1));  // the epoch this process is in
  auto never = [] { return false; };
  auto view = [] { return HealthProtocol::AgreementView{}; };
  AgreementCommit commit;
  ASSERT_TRUE(inbox.awaitDecision("test", false, 10, never, view, &commit).isOk());
  EXPECT_EQ(commit.next.epoch, 2u);
  AgreementCommit newer;
  ASSERT_TRUE(inbox.takeNewer(2, &newer));
  EXPECT_EQ(newer.next.epoch, 3u);
  EXPECT_FALSE(inbox.takeNewer(3, &newer));
}

TEST(RecoveryInbox, ANewerCommitSkipsOnlyWhatWasEntered) {
  RecoveryInbox inbox;
  inbox.tellCommit(commitOf(2), 1);
  inbox.tellCommit(commitOf(3), 1);
  inbox.tellCommit(commitOf(4), 1);
  AgreementCommit newer;
  ASSERT_TRUE(inbox.takeNewer(3, &newer));  // 2 and 3 were entered by then
  EXPECT_EQ(newer.next.epoch, 4u);
}

TEST(RecoveryInbox, AStuckRoundEndsTheWaitAndSaysWhy) {
  RecoveryInbox inbox;
  auto never = [] { return false; };
  auto stuck = [] {
    HealthProtocol::AgreementView v;
    v.waiting = true;
    v.mark = 7;
    v.description = "waiting for the coordinator";
    return v;
  };
  AgreementCommit commit;
  Status st = inbox.awaitDecision("ftcclCommRebuild", false, 10, never, stuck, &commit);
  EXPECT_EQ(st.code(), ftcclTimeout) << st.message();
  EXPECT_NE(st.message().find("waiting for the coordinator"), std::string::npos);
}

TEST(RecoveryInbox, EndsOfRecoveryReachTheWaiter) {
  auto never = [] { return false; };
  auto view = [] { return HealthProtocol::AgreementView{}; };
  AgreementCommit commit;
  RecoveryInbox left;
  left.tellAllRanksLeft();
  EXPECT_EQ(left.awaitDecision("standby", true, 10, never, view, &commit).code(), ftcclInProgress);
  RecoveryInbox failed;
  failed.tellFailed("no spare left");
  Status st = failed.awaitDecision("rebuild", false, 10, never, view, &commit);
  EXPECT_EQ(st.code(), ftcclRemoteError);
  EXPECT_EQ(st.message(), "cannot rebuild: no spare left");
  RecoveryInbox aborted;
  std::atomic<bool> abort{false};
  std::thread waiter([&] {
    Status s = aborted.awaitDecision(
        "rebuild", true, 1000, [&] { return abort.load(); }, view, &commit);
    EXPECT_EQ(s.code(), ftcclInvalidUsage);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  abort = true;
  aborted.wake();
  waiter.join();
}

TEST(RecoveryInbox, ANewcomerIsQueuedOnceAndOnlyIfUnknown) {
  RecoveryInbox inbox;
  PeerInfo known, fresh;
  known.key = "127.0.0.1:1";
  fresh.key = "127.0.0.1:2";
  inbox.addJoined(known, {known});
  inbox.addJoined(fresh, {known});
  inbox.addJoined(fresh, {known});
  ASSERT_EQ(inbox.joined().size(), 1u);
  EXPECT_EQ(inbox.takeJoined()[0].key, "127.0.0.1:2");
  EXPECT_TRUE(inbox.joined().empty());
}

TEST(EpochState, ReadersKeepTheirSnapshotWhileTheNextIsPublished) {
  EpochState state;
  EXPECT_EQ(state.current()->nranks(), 0);
  auto first = std::make_shared<EpochView>();
  first->epoch = 0;
  first->worldOf = {0, 1, 2};
  first->rank = 1;
  state.publish(first);
  std::shared_ptr<const EpochView> held = state.current();
  auto second = std::make_shared<EpochView>();
  second->epoch = 1;
  second->worldOf = {0, 2};
  second->rank = -1;
  state.publish(second);
  EXPECT_EQ(held->nranks(), 3);
  EXPECT_EQ(held->rankOfWorld(2), 2);
  EXPECT_EQ(state.nranks(), 2);
  EXPECT_EQ(state.rank(), -1);
  EXPECT_EQ(state.epoch(), 1u);
  EXPECT_EQ(state.current()->rankOfWorld(2), 1);
  EXPECT_EQ(state.current()->rankOfWorld(1), -1);
}

}  // namespace
}  // namespace ftccl
