// The public C API in one process: argument checking, error reporting, streams,
// abort, every collective on one rank, Send/Recv groups and CommSplit. Multi-rank cases
// use one thread per rank (each with its own communicator); the mp/ tests use real
// processes.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "ftccl.h"

namespace {

using Clock = std::chrono::steady_clock;

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = getenv(name);
    had_ = old != nullptr;
    if (had_) old_ = old;
    if (value)
      setenv(name, value, 1);
    else
      unsetenv(name);
  }
  ~ScopedEnv() {
    if (had_)
      setenv(name_.c_str(), old_.c_str(), 1);
    else
      unsetenv(name_.c_str());
  }

 private:
  std::string name_, old_;
  bool had_ = false;
};

bool contains(const char* text, const char* part) {
  return text != nullptr && std::strstr(text, part) != nullptr;
}

class SingleRank : public ::testing::Test {
 protected:
  void SetUp() override {
    ftcclUniqueId id;
    ASSERT_EQ(ftcclGetUniqueId(&id), ftcclSuccess) << ftcclGetLastError(nullptr);
    ASSERT_EQ(ftcclCommInitRank(&comm_, 1, id, 0), ftcclSuccess) << ftcclGetLastError(nullptr);
  }
  void TearDown() override {
    if (comm_) {
      EXPECT_EQ(ftcclCommDestroy(comm_), ftcclSuccess);
    }
  }
  ftcclComm_t comm_ = nullptr;
};

TEST(Api, VersionAndErrorStrings) {
  int version = 0;
  ASSERT_EQ(ftcclGetVersion(&version), ftcclSuccess);
  EXPECT_EQ(version, FTCCL_VERSION_CODE);
  EXPECT_EQ(ftcclGetVersion(nullptr), ftcclInvalidArgument);
  for (int r = 0; r <= ftcclNumResults; ++r) {
    EXPECT_NE(ftcclGetErrorString(static_cast<ftcclResult_t>(r)), nullptr);
  }
  EXPECT_TRUE(contains(ftcclGetErrorString(ftcclRemoteError), "peer"));
}

TEST_F(SingleRank, CountRankAndAsyncError) {
  int count = 0, rank = -2;
  ASSERT_EQ(ftcclCommCount(comm_, &count), ftcclSuccess);
  ASSERT_EQ(ftcclCommUserRank(comm_, &rank), ftcclSuccess);
  EXPECT_EQ(count, 1);
  EXPECT_EQ(rank, 0);
  ftcclResult_t async = ftcclInternalError;
  ASSERT_EQ(ftcclCommGetAsyncError(comm_, &async), ftcclSuccess);
  EXPECT_EQ(async, ftcclSuccess);
}

TEST_F(SingleRank, OneRankAllReduceIsACopyInAndOutOfPlace) {
  std::vector<float> in = {1.5f, -2.0f, 3.25f}, out(3, 0.0f);
  for (int op = 0; op < ftcclNumOps; ++op) {
    std::fill(out.begin(), out.end(), 0.0f);
    ASSERT_EQ(ftcclAllReduce(in.data(), out.data(), 3, ftcclFloat32, static_cast<ftcclRedOp_t>(op),
                             comm_, nullptr),
              ftcclSuccess);
    EXPECT_EQ(out, in);
    std::vector<float> inplace = in;
    ASSERT_EQ(ftcclAllReduce(inplace.data(), inplace.data(), 3, ftcclFloat32,
                             static_cast<ftcclRedOp_t>(op), comm_, nullptr),
              ftcclSuccess);
    EXPECT_EQ(inplace, in);
  }
  EXPECT_EQ(ftcclAllReduce(nullptr, nullptr, 0, ftcclInt8, ftcclSum, comm_, nullptr), ftcclSuccess);
}

