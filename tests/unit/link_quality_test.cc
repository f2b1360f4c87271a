// LinkQuality: a sustained rise of the round trip flags the link, one late ack does
// not, and the flag drops once the round trips come back down (with hysteresis).
#include <gtest/gtest.h>

#include "health/link_quality.h"

namespace ftccl {
namespace {

using Change = LinkQuality::Change;

TEST(LinkQuality, NoVerdictDuringWarmUp) {
  LinkQuality link;
  for (int i = 0; i + 1 < LinkQuality::kWarmupSamples; ++i) {
    EXPECT_EQ(link.record(i == 0 ? 0.1 : 50.0), Change::kNone);
  }
  EXPECT_FALSE(link.degraded());
}

TEST(LinkQuality, OneLateAckDoesNotFlag) {
  LinkQuality link;
  for (int i = 0; i < 20; ++i) link.record(0.2);
  EXPECT_EQ(link.record(15.0), Change::kNone);  // level 0.2 + 14.8/4 = 3.9 < 5.2
  for (int i = 0; i < 20; ++i) EXPECT_EQ(link.record(0.2), Change::kNone);
  EXPECT_FALSE(link.degraded());
  EXPECT_DOUBLE_EQ(link.maxMs(), 15.0);
}

TEST(LinkQuality, SustainedRiseFlagsThenRecovers) {
  LinkQuality link;
  for (int i = 0; i < 20; ++i) link.record(0.3);
  EXPECT_DOUBLE_EQ(link.baselineMs(), 0.3);
  int flaggedAfter = 0;
  for (int i = 1; i <= 10 && !link.degraded(); ++i) {
    if (link.record(20.0) == Change::kDegraded) flaggedAfter = i;
  }
  EXPECT_EQ(flaggedAfter, 2);  // level 5.2, then 8.9 > max(1.2, 5.3)
  EXPECT_TRUE(link.degraded());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(link.record(20.0), Change::kNone);  // stays flagged
  int recoveredAfter = 0;
  for (int i = 1; i <= 30 && link.degraded(); ++i) {
    if (link.record(0.3) == Change::kRecovered) recoveredAfter = i;
  }
  EXPECT_GT(recoveredAfter, 1);  // the average must come down below 2.3 ms first
  EXPECT_FALSE(link.degraded());
  EXPECT_DOUBLE_EQ(link.baselineMs(), 0.3);
}

TEST(LinkQuality, SlowLinksScaleTheThreshold) {
  LinkQuality link;  // a 30 ms wide-area round trip: 40 ms is not degraded, 200 ms is
  for (int i = 0; i < 10; ++i) link.record(30.0);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(link.record(40.0), Change::kNone);
  bool flagged = false;
  for (int i = 0; i < 10; ++i) flagged = link.record(200.0) == Change::kDegraded || flagged;
  EXPECT_TRUE(flagged);
}

}  // namespace
}  // namespace ftccl
