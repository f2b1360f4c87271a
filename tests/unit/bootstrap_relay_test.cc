// Bootstrap: the table relayed down a tree of ranks (relay.h). The tree's shape; a
// rendezvous whose ranks get the table from each other; a parent rank that is dead, lying
// or silent, whose children still get the root's table; strangers at a relay listener.
#include <gtest/gtest.h>
#include <poll.h>

#include <array>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bootstrap/bootstrap.h"
#include "bootstrap/relay.h"
#include "bootstrap/wire.h"
#include "bootstrap_fixture.h"
#include "util/net/socket.h"

namespace ftccl {
namespace testing {
namespace {

using bootstrap::RelayServer;
using bootstrap::RelayTree;

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(RelayTree, ParentsAreFanoutAheadAndSkipThoseThatServeNothing) {
  const RelayTree two(std::vector<bool>(7, true), 2);
  const std::vector<int> parents{-1, -1, 0, 0, 1, 1, 2};
  const std::vector<uint32_t> children{2, 2, 1, 0, 0, 0, 0};
  for (size_t i = 0; i < parents.size(); ++i) {
    EXPECT_EQ(two.parentOf(i), parents[i]) << i;
    EXPECT_EQ(two.childrenOf(i), children[i]) << i;
  }
  // Index 1 has no listener: its children (4, 5) go to its parent, the root; index 2's
  // child 6 to index 2 still.
  const RelayTree gap({true, false, true, true, true, true, true}, 2);
  EXPECT_EQ(gap.parentOf(4), -1);
  EXPECT_EQ(gap.parentOf(5), -1);
  EXPECT_EQ(gap.childrenOf(1), 0u);
  EXPECT_EQ(gap.parentOf(6), 2);
  // A chain (fanout 1) past a gap: the grandparent has its one child already, so the
  // root serves: no rank relays to more than `fanout`.
  const RelayTree chain({true, true, false, true}, 1);
  EXPECT_EQ(chain.parentOf(3), -1);
  EXPECT_EQ(chain.childrenOf(1), 1u);
  // Nor deeper than the Role may say: the 66th of a chain starts a new one at the root.
  const RelayTree longChain(std::vector<bool>(70, true), 1);
  EXPECT_EQ(longChain.depthOf(64), bootstrap::kMaxRelayDepth);
  EXPECT_EQ(longChain.parentOf(65), -1);
  EXPECT_EQ(longChain.parentOf(66), 65);
  for (size_t i = 0; i < 70; ++i) EXPECT_LE(longChain.depthOf(i), bootstrap::kMaxRelayDepth);
  // Fanout 0: the root serves everyone.
  const RelayTree none(std::vector<bool>(5, true), 0);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(none.parentOf(i), -1);
}

TEST_F(BootstrapTest, SeventeenRanksGetTheTableFromEachOther) {
  EnvGuard fanout("FTCCL_BOOTSTRAP_FANOUT", "2");
  const UniqueIdContents c = newRoot();
  const int n = 17;
  std::vector<Bytes> blobs;
  std::vector<int> ranks;
  for (int r = 0; r < n; ++r) {
    blobs.push_back(blobFor(r, 100 + static_cast<size_t>(r)));
    ranks.push_back(r);
  }
  const std::vector<Result> results = runRanks(c, ranks, n, 60000, blobs);
  expectCompleteTables(results, blobs);
  // Ranks 0 and 1 from the root, each rank r >= 2 from rank r / 2 - 1 (index = rank
  // here: every rank serves), or from the root when its parent was too slow for its wait
  // (a loaded machine: correct, only dearer).
  uint32_t children = 0, relayed = 0;
  for (int r = 0; r < n; ++r) {
    const RendezvousStats& s = results[static_cast<size_t>(r)].stats;
    if (r < 2 || s.parentFailed) {
      EXPECT_EQ(s.tableFrom, -1) << "rank " << r;
    } else {
      EXPECT_EQ(s.tableFrom, r / 2 - 1) << "rank " << r;
      ++relayed;
    }
    children += s.children;
  }
  EXPECT_EQ(children, 15u);
  EXPECT_GT(relayed, 0u) << "no rank got the table from another";
}

// A listener standing in for rank 0's relay: refuses (closed port), lies (a table of other
// blobs, which the Role's digest gives away) or stays silent (accepts nothing).
enum class Parent { kDead, kLying, kSilent };

class BadParent {
 public:
  BadParent(Parent kind, const UniqueIdContents& c) {
    if (kind == Parent::kDead) {
      address_ = "127.0.0.1:" + std::to_string(closedLoopbackPort());
      return;
    }
    net::SockAddr addr, bound;
    EXPECT_TRUE(net::numericSockAddr("127.0.0.1", 0, &addr).isOk());
    EXPECT_TRUE(net::listenOn(addr, false, &listen_, &bound).isOk());
    address_ = bound.toString();
    if (kind == Parent::kLying) {
      thread_ = std::thread([this, c] {
        pollfd p{listen_.get(), POLLIN, 0};  // the listener does not block
        if (::poll(&p, 1, 30000) != 1) return;
        net::Fd conn(::accept(listen_.get(), nullptr, nullptr));
        if (!conn.valid()) return;
        const uint8_t challenge[16] = {7};
        Bytes frame = bootstrap::encodeChallenge(challenge);
        (void)net::sendAll(conn.get(), frame.data(), frame.size(), net::deadlineAfterMs(5000));
        Bytes fetch(bootstrap::kFrameHeaderBytes +
                    bootstrap::maxBodyBytes(bootstrap::FrameType::Fetch));
        size_t got = 0;
        (void)net::recvAll(conn.get(), fetch.data(), fetch.size(), net::deadlineAfterMs(5000),
                           &got);
        frame = bootstrap::encodeTable(c.nonce, {blobFor(9, 3)});
        (void)net::sendAll(conn.get(), frame.data(), frame.size(), net::deadlineAfterMs(5000));
      });
    }
  }
  ~BadParent() {
    if (thread_.joinable()) thread_.join();
  }
  const std::string& address() const { return address_; }