TEST_F(SingleRank, BadArgumentsAreRejectedAndTheCommunicatorStillWorks) {
  float x[4] = {1, 2, 3, 4};
  struct Case {
    const char* what;
    ftcclResult_t got;
    const char* mentions;
  } cases[] = {
      {"null comm", ftcclAllReduce(x, x, 4, ftcclFloat32, ftcclSum, nullptr, nullptr), "comm"},
      {"null send", ftcclAllReduce(nullptr, x, 4, ftcclFloat32, ftcclSum, comm_, nullptr),
       "sendbuff"},
      {"null recv", ftcclAllReduce(x, nullptr, 4, ftcclFloat32, ftcclSum, comm_, nullptr),
       "recvbuff"},
      {"bad type",
       ftcclAllReduce(x, x, 4, static_cast<ftcclDataType_t>(42), ftcclSum, comm_, nullptr),
       "datatype"},
      {"bad op",
       ftcclAllReduce(x, x, 4, ftcclFloat32, static_cast<ftcclRedOp_t>(-1), comm_, nullptr), "op"},
      {"overflow", ftcclAllReduce(x, x, SIZE_MAX / 2, ftcclFloat32, ftcclSum, comm_, nullptr),
       "overflow"},
      {"bad root", ftcclBroadcast(x, x, 4, ftcclFloat32, 1, comm_, nullptr), "root"},
      {"negative root", ftcclBroadcast(x, x, 4, ftcclFloat32, -1, comm_, nullptr), "root"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(c.got, ftcclInvalidArgument) << c.what;
  }
  // The last error names the problem, per thread and per communicator.
  EXPECT_TRUE(contains(ftcclGetLastError(nullptr), "root")) << ftcclGetLastError(nullptr);
  EXPECT_TRUE(contains(ftcclGetLastError(comm_), "root")) << ftcclGetLastError(comm_);
  ftcclResult_t async = ftcclInternalError;
  ASSERT_EQ(ftcclCommGetAsyncError(comm_, &async), ftcclSuccess);
  EXPECT_EQ(async, ftcclSuccess) << "bad arguments must not revoke the communicator";
  float y[4] = {0, 0, 0, 0};
  ASSERT_EQ(ftcclAllReduce(x, y, 4, ftcclFloat32, ftcclSum, comm_, nullptr), ftcclSuccess);
  EXPECT_EQ(y[3], 4.0f);
  EXPECT_EQ(ftcclCommCount(comm_, nullptr), ftcclInvalidArgument);
  EXPECT_EQ(ftcclCommCount(nullptr, nullptr), ftcclInvalidArgument);
}

TEST_F(SingleRank, EveryCollectiveSendRecvGroupAndSplitWorkOnOneRank) {
  float x[3] = {1, 2, 3}, y[3] = {0, 0, 0};
  int activated = 0, n = 0;
  ftcclUniqueId id;
  ftcclComm_t other = nullptr;
  ftcclRebuildInfo_t info;
  ASSERT_EQ(ftcclReduce(x, y, 3, ftcclFloat32, ftcclSum, 0, comm_, nullptr), ftcclSuccess);
  EXPECT_EQ(y[2], 3.0f);
  ASSERT_EQ(ftcclAllGather(x, y, 3, ftcclFloat32, comm_, nullptr), ftcclSuccess);
  EXPECT_EQ(y[1], 2.0f);
  y[0] = 0;
  ASSERT_EQ(ftcclReduceScatter(x, y, 3, ftcclFloat32, ftcclAvg, comm_, nullptr), ftcclSuccess);
  EXPECT_EQ(y[0], 1.0f);
  // Send to self pairs with the receive from self of the same group.
  y[1] = 0;
  ASSERT_EQ(ftcclGroupStart(), ftcclSuccess);
  ASSERT_EQ(ftcclSend(x, 3, ftcclFloat32, 0, comm_, nullptr), ftcclSuccess);
  ASSERT_EQ(ftcclRecv(y, 3, ftcclFloat32, 0, comm_, nullptr), ftcclSuccess);
  ASSERT_EQ(ftcclGroupEnd(), ftcclSuccess);
  EXPECT_EQ(y[1], 2.0f);
  // A receive from self without its send: the group fails clearly, the comm stays usable.
  ASSERT_EQ(ftcclGroupStart(), ftcclSuccess);
  ASSERT_EQ(ftcclRecv(y, 3, ftcclFloat32, 0, comm_, nullptr), ftcclSuccess);
  EXPECT_EQ(ftcclGroupEnd(), ftcclInvalidUsage);
  EXPECT_TRUE(contains(ftcclGetLastError(comm_), "receives from self"));
  EXPECT_EQ(ftcclGroupEnd(), ftcclInvalidUsage);  // no group open
  EXPECT_EQ(ftcclSend(x, 3, ftcclFloat32, 1, comm_, nullptr), ftcclInvalidArgument);
  EXPECT_TRUE(contains(ftcclGetLastError(comm_), "peer 1"));
  EXPECT_EQ(ftcclReduce(x, y, 3, ftcclFloat32, ftcclSum, 2, comm_, nullptr), ftcclInvalidArgument);
  // Split: a child of one rank works; NOCOLOR gives none; other negative colors are refused.
  ASSERT_EQ(ftcclCommSplit(comm_, 7, 0, &other, nullptr), ftcclSuccess);
  ASSERT_NE(other, nullptr);
  ASSERT_EQ(ftcclAllReduce(x, y, 3, ftcclFloat32, ftcclMax, other, nullptr), ftcclSuccess);
  EXPECT_EQ(y[2], 3.0f);
  EXPECT_EQ(ftcclCommDestroy(other), ftcclSuccess);
  ASSERT_EQ(ftcclCommSplit(comm_, FTCCL_SPLIT_NOCOLOR, 0, &other, nullptr), ftcclSuccess);
  EXPECT_EQ(other, nullptr);
  EXPECT_EQ(ftcclCommSplit(comm_, -5, 0, &other, nullptr), ftcclInvalidArgument);
  // Join ids: a corrupt one is refused at once; a NULL out-pointer too.
  std::memset(&id, 0, sizeof(id));
  EXPECT_EQ(ftcclCommJoinAsSpare(&other, id, nullptr), ftcclInvalidArgument);
  EXPECT_EQ(other, nullptr);
  EXPECT_EQ(ftcclCommGetJoinId(comm_, nullptr), ftcclInvalidArgument);
  EXPECT_EQ(ftcclCommGetJoinId(comm_, &id), ftcclSuccess);
  // Standby is for spares only.
  EXPECT_EQ(ftcclCommStandby(comm_, &activated), ftcclInvalidUsage);
  EXPECT_TRUE(contains(ftcclGetLastError(nullptr), "not a spare"));
  // Rebuild exists: on a healthy communicator there is nothing to rebuild.
  EXPECT_EQ(ftcclCommRebuild(comm_, &info), ftcclInvalidUsage);
  EXPECT_TRUE(contains(ftcclGetLastError(nullptr), "not revoked"));
  int failed[4] = {-1, -1, -1, -1};
  ASSERT_EQ(ftcclCommFailedRanks(comm_, failed, 4, &n), ftcclSuccess);
  EXPECT_EQ(n, 0);
  EXPECT_EQ(ftcclCommFailedRanks(comm_, nullptr, 4, &n), ftcclInvalidArgument);
}

TEST_F(SingleRank, StreamsRunInOrderAndReportErrors) {
  ftcclStream_t s1 = nullptr, s2 = nullptr;
  ASSERT_EQ(ftcclStreamCreate(&s1), ftcclSuccess);
  ASSERT_EQ(ftcclStreamCreate(&s2), ftcclSuccess);
  std::vector<int> a(1000, 7), b(1000, 0), c(1000, 0);
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(ftcclAllReduce(a.data(), b.data(), a.size(), ftcclInt32, ftcclSum, comm_, s1),
              ftcclSuccess);
    ASSERT_EQ(ftcclBroadcast(b.data(), c.data(), b.size(), ftcclInt32, 0, comm_, s2), ftcclSuccess);
  }
  EXPECT_EQ(ftcclStreamSynchronize(s1), ftcclSuccess);
  EXPECT_EQ(ftcclStreamSynchronize(s2), ftcclSuccess);
  EXPECT_EQ(c[999], 7);
  EXPECT_EQ(ftcclStreamQuery(s1), ftcclSuccess);
  EXPECT_EQ(ftcclStreamSynchronize(nullptr), ftcclSuccess);
  EXPECT_EQ(ftcclStreamDestroy(s1), ftcclSuccess);
  EXPECT_EQ(ftcclStreamDestroy(s2), ftcclSuccess);
  EXPECT_EQ(ftcclStreamDestroy(nullptr), ftcclInvalidArgument);
}

