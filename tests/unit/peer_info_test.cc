// The peer info every process publishes at init (and a joiner gets in its member table):
// it round-trips, and a blob from the network is bounded before anything is allocated.
#include <gtest/gtest.h>

#include "core/peer_info.h"

namespace ftccl {
namespace {

PeerInfo sample() {
  PeerInfo p;
  p.host = "node7";
  p.pid = 4242;
  p.netns = 0x1234;
  p.commSalt = 99;
  p.healthKey = "10.0.0.7:4000";
  p.node = "node7";
  p.transportAddress = {1, 2, 3};
  for (size_t i = 0; i < kStandbyWorkers; ++i) {
    p.standbyAddresses.push_back(std::vector<uint8_t>(5 + i, static_cast<uint8_t>(10 + i)));
  }
  return p;
}

TEST(PeerInfo, RoundTripsWithEveryStandbyWorkerInOrder) {
  PeerInfo back;
  ASSERT_TRUE(decodePeerInfo(encodePeerInfo(sample()), &back).isOk());
  EXPECT_EQ(back.host, "node7");
  EXPECT_EQ(back.healthKey, "10.0.0.7:4000");
  EXPECT_EQ(back.transportAddress, (std::vector<uint8_t>{1, 2, 3}));
  ASSERT_EQ(back.standbyAddresses.size(), kStandbyWorkers);
  for (size_t i = 0; i < kStandbyWorkers; ++i) {
    EXPECT_EQ(back.standbyAddresses[i], std::vector<uint8_t>(5 + i, static_cast<uint8_t>(10 + i)));
  }
  PeerInfo used = sample();  // after switches, fewer are left
  used.standbyAddresses.clear();
  ASSERT_TRUE(decodePeerInfo(encodePeerInfo(used), &back).isOk());
  EXPECT_TRUE(back.standbyAddresses.empty());
}

TEST(PeerInfo, TruncatedOrOverlongBlobsAndHugeCountsAreRejected) {
  const std::vector<uint8_t> blob = encodePeerInfo(sample());
  PeerInfo back;
  for (size_t cut = 0; cut < blob.size(); ++cut) {
    std::vector<uint8_t> truncated(blob.begin(), blob.begin() + cut);
    EXPECT_FALSE(decodePeerInfo(truncated, &back).isOk()) << "cut at " << cut;
  }
  std::vector<uint8_t> longer = blob;
  longer.push_back(0);
  EXPECT_FALSE(decodePeerInfo(longer, &back).isOk());
  // The standby count sits after the transport address: claim 2^32-1 of them.
  PeerInfo none = sample();
  none.standbyAddresses.clear();
  std::vector<uint8_t> huge = encodePeerInfo(none);
  ASSERT_GE(huge.size(), 4u);
  for (size_t i = huge.size() - 4; i < huge.size(); ++i) huge[i] = 0xff;
  EXPECT_FALSE(decodePeerInfo(huge, &back).isOk());
}

}  // namespace
}  // namespace ftccl
