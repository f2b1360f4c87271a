// The simulated network's link model: latency, the sender's link rate, jitter drawn
// from the seed, in-order reliable delivery, datagram loss, partitions, counters.
#include "transports/sim/sim_network.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace ftccl {
namespace {

using namespace std::chrono_literals;
using sim::Delivery;
using sim::LinkSpec;
using sim::SimNetwork;
using sim::SimTime;

// Records when each frame arrived and its first byte (a sequence number).
class Recorder final : public sim::SimNode {
 public:
  Recorder(SimNetwork& net, const std::string& key) { net.add(key, this); }
  void onFrame(const std::string& from, const std::vector<uint8_t>& frame, SimTime now) override {
    arrivals.push_back(now);
    sequence.push_back(frame.empty() ? -1 : frame[0]);
  }
  void onConnectionLost(const std::string&, SimTime) override { ++lost; }
  SimTime onTick(SimTime now) override { return now + 1s; }
  std::vector<SimTime> arrivals;
  std::vector<int> sequence;
  int lost = 0;
};

std::vector<uint8_t> frame(int seq, size_t bytes) {
  std::vector<uint8_t> f(bytes, 0);
  f[0] = static_cast<uint8_t>(seq);
  return f;
}

TEST(SimNetwork, LatencyAndTheSendersLinkRate) {
  SimNetwork net(
      [](const std::string&, const std::string&) {
        return LinkSpec{5us, 0us, 0, 1.0};
      },
      1);
  Recorder a(net, "a"), b(net, "b");
  const SimTime start = net.now();
  net.send("a", "b", frame(0, 1250));  // 10 us on a 1 Gbit/s link, then 5 us
  net.send("a", "b", frame(1, 1250));  // waits for the first to leave the link
  net.runFor(1ms);
  ASSERT_EQ(b.arrivals.size(), 2u);
  EXPECT_EQ(b.arrivals[0] - start, 15us);
  EXPECT_EQ(b.arrivals[1] - start, 25us);
  EXPECT_EQ(net.traffic("a").sentFrames, 2u);
  EXPECT_EQ(net.traffic("a").sentBytes, 2500u);
  EXPECT_EQ(net.traffic("b").receivedBytes, 2500u);
}

// Keys that carry their node's number are placed by it; keys without one, or whose
// slot a key took first, go through the map: every frame still reaches its own node,
// and a kill or liveness query finds the right one.
TEST(SimNetwork, NumberedKeysAndOthersReachTheirOwnNodes) {
  SimNetwork net(
      [](const std::string&, const std::string&) {
        return LinkSpec{5us, 0us, 0, 0};
      },
      1);
  net.setKeyIndex([](const std::string& key) -> int64_t {
    return key.size() > 1 && key[0] == 'p' ? std::stoll(key.substr(1)) : -1;
  });
  // "stranger" takes slot 0 through the map before "p0" asks for it; "p5" leaves a gap.
  Recorder stranger(net, "stranger"), p5(net, "p5"), p0(net, "p0"), p1(net, "p1");
  const std::map<std::string, Recorder*> nodes{
      {"stranger", &stranger}, {"p5", &p5}, {"p0", &p0}, {"p1", &p1}};
  int seq = 0;
  for (const auto& [from, unused] : nodes) {
    for (const auto& [to, node] : nodes) {
      if (from != to) net.send(from, to, frame(seq++, 8));
    }
  }
  net.runFor(1ms);
  for (const auto& [key, node] : nodes) EXPECT_EQ(node->arrivals.size(), 3u) << key;
  EXPECT_EQ(net.traffic("p0").sentFrames, 3u);
  net.kill("p0");
  EXPECT_FALSE(net.alive("p0"));
  EXPECT_TRUE(net.alive("stranger"));
  EXPECT_TRUE(net.alive("p5"));
  net.send("p1", "p5", frame(99, 8));
  net.send("p1", "p0", frame(98, 8));  // dead: lost
  net.runFor(1ms);
  EXPECT_EQ(p5.sequence.back(), 99);
  EXPECT_EQ(p0.arrivals.size(), 3u);
}

std::vector<int64_t> jitteredArrivals(uint64_t seed, std::vector<int>* order) {
  SimNetwork net([](const std::string&, const std::string&) { return LinkSpec{5us, 20us}; }, seed);
  Recorder a(net, "a"), b(net, "b");
  for (int i = 0; i < 50; ++i) {
    net.send("a", "b", frame(i, 16));
    net.runFor(1us);
  }
  net.runFor(1ms);
  std::vector<int64_t> ns;
  for (SimTime t : b.arrivals) ns.push_back((t - SimTime()).count());
  *order = b.sequence;
  return ns;
}

TEST(SimNetwork, JitterIsAFunctionOfTheSeedAndKeepsReliableOrder) {
  std::vector<int> order1, order2, order3;
  auto first = jitteredArrivals(7, &order1);
  EXPECT_EQ(first, jitteredArrivals(7, &order2));
  EXPECT_NE(first, jitteredArrivals(8, &order3));
  for (int i = 0; i < 50; ++i) EXPECT_EQ(order1[i], i) << "reliable frames overtook";
}

TEST(SimNetwork, DatagramsMayBeLostOrReorderedReliableFramesNot) {
  SimNetwork net(
      [](const std::string&, const std::string&) {
        return LinkSpec{5us, 20us, 0.2};
      },
      3);
  Recorder a(net, "a"), b(net, "b");
  for (int i = 0; i < 200; ++i) net.send("a", "b", frame(i, 8), Delivery::kDatagram);
  net.runFor(1ms);
  EXPECT_GT(b.arrivals.size(), 120u);  // about 160 of 200
  EXPECT_LT(b.arrivals.size(), 195u);
  bool reordered = false;
  for (size_t i = 1; i < b.sequence.size(); ++i) reordered |= b.sequence[i] < b.sequence[i - 1];
  EXPECT_TRUE(reordered);
  b.sequence.clear();
  for (int i = 0; i < 100; ++i) net.send("a", "b", frame(i, 8));
  net.runFor(1ms);
  ASSERT_EQ(b.sequence.size(), 100u);  // no loss
  for (int i = 0; i < 100; ++i) EXPECT_EQ(b.sequence[i], i);
}

TEST(SimNetwork, ABusyReceiverHandlesFramesOneAfterAnotherInOrder) {
  SimNetwork net(5us);
  net.setHandlingCost(10us);
  Recorder a(net, "a"), b(net, "b"), c(net, "c");
  const SimTime start = net.now();
  net.send("a", "c", frame(0, 8));
  net.send("b", "c", frame(1, 8));
  net.send("a", "c", frame(2, 8));
  net.runFor(1ms);
  ASSERT_EQ(c.arrivals.size(), 3u);
  EXPECT_EQ(c.sequence, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(c.arrivals[0] - start, 5us);
  EXPECT_EQ(c.arrivals[1] - start, 15us);
  EXPECT_EQ(c.arrivals[2] - start, 25us);
}

// Probes first: a datagram that arrives behind queued reliable frames takes the next
// free slot, as the health thread reads its probe socket before more connections; the
// reliable frames keep their order. A stop holds the queue, resume() goes on with it.
TEST(SimNetwork, ABusyReceiverHandlesQueuedDatagramsFirst) {
  SimNetwork net(5us);
  net.setHandlingCost(10us);
  Recorder a(net, "a"), b(net, "b"), c(net, "c");
  const SimTime start = net.now();
  for (int i = 0; i < 4; ++i) net.send("a", "c", frame(i, 8));
  net.runFor(7us);  // frame 0 in hand, 1-3 queued
  net.send("b", "c", frame(9, 8), Delivery::kDatagram);
  net.runFor(1ms);
  ASSERT_EQ(c.arrivals.size(), 5u);
  EXPECT_EQ(c.sequence, (std::vector<int>{0, 9, 1, 2, 3}));
  EXPECT_EQ(c.arrivals[0] - start, 5us);
  EXPECT_EQ(c.arrivals[1] - start, 15us);  // arrived at 12 us, the slot freed at 15
  EXPECT_EQ(c.arrivals[4] - start, 45us);

  for (int i = 0; i < 3; ++i) net.send("a", "c", frame(i, 8));
  net.runFor(7us);  // frame 0 in hand, 1 and 2 queued
  net.stop("c");
  net.runFor(1ms);
  EXPECT_EQ(c.arrivals.size(), 6u) << "a stopped process handles nothing";
  net.resume("c");
  net.runFor(1ms);
  ASSERT_EQ(c.arrivals.size(), 8u);
  EXPECT_EQ(c.sequence[6], 1);
  EXPECT_EQ(c.sequence[7], 2);
}

TEST(SimNetwork, PartitionSeversBothWaysAndLosesFramesInFlight) {
  SimNetwork net(50us);
  Recorder a(net, "a"), b(net, "b"), c(net, "c");
  net.send("a", "c", frame(0, 8));  // in flight when the partition comes
  net.partition({"a", "b"});
  net.send("a", "b", frame(1, 8));  // same side
  net.send("c", "a", frame(2, 8));
  net.runFor(1ms);
  EXPECT_EQ(c.arrivals.size(), 0u);
  EXPECT_EQ(a.arrivals.size(), 0u);
  EXPECT_EQ(b.sequence, std::vector<int>{1});
  EXPECT_EQ(a.lost + b.lost + c.lost, 0);  // connections stay open
  net.heal();
  net.send("c", "a", frame(3, 8));
  net.runFor(1ms);
  EXPECT_EQ(a.sequence, std::vector<int>{3});
}

}  // namespace
}  // namespace ftccl