TEST(Init, BadRankCountsAndIdsAreRejected) {
  ftcclUniqueId id;
  ASSERT_EQ(ftcclGetUniqueId(&id), ftcclSuccess);
  ftcclComm_t comm = nullptr;
  EXPECT_EQ(ftcclCommInitRank(&comm, 0, id, 0), ftcclInvalidArgument);
  EXPECT_EQ(ftcclCommInitRank(&comm, -3, id, 0), ftcclInvalidArgument);
  EXPECT_EQ(ftcclCommInitRank(&comm, 2, id, 2), ftcclInvalidArgument);
  EXPECT_EQ(ftcclCommInitRank(&comm, 2, id, -1), ftcclInvalidArgument);
  EXPECT_TRUE(contains(ftcclGetLastError(nullptr), "rank"));
  EXPECT_EQ(ftcclCommInitRank(nullptr, 1, id, 0), ftcclInvalidArgument);
  ftcclUniqueId corrupted = id;
  corrupted.internal[7] ^= 0x5a;
  EXPECT_EQ(ftcclCommInitRank(&comm, 1, corrupted, 0), ftcclInvalidArgument);
  EXPECT_TRUE(contains(ftcclGetLastError(nullptr), "unique id")) << ftcclGetLastError(nullptr);
  EXPECT_EQ(comm, nullptr);
}

