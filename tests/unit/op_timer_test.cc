// The op timer (core/op_timer.h): which ops it reads the clock for, and what the others
// count.
#include "core/op_timer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace ftccl {
namespace {

using Clock = OpTimer::Clock;
constexpr int kAllReduce = 0, kBroadcast = 1;

int64_t nowNs() { return OpTimer::steadyNs(Clock::now()); }

TEST(OpTimer, TimesEveryOpAboveTheQuickSize) {
  OpTimer timer;
  for (int i = 0; i < 3; ++i) {
    const OpTimer::Start start = timer.begin(kAllReduce, /*quick=*/false);
    ASSERT_NE(start.at, Clock::time_point{}) << "op " << i;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const OpTimer::End end = timer.end(start, {});
    EXPECT_GE(end.elapsedNs, 2'000'000u);
    EXPECT_EQ(end.boardNs - start.boardNs, static_cast<int64_t>(end.elapsedNs));
  }
}

TEST(OpTimer, TimesOneQuickOpInSixteenAndCountsTheirMeanForTheRest) {
  OpTimer timer;
  uint64_t timed = 0;
  for (uint64_t i = 0; i < 4 * OpTimer::kSampleEvery; ++i) {
    const OpTimer::Start start = timer.begin(kAllReduce, /*quick=*/true);
    const bool sampled = i % OpTimer::kSampleEvery == 0;
    ASSERT_EQ(start.at != Clock::time_point{}, sampled) << "op " << i;
    if (sampled) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      const OpTimer::End end = timer.end(start, {});
      EXPECT_GE(end.elapsedNs, 1'000'000u);
      timed = i == 0 ? end.elapsedNs : timed - timed / 8 + end.elapsedNs / 8;
      continue;
    }
    const OpTimer::End end = timer.end(start, {});
    EXPECT_EQ(end.elapsedNs, timed) << "op " << i << ": the timed ones' running mean";
    EXPECT_EQ(end.boardNs, start.boardNs + static_cast<int64_t>(timed));
    // The coarse clock: CLOCK_MONOTONIC's time, at most a tick or two behind.
    EXPECT_LE(start.boardNs, nowNs());
    EXPECT_GT(start.boardNs, nowNs() - 100'000'000);
  }
}

TEST(OpTimer, AnUntimedOpThatWaitedCountsItsWait) {
  OpTimer timer;
  OpTimer::Start first = timer.begin(kBroadcast, true);
  const uint64_t mean = timer.end(first, {}).elapsedNs;
  const OpTimer::Start start = timer.begin(kBroadcast, true);
  ASSERT_EQ(start.at, Clock::time_point{});
  const Clock::time_point firstRead = Clock::now();  // the driver's first read in a wait
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  const OpTimer::End end = timer.end(start, firstRead);
  EXPECT_GE(end.elapsedNs, mean + 3'000'000);
  EXPECT_LE(end.boardNs, nowNs());
  EXPECT_GE(end.boardNs, OpTimer::steadyNs(firstRead) + 3'000'000);
}

TEST(OpTimer, KindsAreSampledAndAveragedApart) {
  OpTimer timer;
  const OpTimer::Start a = timer.begin(kAllReduce, true);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const uint64_t allReduceNs = timer.end(a, {}).elapsedNs;
  const OpTimer::Start b = timer.begin(kBroadcast, true);
  ASSERT_NE(b.at, Clock::time_point{}) << "a kind's first quick op is timed";
  const uint64_t broadcastNs = timer.end(b, {}).elapsedNs;
  ASSERT_LT(broadcastNs, allReduceNs);
  EXPECT_EQ(timer.end(timer.begin(kAllReduce, true), {}).elapsedNs, allReduceNs);
  EXPECT_EQ(timer.end(timer.begin(kBroadcast, true), {}).elapsedNs, broadcastNs);
}

TEST(OpTimer, AWaitBeforeTheFirstReadIsWhatTheMeanLearns) {
  OpTimer timer;
  // The timed op waited: its part before the driver's first read is the sample.
  const OpTimer::Start start = timer.begin(kAllReduce, true);
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const Clock::time_point firstRead = Clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const OpTimer::End end = timer.end(start, firstRead);
  EXPECT_GE(end.elapsedNs, 21'000'000u);
  const uint64_t learned = timer.end(timer.begin(kAllReduce, true), {}).elapsedNs;
  EXPECT_GE(learned, 1'000'000u);
  EXPECT_LT(learned, end.elapsedNs) << "the wait after the first read is not the mean's";
}

}  // namespace
}  // namespace ftccl
