// The observability pieces on their own: the straggler detector, the progress board,
// round-trip percentiles, the stats JSON and the progress carried by heartbeats.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "health/health_messages.h"
#include "health/link_quality.h"
#include "stats/lateness.h"
#include "stats/progress_board.h"
#include "stats/stats_file.h"
#include "stats/stats_json.h"

namespace ftccl {
namespace {

using namespace std::chrono_literals;
using Time = LatenessTracker::Time;

// Two ranks' summed waits over `ops` ops of which the peer starts each `lateMs` after
// this rank; both spend `opMs` in the op proper. One op per `periodMs`.
struct Pair {
  LatenessTracker tracker{5.0};
  ProgressBoard mine{1};
  uint64_t done = 0, peerWaitUs = 0;
  Time now{};
  std::vector<LatenessTracker::Change> run(int ops, double lateMs, double opMs, int periodMs) {
    std::vector<LatenessTracker::Change> all;
    for (int i = 0; i < ops; ++i) {
      now += std::chrono::milliseconds(periodMs);
      mine.begin(0, 1, 0);
      mine.end(true, static_cast<uint64_t>((lateMs + opMs) * 1e6), 0);
      ++done;
      peerWaitUs += static_cast<uint64_t>(opMs * 1000);
      tracker.sample(7, done, peerWaitUs);
      auto changes =
          tracker.evaluate(now, [&](uint64_t d, uint64_t* w) { return mine.waitAt(d, w); });
      all.insert(all.end(), changes.begin(), changes.end());
    }
    return all;
  }
};

TEST(Lateness, APeerThatKeepsArrivingLateIsFlaggedThenCleared) {
  Pair p;
  EXPECT_TRUE(p.run(40, 0.2, 1.0, 25).empty()) << "on time: no verdict";  // 1 s
  EXPECT_FALSE(p.tracker.view(7).flagged);
  // 20 ms late per op: flagged after two late windows (0.5 to 0.75 s), once.
  auto changes = p.run(40, 20.0, 1.0, 25);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_TRUE(changes[0].late);
  EXPECT_NEAR(changes[0].lateMs, 20.0, 0.1);
  EXPECT_NEAR(changes[0].waitMs, 21.0, 0.1);
  EXPECT_TRUE(p.tracker.view(7).flagged);
  EXPECT_EQ(p.tracker.flagged(), std::vector<int>{7});
  // On time again: cleared once.
  changes = p.run(40, 0.1, 1.0, 25);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_FALSE(changes[0].late);
  EXPECT_TRUE(p.tracker.flagged().empty());
}

TEST(Lateness, SmallOrOccasionalLatenessIsNoStraggler) {
  Pair p;
  // 3 ms late: under the 5 ms floor.
  EXPECT_TRUE(p.run(80, 3.0, 1.0, 25).empty());
  // 10 ms late, but the op itself takes 30 ms: waiting is not most of this rank's time.
  EXPECT_TRUE(p.run(80, 10.0, 30.0, 50).empty());
  // One late window between on-time ones: never two in a row.
  Pair q;
  q.run(20, 0.0, 1.0, 25);
  EXPECT_TRUE(q.run(10, 30.0, 1.0, 25).empty());
  EXPECT_TRUE(q.run(20, 0.0, 1.0, 25).empty());
}

TEST(Lateness, APeerAheadIsMatchedOnceThisRankCatchesUp) {
  LatenessTracker tracker(5.0);
  ProgressBoard mine(1);
  Time now{};
  tracker.sample(3, 0, 0);
  tracker.evaluate(now, [&](uint64_t d, uint64_t* w) { return mine.waitAt(d, w); });
  uint64_t peerUs = 0;
  for (int i = 1; i <= 30; ++i) {
    now += 25ms;
    peerUs += 1000;
    tracker.sample(3, static_cast<uint64_t>(i), peerUs);  // the peer finished op i first
    tracker.evaluate(now, [&](uint64_t d, uint64_t* w) { return mine.waitAt(d, w); });
    mine.begin(0, 1, 0);
    mine.end(true, 31'000'000, 0);  // 30 ms later, this rank
  }
  now += 25ms;
  tracker.evaluate(now, [&](uint64_t d, uint64_t* w) { return mine.waitAt(d, w); });
  EXPECT_TRUE(tracker.view(3).known);
  EXPECT_NEAR(tracker.view(3).lateMs, 30.0, 0.1);
  EXPECT_TRUE(tracker.view(3).flagged);
}

TEST(ProgressBoard, TracksOpsAndRemembersRecentWaits) {
  ProgressBoard board(42);
  board.reset(3);
  board.begin(/*kind=*/0, /*collectives=*/2, /*nowNs=*/1'000'000);
  board.step(5);
  OpProgress p = board.read(4'000'000);
  EXPECT_EQ(p.commKey, 42u);
  EXPECT_EQ(p.epoch, 3u);
  EXPECT_EQ(p.started, 2u);
  EXPECT_EQ(p.done, 0u);
  EXPECT_TRUE(p.inOp);
  EXPECT_EQ(p.step, 5u);
  EXPECT_EQ(p.stateMs, 3u);
  board.end(true, 7'000'000, 8'000'000);
  p = board.read(8'000'000);
  EXPECT_FALSE(p.inOp);
  EXPECT_EQ(p.done, 2u);
  EXPECT_EQ(p.waitUs, 7000u);
  uint64_t wait = 0;
  EXPECT_TRUE(board.waitAt(2, &wait));
  EXPECT_EQ(wait, 7000u);
  EXPECT_FALSE(board.waitAt(1, &wait)) << "inside a group: no boundary";
  board.begin(0, 1, 0);
  board.end(false, 1'000'000, 0);  // a failed op counts nothing
  EXPECT_EQ(board.read(0).done, 2u);
  for (int i = 0; i < ProgressBoard::kHistory; ++i) {
    board.begin(0, 1, 0);
    board.end(true, 1000, 0);
  }
  EXPECT_FALSE(board.waitAt(2, &wait)) << "fell out of the history";
  EXPECT_TRUE(board.waitAt(2 + ProgressBoard::kHistory, &wait));
}

TEST(ProgressBoard, SumsWaitsShorterThanAMicrosecond) {
  ProgressBoard board(1);
  for (int i = 0; i < 1000; ++i) {
    board.begin(0, 1, 0);
    board.end(true, 450, 0);  // a small shared-memory all-reduce
  }
  EXPECT_EQ(board.read(0).waitUs, 450u);
  uint64_t wait = 0;
  ASSERT_TRUE(board.waitAt(1000, &wait));
  EXPECT_EQ(wait, 450u);
  board.reset(1);
  board.begin(0, 1, 0);
  board.end(true, 1500, 0);
  EXPECT_EQ(board.read(0).waitUs, 1u) << "a new epoch sums from 0";
}

TEST(RoundTripStats, MinMeanAndP99) {
  RoundTripStats s;
  for (int i = 0; i < 990; ++i) s.add(0.1);
  for (int i = 0; i < 10; ++i) s.add(5.0);
  EXPECT_EQ(s.samples(), 1000u);
  EXPECT_DOUBLE_EQ(s.minMs(), 0.1);
  EXPECT_NEAR(s.avgMs(), (990 * 0.1 + 50) / 1000, 1e-9);
  EXPECT_GE(s.percentileMs(0.99), 0.1);
  EXPECT_LE(s.percentileMs(0.99), 0.1 * 1.13);
  EXPECT_GE(s.percentileMs(0.999), 5.0);
  EXPECT_LE(s.percentileMs(0.999), 5.0 * 1.13);
}

TEST(StatsJson, CountsRatesAndFlags) {
  CommStats before;
  before.unixTime = 100.0;
  before.host = "node\"1";
  before.pid = 7;
  before.commId = 0xab;
  before.rank = 1;
  before.nranks = 4;
  before.kinds[0] = KindTotals{10, 1000, 1500, 1000};
  before.progress.done = 10;
  before.progress.waitUs = 100;
  PeerStats peer;
  peer.rank = 2;
  peer.host = "n2";
  peer.pid = 8;
  peer.sentBytes = 1000;
  peer.sendTimedBytes = 1000;
  peer.sendBusyNs = 1000;
  before.peers.push_back(peer);
  CommStats now = before;
  now.unixTime = 101.0;
  now.kinds[0] = KindTotals{20, 3000, 4500, 2000};
  now.progress.done = 20;
  now.progress.waitUs = 600;
  now.peers[0].sentBytes = 1000 + 2500000000ULL;  // 2.5 GB in the interval's 1 s
  now.peers[0].recvBytes = 500000000ULL;
  now.peers[0].sendTimedBytes = 3000;
  now.peers[0].sendBusyNs = 2000;
  now.peers[0].straggler = true;
  now.peers[0].lateKnown = true;
  now.peers[0].lateMs = 20.5;
  std::string line = statsJson(now, &before);
  for (const char* want :
       {"\"host\":\"node\\\"1\"", "\"comm\":\"00000000000000ab\"", "\"rank\":1,\"nranks\":4",
        "\"total\":{\"ops\":20,\"bytes\":3000,\"time_us\":2.0,\"busbw_gbps\":2.2500}",
        "\"allreduce\":{\"ops\":20", "\"interval\":{\"ms\":1000.0,\"ops\":10,\"bytes\":2000",
        "\"busbw_gbps\":3.0000,\"wait_us_per_op\":50.0}", "\"send_gbps\":2.0000",
        "\"send_traffic_gbps\":2.5000,\"recv_traffic_gbps\":0.5000", "\"late_ms\":20.50",
        "\"stragglers\":[{\"rank\":2,\"host\":\"n2\",\"pid\":8", "\"slow_links\":[]"}) {
    EXPECT_NE(line.find(want), std::string::npos) << want << " in " << line;
  }
  EXPECT_EQ(statsJson(now, nullptr).find("interval"), std::string::npos);
}

TEST(HealthMessages, HeartbeatsAndAnswersCarryProgress) {
  HealthHeartbeat hb;
  hb.seq = 9;
  OpProgress p;
  p.commKey = 5;
  p.epoch = 2;
  p.started = 58;
  p.done = 57;
  p.inOp = true;
  p.kind = 3;
  p.step = 4;
  p.waitUs = 123456;
  p.stateMs = 2000;
  hb.progress.assign(kMaxProgressEntries + 3, p);  // the excess is not sent
  std::vector<uint8_t> frame = encodeHealthMessage(hb);
  HealthMessage back;
  size_t used = 0;
  ASSERT_EQ(decodeHealthMessage(frame.data(), frame.size(), &back, &used), 1);
  ASSERT_NE(back.as<HealthHeartbeat>(), nullptr);
  ASSERT_EQ(back.as<HealthHeartbeat>()->progress.size(), kMaxProgressEntries);
  const OpProgress& q = back.as<HealthHeartbeat>()->progress[0];
  EXPECT_EQ(q.commKey, 5u);
  EXPECT_EQ(q.started, 58u);
  EXPECT_EQ(q.done, 57u);
  EXPECT_TRUE(q.inOp);
  EXPECT_EQ(q.kind, 3);
  EXPECT_EQ(q.step, 4u);
  EXPECT_EQ(q.waitUs, 123456u);
  EXPECT_EQ(q.stateMs, 2000u);
  frame = encodeHealthMessage(HealthProgress{p});
  ASSERT_EQ(decodeHealthMessage(frame.data(), frame.size(), &back, &used), 1);
  ASSERT_NE(back.as<HealthProgress>(), nullptr);
  EXPECT_EQ(back.as<HealthProgress>()->progress.epoch, 2u);
  frame = encodeHealthMessage(HealthProgressQuery{77, 4});
  ASSERT_EQ(decodeHealthMessage(frame.data(), frame.size(), &back, &used), 1);
  ASSERT_NE(back.as<HealthProgressQuery>(), nullptr);
  EXPECT_EQ(back.as<HealthProgressQuery>()->commKey, 77u);
  EXPECT_EQ(back.as<HealthProgressQuery>()->epoch, 4u);
  frame.resize(frame.size() - 1);  // a truncated frame waits for its bytes
  EXPECT_EQ(decodeHealthMessage(frame.data(), frame.size(), &back, &used), 0);
}

// The stats file is its owner's alone, and a symbolic link planted at its path (in a
// shared /tmp, say) is refused instead of followed.
TEST(StatsFile, OwnerOnlyAndNeverThroughASymlink) {
  char dir[] = "/tmp/ftccl_stats_test.XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/stats.jsonl";
  const std::string target = std::string(dir) + "/target";
  const std::string link = std::string(dir) + "/link.jsonl";
  {
    std::shared_ptr<StatsFile> file;
    ASSERT_TRUE(StatsFile::acquire(path, 1000, &file).isOk());
    struct stat st;
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  std::shared_ptr<StatsFile> file;
  Status refused = StatsFile::acquire(link, 1000, &file);
  EXPECT_FALSE(refused.isOk());
  EXPECT_NE(access(link.c_str(), F_OK), 0) << "the link was followed: its target exists";
  unlink(link.c_str());
  unlink(path.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace ftccl