TEST(Init, BadConfigIsRejected) {
  ftcclUniqueId id;
  ASSERT_EQ(ftcclGetUniqueId(&id), ftcclSuccess);
  ftcclComm_t comm = nullptr;
  ftcclConfig_t raw;
  std::memset(&raw, 0, sizeof(raw));
  EXPECT_EQ(ftcclCommInitRankConfig(&comm, 1, id, 0, &raw), ftcclInvalidArgument);
  ftcclConfig_t spares = FTCCL_CONFIG_INITIALIZER;
  spares.nSpares = -1;
  EXPECT_EQ(ftcclCommInitRankConfig(&comm, 1, id, 0, &spares), ftcclInvalidArgument);
  EXPECT_TRUE(contains(ftcclGetLastError(nullptr), "nSpares"));
  spares.nSpares = 1;  // rank 2 is beyond the one rank and one spare
  EXPECT_EQ(ftcclCommInitRankConfig(&comm, 1, id, 2, &spares), ftcclInvalidArgument);
  EXPECT_TRUE(contains(ftcclGetLastError(nullptr), "nSpares=1"));
  ftcclConfig_t negative = FTCCL_CONFIG_INITIALIZER;
  negative.opTimeoutMs = -5;
  EXPECT_EQ(ftcclCommInitRankConfig(&comm, 1, id, 0, &negative), ftcclInvalidArgument);
  EXPECT_TRUE(contains(ftcclGetLastError(nullptr), "opTimeoutMs"));
  ftcclConfig_t algo = FTCCL_CONFIG_INITIALIZER;
  algo.algorithm = "allreduce:bogus";
  EXPECT_EQ(ftcclCommInitRankConfig(&comm, 1, id, 0, &algo), ftcclInvalidArgument);
  algo.algorithm = "broadcast:tree";
  EXPECT_EQ(ftcclCommInitRankConfig(&comm, 1, id, 0, &algo), ftcclInvalidArgument);
  EXPECT_TRUE(contains(ftcclGetLastError(nullptr), "broadcast has no tree"));
  {
    ScopedEnv env("FTCCL_TUNING", "alpha_us=fast");
    EXPECT_EQ(ftcclCommInitRank(&comm, 1, id, 0), ftcclInvalidArgument);
    EXPECT_TRUE(contains(ftcclGetLastError(nullptr), "FTCCL_TUNING"));
  }
  {
    ScopedEnv env("FTCCL_OP_TIMEOUT_MS", "12abc");
    EXPECT_EQ(ftcclCommInitRank(&comm, 1, id, 0), ftcclInvalidArgument);
    EXPECT_TRUE(contains(ftcclGetLastError(nullptr), "FTCCL_OP_TIMEOUT_MS"));
  }
  {
    ScopedEnv env("FTCCL_BOOTSTRAP_TIMEOUT_MS", "-1");
    EXPECT_EQ(ftcclCommInitRank(&comm, 1, id, 0), ftcclInvalidArgument);
  }
  {
    ScopedEnv env("FTCCL_REDUCE_ISA", "sse9");
    EXPECT_EQ(ftcclCommInitRank(&comm, 1, id, 0), ftcclInvalidArgument);
    EXPECT_TRUE(contains(ftcclGetLastError(nullptr), "FTCCL_REDUCE_ISA=sse9"));
  }
}

// Rendezvous already completed: the root is gone, init must fail within the timeout.
TEST(Init, StaleIdFailsWithinTheBootstrapTimeout) {
  ftcclUniqueId id;
  ASSERT_EQ(ftcclGetUniqueId(&id), ftcclSuccess);
  ftcclComm_t first = nullptr;
  ASSERT_EQ(ftcclCommInitRank(&first, 1, id, 0), ftcclSuccess);
  ScopedEnv env("FTCCL_BOOTSTRAP_TIMEOUT_MS", "1000");
  ftcclComm_t again = nullptr;
  auto start = Clock::now();
  ftcclResult_t r = ftcclCommInitRank(&again, 1, id, 0);
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_NE(r, ftcclSuccess);
  EXPECT_LT(seconds, 30.0) << "must not hang";
  EXPECT_GT(std::strlen(ftcclGetLastError(nullptr)), 10u);
  EXPECT_EQ(ftcclCommDestroy(first), ftcclSuccess);
}

