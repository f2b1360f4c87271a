// LinkQuality: a sustained rise of the round trip flags the link; late samples (a
// health thread that ran late on a busy host) do not, however many, as long as some
// samples in each window are fast; the flag drops once a whole window is fast again.
#include "health/link_quality.h"

#include <gtest/gtest.h>

namespace ftccl {
namespace {

using Change = LinkQuality::Change;
constexpr int kWindow = LinkQuality::kWindow;

// A fast first sample, then only slow ones: flagged exactly when a whole window is slow.
TEST(LinkQuality, FlaggedOnceAWholeWindowIsSlow) {
  LinkQuality link;
  link.record(0.1);
  for (int i = 1; i < kWindow; ++i) EXPECT_EQ(link.record(50.0), Change::kNone) << i;
  EXPECT_EQ(link.record(50.0), Change::kDegraded);
  // The sample count saturates: a long-lived link keeps working.
  for (int i = 0; i < 100000; ++i) link.record(i % 2 ? 0.1 : 50.0);
  EXPECT_DOUBLE_EQ(link.levelMs(), 0.1);
  EXPECT_DOUBLE_EQ(link.highestMs(), 50.0);
}

// A busy host: most samples late by up to 8 ms, one fast one in each window.
TEST(LinkQuality, LateSamplesOnABusyHostDoNotFlag) {
  LinkQuality link;
  for (int i = 0; i < 20; ++i) link.record(0.2);
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(link.record(i % (kWindow - 1) == 0 ? 0.25 : 3.0 + (i % 5)), Change::kNone) << i;
  }
  EXPECT_FALSE(link.degraded());
  EXPECT_DOUBLE_EQ(link.maxMs(), 7.0);
}

TEST(LinkQuality, SustainedRiseFlagsAfterAWindowThenRecovers) {
  LinkQuality link;
  for (int i = 0; i < 20; ++i) link.record(0.3);
  EXPECT_DOUBLE_EQ(link.baselineMs(), 0.3);
  int flaggedAfter = 0;
  for (int i = 1; i <= 3 * kWindow && !link.degraded(); ++i) {
    if (link.record(20.0) == Change::kDegraded) flaggedAfter = i;
  }
  EXPECT_EQ(flaggedAfter, kWindow);  // once the last fast sample left the window
  EXPECT_DOUBLE_EQ(link.levelMs(), 20.0);
  // Bursty congestion keeps it flagged: fast samples between slow ones.
  for (int i = 0; i < 5 * kWindow; ++i) EXPECT_EQ(link.record(i % 2 ? 0.3 : 20.0), Change::kNone);
  EXPECT_TRUE(link.degraded());
  int recoveredAfter = 0;
  for (int i = 1; i <= 3 * kWindow && link.degraded(); ++i) {
    if (link.record(0.3) == Change::kRecovered) recoveredAfter = i;
  }
  EXPECT_EQ(recoveredAfter, kWindow - 1);  // once the last slow sample left the window
  EXPECT_FALSE(link.degraded());
  EXPECT_DOUBLE_EQ(link.baselineMs(), 0.3);
}

TEST(LinkQuality, SlowLinksScaleTheThreshold) {
  LinkQuality link;  // a 30 ms wide-area round trip: 40 ms is not degraded, 200 ms is
  for (int i = 0; i < 10; ++i) link.record(30.0);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(link.record(40.0), Change::kNone);
  bool flagged = false;
  for (int i = 0; i < 20; ++i) flagged = link.record(200.0) == Change::kDegraded || flagged;
  EXPECT_TRUE(flagged);
}

}  // namespace
}  // namespace ftccl
