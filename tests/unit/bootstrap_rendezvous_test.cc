// Bootstrap: rendezvous that complete, in-process over loopback (threads play the ranks):
// any rank count, large blobs, argument checks, FTCCL_COMM_ID roots started by rank 0,
// several roots at once.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bootstrap/bootstrap.h"
#include "bootstrap/wire.h"
#include "bootstrap_fixture.h"
#include "util/net/socket.h"

namespace ftccl {
namespace testing {
namespace {

using net::Clock;

TEST_F(BootstrapTest, RendezvousOf1_2_3_5Ranks) {
  for (int n : {1, 2, 3, 5}) {
    UniqueIdContents c = newRoot();
    EXPECT_EQ(c.rootHost, "127.0.0.1");
    EXPECT_FALSE(c.rankZeroStartsRoot);
    std::vector<Bytes> blobs;
    std::vector<int> ranks;
    for (int r = 0; r < n; ++r) {
      blobs.push_back(blobFor(r, r == 1 ? 1 : static_cast<size_t>(10 + 100 * r)));
      ranks.push_back(r);
    }
    auto results = runRanks(c, ranks, n, 10000, blobs);
    expectCompleteTables(results, blobs);
  }
}

TEST_F(BootstrapTest, RendezvousWithLargeBlobs) {
  UniqueIdContents c = newRoot();
  std::vector<Bytes> blobs = {blobFor(0, bootstrap::kMaxBlobBytes), blobFor(1, 300000),
                              blobFor(2, 7)};
  auto results = runRanks(c, {0, 1, 2}, 3, 20000, blobs);
  expectCompleteTables(results, blobs);
  // One byte over the cap is refused locally.
  Table t;
  Bytes tooBig(bootstrap::kMaxBlobBytes + 1);
  EXPECT_EQ(rendezvous(c, 0, 1, tooBig, 1000, &t).code(), ftcclInvalidArgument);
}

TEST_F(BootstrapTest, InvalidArguments) {
  UniqueIdContents c = sampleContents("127.0.0.1", false);
  c.rootPort = closedLoopbackPort();
  Table t;
  Bytes b;
  auto t0 = Clock::now();
  EXPECT_EQ(rendezvous(c, 0, 0, b, 1000, &t).code(), ftcclInvalidArgument);
  EXPECT_EQ(rendezvous(c, -1, 2, b, 1000, &t).code(), ftcclInvalidArgument);
  EXPECT_EQ(rendezvous(c, 2, 2, b, 1000, &t).code(), ftcclInvalidArgument);
  EXPECT_EQ(rendezvous(c, 0, 2, b, 0, &t).code(), ftcclInvalidArgument);
  EXPECT_EQ(rendezvous(c, 0, 2, b, 1000, nullptr).code(), ftcclInvalidArgument);
  EXPECT_EQ(rendezvous(c, 0, (1 << 20) + 1, b, 1000, &t).code(), ftcclInvalidArgument);
  UniqueIdContents noHost = c;
  noHost.rootHost = "example.com";
  EXPECT_EQ(rendezvous(noHost, 0, 2, b, 1000, &t).code(), ftcclInvalidArgument);
  EXPECT_LT(msSince(t0), 500);
  EXPECT_EQ(createUniqueId(nullptr).code(), ftcclInvalidArgument);
}
TEST_F(BootstrapTest, RankZeroStartsRootWithCommId) {
  const uint16_t port = closedLoopbackPort();
  const std::string commId = "127.0.0.1:" + std::to_string(port);
  commId_.set(commId.c_str());
  secret_.set("0123456789abcdef0123456789ABCDEF");
  for (int round = 0; round < 2; ++round) {  // the port is reusable right away
    const int n = 3;
    std::vector<Bytes> blobs = {blobFor(0, 20), blobFor(1, 21), blobFor(2, 22)};
    std::vector<Result> results(n);
    std::vector<ftcclUniqueId> ids(n);
    std::vector<std::thread> threads;
    for (int r = n - 1; r >= 0; --r) {
      threads.emplace_back([&, r] {
        // Rank 0 comes last: the others must retry until its root is up.
        if (r == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
        Status st = createUniqueId(&ids[r]);
        UniqueIdContents c;
        if (st.isOk()) st = decodeUniqueId(ids[r], &c);
        if (st.isOk()) st = rendezvous(c, r, n, blobs[r], 10000, &results[r].table);
        results[r].status = st;
      });
    }
    for (auto& t : threads) t.join();
    expectCompleteTables(results, blobs);
    for (int r = 1; r < n; ++r) EXPECT_EQ(0, std::memcmp(&ids[0], &ids[r], sizeof(ids[0])));
  }
}

TEST_F(BootstrapTest, RankZeroStartsRootOverIPv6) {
  net::SockAddr addr, bound;
  ASSERT_TRUE(net::numericSockAddr("::1", 0, &addr).isOk());
  uint16_t port = 0;
  {
    net::Fd fd;
    Status st = net::listenOn(addr, false, &fd, &bound);
    if (!st.isOk()) GTEST_SKIP() << "no IPv6 loopback: " << st.message();
    port = bound.port();
  }
  const std::string commId = "[::1]:" + std::to_string(port);
  commId_.set(commId.c_str());
  secret_.set("ffeeddccbbaa99887766554433221100");
  ftcclUniqueId id;
  ASSERT_TRUE(createUniqueId(&id).isOk());
  UniqueIdContents c;
  ASSERT_TRUE(decodeUniqueId(id, &c).isOk());
  std::vector<Bytes> blobs = {blobFor(0, 3), blobFor(1, 4)};
  auto results = runRanks(c, {0, 1}, 2, 10000, blobs);
  expectCompleteTables(results, blobs);
}

TEST_F(BootstrapTest, ManyRootsAtOnce) {
  // Several rendezvous in flight in one process, each with its own root thread.
  std::vector<UniqueIdContents> roots;
  for (int i = 0; i < 4; ++i) roots.push_back(newRoot());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    for (int r = 0; r < 2; ++r) {
      threads.emplace_back([&, i, r] {
        Table t;
        Bytes b = blobFor(i * 10 + r, 12);
        if (rendezvous(roots[i], r, 2, b, 10000, &t).isOk() && t.size() == 2 && t[r] == b &&
            t[1 - r] == blobFor(i * 10 + 1 - r, 12)) {
          ++ok;
        }
      });
    }
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 8);
}

}  // namespace
}  // namespace testing
}  // namespace ftccl