TEST(Init, UnreachableRootFailsWithAClearError) {
  // Port 1 on loopback: nobody listens there.
  ScopedEnv id("FTCCL_COMM_ID", "127.0.0.1:1");
  ScopedEnv secret("FTCCL_COMM_SECRET", "0123456789abcdef0123456789abcdef");
  ScopedEnv timeout("FTCCL_BOOTSTRAP_TIMEOUT_MS", "1000");
  ftcclUniqueId uid;
  ASSERT_EQ(ftcclGetUniqueId(&uid), ftcclSuccess);
  ftcclComm_t comm = nullptr;
  auto start = Clock::now();
  EXPECT_NE(ftcclCommInitRank(&comm, 2, uid, 1), ftcclSuccess);
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_LT(seconds, 30.0);
  EXPECT_TRUE(contains(ftcclGetLastError(nullptr), "127.0.0.1:1")) << ftcclGetLastError(nullptr);
}

// Two ranks as threads: rank 1 never joins the all-reduce; a watchdog aborts rank 0's
// blocked call, which must return promptly with an error.
TEST(Abort, WakesABlockedCallFromAnotherThread) {
  ftcclUniqueId id;
  ASSERT_EQ(ftcclGetUniqueId(&id), ftcclSuccess);
  ftcclComm_t comms[2] = {nullptr, nullptr};
  std::thread peer([&] { EXPECT_EQ(ftcclCommInitRank(&comms[1], 2, id, 1), ftcclSuccess); });
  ASSERT_EQ(ftcclCommInitRank(&comms[0], 2, id, 0), ftcclSuccess);
  peer.join();
  std::vector<float> data(1 << 16, 1.0f);
  std::atomic<bool> returned{false};
  std::thread watchdog([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_FALSE(returned.load());
    EXPECT_EQ(ftcclCommAbort(comms[0]), ftcclSuccess);
  });
  auto start = Clock::now();
  ftcclResult_t r = ftcclAllReduce(data.data(), data.data(), data.size(), ftcclFloat32, ftcclSum,
                                   comms[0], nullptr);
  returned = true;
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  watchdog.join();
  EXPECT_NE(r, ftcclSuccess);
  EXPECT_LT(seconds, 20.0);
  EXPECT_TRUE(contains(ftcclGetLastError(nullptr), "abort")) << ftcclGetLastError(nullptr);
  EXPECT_EQ(ftcclCommAbort(comms[1]), ftcclSuccess);
}

