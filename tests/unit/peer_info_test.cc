// The peer info every process publishes at init (and a joiner gets in its member table):
// it round-trips, and a blob from the network is bounded before anything is allocated.
#include "core/peer_info.h"

#include <gtest/gtest.h>

#include <cstring>

namespace ftccl {
namespace {

PeerInfo sample() {
  PeerInfo p;
  p.host = "node7";
  p.pid = 4242;
  p.netns = 0x1234;
  p.pidns = 0x5678;
  p.commSalt = 99;
  p.key = "10.0.0.7:4000";
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
  EXPECT_EQ(back.netns, 0x1234u);
  EXPECT_EQ(back.pidns, 0x5678u);
  EXPECT_EQ(back.key, "10.0.0.7:4000");
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

// The join answer a newcomer decodes: it round-trips, and a count of processes larger
// than the bytes could carry is refused before any is allocated.
TEST(PeerInfo, JoinPackageRoundTripsAndAHugeCountIsRejected) {
  PipelineConfig pipeline;
  pipeline.chunkBytes = 1 << 19;
  pipeline.channels = 4;
  std::vector<uint8_t> package = encodeJoinPackage(77, pipeline, {sample(), sample()});
  uint64_t comm = 0;
  PipelineConfig back;
  std::vector<PeerInfo> peers;
  ASSERT_TRUE(decodeJoinPackage(package, &comm, &back, &peers).isOk());
  EXPECT_EQ(comm, 77u);
  EXPECT_EQ(back.channels, 4);
  ASSERT_EQ(peers.size(), 2u);
  EXPECT_EQ(peers[1].key, "10.0.0.7:4000");
  // The count follows the communicator id, the chunk size and the channels.
  const uint32_t huge = 0x7fffffff;
  std::memcpy(package.data() + 8 + 8 + 4, &huge, sizeof(huge));
  EXPECT_FALSE(decodeJoinPackage(package, &comm, &back, &peers).isOk());
  std::vector<uint8_t> longer = encodeJoinPackage(77, pipeline, {sample()});
  longer.push_back(0);
  EXPECT_FALSE(decodeJoinPackage(longer, &comm, &back, &peers).isOk());
}

}  // namespace
}  // namespace ftccl