 private:
  net::Fd listen_;
  std::string address_;
  std::thread thread_;
};

// Rank 0 of a chain (fanout 1: root -> 0 -> 1 -> 2 -> 3) played by hand: its hello names
// the bad parent's address as its relay. Rank 1 must get the table from the root, and
// ranks 2 and 3 from rank 1 and 2 as usual.
void chainWithABadParent(const UniqueIdContents& c, const std::string& relay,
                         std::vector<Result>* results, Bytes* rank0) {
  net::Fd fd = rawConnect(c);
  uint8_t challenge[16] = {0};
  readChallenge(fd, challenge);
  bootstrap::Hello h = sampleHello();
  h.nonce = c.nonce;
  h.rank = 0;
  h.nranks = 4;
  h.relay = relay;
  *rank0 = h.blob;
  const Bytes hello = bootstrap::encodeHello(h, c.secret, challenge);
  ASSERT_TRUE(
      net::sendAll(fd.get(), hello.data(), hello.size(), net::deadlineAfterMs(5000)).isOk());
  std::vector<Bytes> blobs{*rank0, blobFor(1, 20), blobFor(2, 20), blobFor(3, 20)};
  *results = runRanks(c, {1, 2, 3}, 4, 60000, blobs);
  // Rank 0's own reply (role, proof, table) is left unread: its close ends it.
}

class BadParentTest : public BootstrapTest, public ::testing::WithParamInterface<Parent> {};

TEST_P(BadParentTest, ItsChildGetsTheRootsTable) {
  EnvGuard fanout("FTCCL_BOOTSTRAP_FANOUT", "1");
  const UniqueIdContents c = newRoot();
  BadParent parent(GetParam(), c);
  std::vector<Result> results;
  Bytes rank0;
  chainWithABadParent(c, parent.address(), &results, &rank0);
  const std::vector<Bytes> blobs{rank0, blobFor(1, 20), blobFor(2, 20), blobFor(3, 20)};
  ASSERT_EQ(results.size(), 3u);
  for (size_t i = 0; i < results.size(); ++i) {
    ASSERT_TRUE(results[i].status.isOk())
        << "rank " << i + 1 << ": " << results[i].status.message();
    EXPECT_EQ(results[i].table, blobs) << "rank " << i + 1;
  }
  // Rank 1 from the root after all; 2 and 3 from their parents, or from the root if
  // the machine was too slow for their wait.
  EXPECT_TRUE(results[0].stats.parentFailed);
  EXPECT_EQ(results[0].stats.tableFrom, -1);
  for (int r : {2, 3}) {
    const RendezvousStats& s = results[static_cast<size_t>(r - 1)].stats;
    EXPECT_EQ(s.tableFrom, s.parentFailed ? -1 : r - 1) << "rank " << r;
  }
  const std::string log = logText();
  EXPECT_GE(count(log, "did not relay the table"), 1u) << log;
  if (GetParam() == Parent::kLying) {
    EXPECT_NE(log.find("digest mismatch"), std::string::npos) << log;
  }
}

INSTANTIATE_TEST_SUITE_P(Faults, BadParentTest,
                         ::testing::Values(Parent::kDead, Parent::kLying, Parent::kSilent),
                         [](const ::testing::TestParamInfo<Parent>& info) {
                           return std::string(info.param == Parent::kDead    ? "Dead"
                                              : info.param == Parent::kLying ? "Lying"
                                                                             : "Silent");
                         });

// A relay listener answers only fetches that prove the secret for its challenge.
TEST(RelayServer, AStrangerGetsNothingAndAChildTheTable) {
  RelayServer server;
  net::SockAddr local;
  ASSERT_TRUE(net::numericSockAddr("127.0.0.1", 0, &local).isOk());
  ASSERT_TRUE(server.open(local).isOk());
  const uint8_t secret[16] = {1, 2, 3};
  const uint64_t nonce = 77;
  const auto table = std::make_shared<const Bytes>(
      bootstrap::encodeTable(nonce, {blobFor(0, 10), blobFor(1, 10)}));
  uint32_t served = 0;
  std::thread serving([&] {
    served = server.serve([&] { return table; }, 1, nonce, bootstrap::replyDigest(*table), secret,
                          net::deadlineAfterMs(20000), {});
  });
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(bootstrap::parseHostPort(server.address(), &host, &port).isOk());
  UniqueIdContents at = sampleContents("127.0.0.1", false);
  at.rootPort = port;
  auto fetchWith = [&](const uint8_t* key, uint64_t withNonce,
                       const std::array<uint8_t, 32>& digest) {
    net::Fd fd = rawConnect(at);
    uint8_t challenge[16] = {0};
    readChallenge(fd, challenge);
    const Bytes fetch = bootstrap::encodeFetch(withNonce, 5, key, challenge, digest);
    EXPECT_TRUE(
        net::sendAll(fd.get(), fetch.data(), fetch.size(), net::deadlineAfterMs(5000)).isOk());
    Bytes got(table->size() + 1);
    size_t n = 0;
    (void)net::recvAll(fd.get(), got.data(), got.size(), net::deadlineAfterMs(5000), &n);
    got.resize(n);
    return got;
  };
  const uint8_t wrong[16] = {9};
  const auto digest = bootstrap::replyDigest(*table);
  EXPECT_TRUE(fetchWith(wrong, nonce, digest).empty()) << "a stranger was sent the table";
  EXPECT_TRUE(fetchWith(secret, nonce + 1, digest).empty()) << "a fetch of another rendezvous";
  EXPECT_TRUE(fetchWith(secret, nonce, {}).empty())
      << "a process of another job with the same secret and nonce (a reused FTCCL_COMM_ID), "
         "which does not know this table's digest";
  EXPECT_EQ(fetchWith(secret, nonce, digest), *table);
  serving.join();
  EXPECT_EQ(served, 1u);
  EXPECT_FALSE(server.isOpen());
}

}  // namespace
}  // namespace testing
}  // namespace ftccl