// A hot spare (a thread here) holds rank -1, may not run collectives, and its standby
// is woken by CommAbort from another thread; the rank works without it meanwhile.
TEST(Spares, ASpareWaitsWithoutARankAndAbortWakesIt) {
  ftcclUniqueId id;
  ASSERT_EQ(ftcclGetUniqueId(&id), ftcclSuccess);
  ftcclConfig_t config = FTCCL_CONFIG_INITIALIZER;
  config.nSpares = 1;
  ftcclComm_t comms[2] = {nullptr, nullptr};
  std::thread spareInit(
      [&] { EXPECT_EQ(ftcclCommInitRankConfig(&comms[1], 1, id, 1, &config), ftcclSuccess); });
  ASSERT_EQ(ftcclCommInitRankConfig(&comms[0], 1, id, 0, &config), ftcclSuccess);
  spareInit.join();
  ASSERT_NE(comms[1], nullptr);
  int rank = 0, count = 0;
  ASSERT_EQ(ftcclCommUserRank(comms[1], &rank), ftcclSuccess);
  EXPECT_EQ(rank, -1);
  ASSERT_EQ(ftcclCommCount(comms[1], &count), ftcclSuccess);
  EXPECT_EQ(count, 1);
  float x = 2, y = 0;
  EXPECT_EQ(ftcclAllReduce(&x, &y, 1, ftcclFloat32, ftcclSum, comms[1], nullptr),
            ftcclInvalidUsage);
  EXPECT_TRUE(contains(ftcclGetLastError(comms[1]), "spare")) << ftcclGetLastError(comms[1]);
  ftcclRebuildInfo_t info;
  EXPECT_EQ(ftcclCommRebuild(comms[1], &info), ftcclInvalidUsage);
  ASSERT_EQ(ftcclAllReduce(&x, &y, 1, ftcclFloat32, ftcclSum, comms[0], nullptr), ftcclSuccess);
  EXPECT_EQ(y, 2.0f);

  std::atomic<bool> returned{false};
  int activated = -7;
  ftcclResult_t standby = ftcclSuccess;
  std::thread spare([&] {
    standby = ftcclCommStandby(comms[1], &activated);
    returned = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(returned.load());  // no failure, nobody left: it waits
  auto start = Clock::now();
  EXPECT_EQ(ftcclCommAbort(comms[1]), ftcclSuccess);
  spare.join();
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 20.0);
  EXPECT_EQ(standby, ftcclInvalidUsage);
  EXPECT_EQ(activated, -7);
  EXPECT_EQ(ftcclCommDestroy(comms[0]), ftcclSuccess);
}

// opTimeoutMs: rank 1 (a thread, alive) never joins; rank 0's op fails with
// ftcclTimeout naming the rank it waited for, and the communicator is revoked.
TEST(Timeout, AnOpWithoutProgressFailsAndNamesTheMissingRank) {
  ftcclUniqueId id;
  ASSERT_EQ(ftcclGetUniqueId(&id), ftcclSuccess);
  ftcclComm_t comms[2] = {nullptr, nullptr};
  ftcclConfig_t config = FTCCL_CONFIG_INITIALIZER;
  config.opTimeoutMs = 300;
  std::thread peer(
      [&] { EXPECT_EQ(ftcclCommInitRankConfig(&comms[1], 2, id, 1, &config), ftcclSuccess); });
  ASSERT_EQ(ftcclCommInitRankConfig(&comms[0], 2, id, 0, &config), ftcclSuccess);
  peer.join();
  std::vector<float> data(1024, 1.0f);
  auto start = Clock::now();
  EXPECT_EQ(ftcclAllReduce(data.data(), data.data(), data.size(), ftcclFloat32, ftcclSum, comms[0],
                           nullptr),
            ftcclTimeout);
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_GE(seconds, 0.25);
  EXPECT_LT(seconds, 20.0);
  EXPECT_TRUE(contains(ftcclGetLastError(comms[0]), "waiting for rank 1"))
      << ftcclGetLastError(comms[0]);
  ftcclResult_t async = ftcclSuccess;
  ASSERT_EQ(ftcclCommGetAsyncError(comms[0], &async), ftcclSuccess);
  EXPECT_EQ(async, ftcclTimeout);
  EXPECT_EQ(ftcclBroadcast(data.data(), data.data(), 4, ftcclFloat32, 0, comms[0], nullptr),
            ftcclTimeout)
      << "later ops fail at once";
  EXPECT_EQ(ftcclCommDestroy(comms[0]), ftcclSuccess);
  EXPECT_EQ(ftcclCommDestroy(comms[1]), ftcclSuccess);
}

// Two and three ranks as threads, over UCX: correct sums, every rank the same bits.
TEST(Threads, RanksAsThreadsAgree) {
  for (int n : {2, 3}) {
    ftcclUniqueId id;
    ASSERT_EQ(ftcclGetUniqueId(&id), ftcclSuccess);
    std::vector<std::vector<double>> out(n, std::vector<double>(100003));
    std::vector<std::thread> ranks;
    std::atomic<int> failures{0};
    for (int r = 0; r < n; ++r) {
      ranks.emplace_back([&, r] {
        ftcclComm_t comm = nullptr;
        if (ftcclCommInitRank(&comm, n, id, r) != ftcclSuccess) {
          ++failures;
          return;
        }
        std::vector<double> in(out[r].size());
        for (size_t i = 0; i < in.size(); ++i) in[i] = (r + 1) * 0.1 + i;  // inexact on purpose
        if (ftcclAllReduce(in.data(), out[r].data(), in.size(), ftcclFloat64, ftcclSum, comm,
                           nullptr) != ftcclSuccess) {
          ++failures;
        }
        ftcclCommDestroy(comm);
      });
    }
    for (auto& t : ranks) t.join();
    ASSERT_EQ(failures.load(), 0);
    for (int r = 1; r < n; ++r) {
      EXPECT_EQ(std::memcmp(out[r].data(), out[0].data(), out[0].size() * sizeof(double)), 0)
          << "rank " << r << " differs from rank 0";
    }
    EXPECT_NEAR(out[0][5], n * 5 + 0.1 * n * (n + 1) / 2, 1e-9);
  }
}

}  // namespace
