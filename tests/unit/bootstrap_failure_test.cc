// Bootstrap: timeouts and failures. Missing ranks named, a majority with rank 0 completing,
// unreachable or cancelled roots, roots stopped, forked or torn down at exit, and no
// descriptor leaked on any path.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "bootstrap/bootstrap.h"
#include "bootstrap_fixture.h"
#include "util/net/socket.h"

namespace ftccl {
namespace testing {
namespace {

using net::Clock;

TEST_F(BootstrapTest, MissingRanksTimeOutNamingThem) {
  UniqueIdContents c = newRoot();  // the root's own timeout is the 120 s default
  std::vector<Bytes> blobs = {blobFor(0, 8), blobFor(1, 8), blobFor(2, 8), blobFor(3, 8)};
  auto results = runRanks(c, {0, 1}, 4, 1500, blobs);
  for (const Result& r : results) {
    EXPECT_EQ(r.status.code(), ftcclTimeout) << r.status.message();
    EXPECT_NE(r.status.message().find("ranks 2,3 of 4 did not join within 1500 ms"),
              std::string::npos)
        << r.status.message();
    EXPECT_GE(r.ms, 1300);
    EXPECT_LT(r.ms, 10000);  // the ranks' 1500 ms, not the root's 120 s (generous: 2 busy cores)
  }
}

// A process killed or stopped during init: with rank 0 and a strict majority joined,
// the rendezvous completes at the deadline and the missing ranks' entries are empty
// (an empty blob is refused from a rank, so it can only mean "absent").
TEST_F(BootstrapTest, MajorityWithRankZeroCompletesWithTheMissingEmpty) {
  UniqueIdContents c = newRoot();
  std::vector<Bytes> blobs = {blobFor(0, 8), blobFor(1, 8), blobFor(2, 8), blobFor(3, 8),
                              blobFor(4, 8)};
  auto results = runRanks(c, {0, 2, 4}, 5, 1500, blobs);
  for (const Result& r : results) {
    ASSERT_TRUE(r.status.isOk()) << r.status.message();
    ASSERT_EQ(r.table.size(), 5u);
    EXPECT_EQ(r.table[0], blobs[0]);
    EXPECT_TRUE(r.table[1].empty());
    EXPECT_EQ(r.table[2], blobs[2]);
    EXPECT_TRUE(r.table[3].empty());
    EXPECT_EQ(r.table[4], blobs[4]);
    EXPECT_GE(r.ms, 1300);
  }
  Bytes empty;
  std::vector<Bytes> table;
  EXPECT_EQ(rendezvous(c, 1, 5, empty, 1000, &table).code(), ftcclInvalidArgument);
}

TEST_F(BootstrapTest, RootTimeoutAppliesFromFirstHello) {
  timeout_.set("800");  // the root's timeout is shorter than the ranks'
  UniqueIdContents c = newRoot();
  std::vector<Bytes> blobs = {blobFor(0, 8), blobFor(1, 8), blobFor(2, 8)};
  auto results = runRanks(c, {1}, 3, 10000, blobs);
  EXPECT_EQ(results[0].status.code(), ftcclTimeout) << results[0].status.message();
  EXPECT_NE(results[0].status.message().find("ranks 0,2 of 3 did not join within 800 ms"),
            std::string::npos)
      << results[0].status.message();
  EXPECT_LT(results[0].ms, 8000);  // the root's 800 ms, not the rank's 10 s
}

TEST_F(BootstrapTest, UnreachableRootFailsWithinTimeout) {
  UniqueIdContents c = sampleContents("127.0.0.1", false);
  c.rootPort = closedLoopbackPort();
  Table t;
  auto t0 = Clock::now();
  Status st = rendezvous(c, 1, 2, blobFor(1, 4), 1000, &t);
  int64_t ms = msSince(t0);
  EXPECT_EQ(st.code(), ftcclSystemError);
  std::string want = "cannot reach bootstrap root 127.0.0.1:" + std::to_string(c.rootPort) +
                     " within 1000 ms (is the root process alive? stale unique id?)";
  EXPECT_NE(st.message().find(want), std::string::npos) << st.message();
  EXPECT_GE(ms, 950);
  EXPECT_LT(ms, 10000);  // bounded by its 1000 ms, generously on 2 busy cores
}

// A forming child communicator whose parent is revoked stops waiting for its root: a
// stopped root (its port accepts into the backlog and never answers) and a dead one
// (refused) both end with ftcclRemoteError long before the 60 s bootstrap timeout.
TEST_F(BootstrapTest, ACancelledRendezvousStopsWaitingForItsRoot) {
  net::SockAddr addr, bound;
  ASSERT_TRUE(net::numericSockAddr("127.0.0.1", 0, &addr).isOk());
  net::Fd stoppedRoot;
  ASSERT_TRUE(net::listenOn(addr, false, &stoppedRoot, &bound).isOk());
  for (uint16_t port : {bound.port(), closedLoopbackPort()}) {
    UniqueIdContents c = sampleContents("127.0.0.1", false);
    c.rootPort = port;
    Table t;
    auto t0 = Clock::now();
    auto parentRevoked = [&] { return msSince(t0) >= 200; };
    Status st = rendezvous(c, 1, 2, blobFor(1, 4), 60000, &t, parentRevoked);
    int64_t ms = msSince(t0);
    EXPECT_EQ(st.code(), ftcclRemoteError) << st.message();
    EXPECT_NE(st.message().find("given up"), std::string::npos) << st.message();
    EXPECT_GE(ms, 200);
    EXPECT_LT(ms, 30000);  // the 60 s timeout was not waited out
  }
}

TEST_F(BootstrapTest, RootGivesUpWhenNobodyComes) {
  timeout_.set("300");
  UniqueIdContents c = newRoot();
  std::this_thread::sleep_for(std::chrono::milliseconds(900));
  Table t;
  Status st = rendezvous(c, 0, 1, blobFor(0, 4), 500, &t);
  EXPECT_EQ(st.code(), ftcclSystemError) << st.message();
  EXPECT_NE(st.message().find("cannot reach bootstrap root"), std::string::npos);
  stopAllRoots();
  EXPECT_NE(logText().find("no rank joined within 300 ms"), std::string::npos) << logText();
}

TEST_F(BootstrapTest, StopAllRootsWakesWaitingRanks) {
  UniqueIdContents c = newRoot();
  Result r;
  std::thread t([&] { r.status = rendezvous(c, 0, 2, blobFor(0, 4), 20000, &r.table); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto t0 = Clock::now();
  stopAllRoots();
  t.join();
  EXPECT_LT(msSince(t0), 10000);  // woken, not the 20 s timeout
  EXPECT_EQ(r.status.code(), ftcclRemoteError) << r.status.message();
  EXPECT_NE(r.status.message().find("was stopped"), std::string::npos) << r.status.message();
}

TEST_F(BootstrapTest, ForkedChildLeavesTheParentsRootAlone) {
  UniqueIdContents c = newRoot();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    stopAllRoots();  // the root thread is the parent's: must neither join nor hang
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::vector<Bytes> blobs = {blobFor(0, 5), blobFor(1, 6)};
  auto results = runRanks(c, {0, 1}, 2, 10000, blobs);
  expectCompleteTables(results, blobs);
}

TEST(BootstrapExit, RootThreadsAreStoppedAtExit) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("FTCCL_SOCKET_IFNAME", "lo", 1);
        unsetenv("FTCCL_COMM_ID");
        ftcclUniqueId id;
        if (!createUniqueId(&id).isOk()) std::_Exit(3);
        UniqueIdContents c;
        if (!decodeUniqueId(id, &c).isOk()) std::_Exit(4);
        std::thread waiting([c] {  // a rank blocked in rendezvous while the process exits
          Table t;
          (void)rendezvous(c, 0, 2, Bytes{1}, 60000, &t);
        });
        waiting.detach();
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        std::exit(0);  // static destructor stops and joins the root thread
      },
      ::testing::ExitedWithCode(0), "");
}

int openDescriptors() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (readdir(d) != nullptr) ++n;
  closedir(d);
  return n;
}

TEST_F(BootstrapTest, NoDescriptorLeaks) {
  stopAllRoots();
  const int before = openDescriptors();
  {
    UniqueIdContents c = newRoot();
    std::vector<Bytes> blobs = {blobFor(0, 8), blobFor(1, 8)};
    UniqueIdContents wrong = c;
    wrong.secret[0] ^= 1;
    Table t;
    EXPECT_FALSE(rendezvous(wrong, 1, 2, blobs[1], 5000, &t).isOk());
    expectCompleteTables(runRanks(c, {0, 1}, 2, 5000, blobs), blobs);
    UniqueIdContents closed = sampleContents("127.0.0.1", false);
    closed.rootPort = closedLoopbackPort();
    EXPECT_FALSE(rendezvous(closed, 0, 1, blobs[0], 200, &t).isOk());
    UniqueIdContents pending = newRoot();  // a root nobody joins, stopped below
    (void)pending;
  }
  stopAllRoots();
  EXPECT_EQ(openDescriptors(), before);
}

}  // namespace
}  // namespace testing
}  // namespace ftccl
