// Shared helpers for the bootstrap tests (bootstrap_*_test.cc, one binary, their tests in
// ftccl::testing): environment and log capture, blobs, raw clients of a root, ranks run
// in threads over loopback, and the BootstrapTest fixture (each test on "lo", without
// FTCCL_COMM_ID, its log captured, every root stopped at the end).
#pragma once

#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bootstrap/bootstrap.h"
#include "bootstrap/wire.h"
#include "util/log.h"
#include "util/net/socket.h"

namespace ftccl {
namespace testing {

using Bytes = std::vector<uint8_t>;
using Table = std::vector<Bytes>;

// Sets or unsets an environment variable for the scope, then restores it.
class EnvGuard {
 public:
  EnvGuard(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);
    hadOld_ = old != nullptr;
    if (hadOld_) old_ = old;
    set(value);
  }
  ~EnvGuard() { hadOld_ ? setenv(name_, old_.c_str(), 1) : unsetenv(name_); }
  void set(const char* value) { value ? setenv(name_, value, 1) : unsetenv(name_); }

 private:
  const char* name_;
  bool hadOld_ = false;
  std::string old_;
};

// Captures ftccl's log lines (added to the logger for one test).
class CaptureSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::string text() {
    std::lock_guard<std::mutex> lock(this->mutex_);
    return text_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    text_.append(msg.payload.data(), msg.payload.size());
    text_ += '\n';
  }
  void flush_() override {}

 private:
  std::string text_;
};

inline int64_t msSince(net::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(net::Clock::now() - t).count();
}

inline Bytes blobFor(int rank, size_t size) {
  Bytes b(size);
  for (size_t i = 0; i < size; ++i) b[i] = static_cast<uint8_t>(rank * 31 + i * 7);
  return b;
}

// A loopback port that nothing listens on (bound, then closed).
inline uint16_t closedLoopbackPort() {
  net::SockAddr addr, bound;
  EXPECT_TRUE(net::numericSockAddr("127.0.0.1", 0, &addr).isOk());
  net::Fd fd;
  Status st = net::listenOn(addr, false, &fd, &bound);
  EXPECT_TRUE(st.isOk()) << st.message();
  return bound.port();
}

inline void put32(Bytes* b, size_t off, uint32_t v) {
  for (int i = 0; i < 4; ++i) (*b)[off + i] = static_cast<uint8_t>(v >> (8 * i));
}

// A raw TCP client to a root, for garbage and protocol tests.
inline net::Fd rawConnect(const UniqueIdContents& c) {
  net::SockAddr addr;
  EXPECT_TRUE(net::numericSockAddr(c.rootHost, c.rootPort, &addr).isOk());
  net::Fd fd;
  std::string err;
  Status st = net::connectWithRetry(addr, net::deadlineAfterMs(5000), &fd, &err);
  EXPECT_TRUE(st.isOk()) << st.message();
  return fd;
}

// Reads the challenge a root sends at accept.
inline void readChallenge(const net::Fd& fd, uint8_t challenge[bootstrap::kChallengeBytes]) {
  Bytes frame(bootstrap::kFrameHeaderBytes + bootstrap::kChallengeBytes);
  size_t got = 0;
  ASSERT_TRUE(
      net::recvAll(fd.get(), frame.data(), frame.size(), net::deadlineAfterMs(5000), &got).isOk());
  bootstrap::FrameHeader h;
  ASSERT_TRUE(bootstrap::parseFrameHeader(frame.data(), frame.size(), &h).isOk());
  ASSERT_EQ(h.type, bootstrap::FrameType::Challenge);
  ASSERT_TRUE(bootstrap::decodeChallengeBody(frame.data() + bootstrap::kFrameHeaderBytes, h.length,
                                             challenge)
                  .isOk());
}

// A hello with every field set (rank 3 of 5), for the wire tests and raw clients.
inline bootstrap::Hello sampleHello() {
  bootstrap::Hello h;
  for (int i = 0; i < 16; ++i) h.challenge[i] = static_cast<uint8_t>(0x70 + i);
  h.nonce = 0xfeedfacecafebeefull;
  h.rank = 3;
  h.nranks = 5;
  h.timeoutMs = 1500;
  h.remainingMs = 1400;
  h.blob = blobFor(3, 37);
  h.relay = "127.0.0.1:40000";
  return h;
}

// A hello of `rank` of `nranks` proven for the challenge the root sent on `fd`.
inline Bytes provenHello(const net::Fd& fd, const UniqueIdContents& c, int rank, int nranks) {
  uint8_t challenge[16] = {0};
  readChallenge(fd, challenge);
  bootstrap::Hello h = sampleHello();
  h.nonce = c.nonce;
  h.rank = rank;
  h.nranks = nranks;
  return bootstrap::encodeHello(h, c.secret, challenge);
}

struct Result {
  Status status;
  Table table;
  int64_t ms = 0;
  RendezvousStats stats;
};

// Runs rendezvous for the given ranks in threads; results indexed like `ranks`.
inline std::vector<Result> runRanks(const UniqueIdContents& c, const std::vector<int>& ranks,
                                    int nranks, int timeoutMs, const std::vector<Bytes>& blobs) {
  std::vector<Result> results(ranks.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < ranks.size(); ++i) {
    threads.emplace_back([&, i] {
      auto t0 = net::Clock::now();
      results[i].status = rendezvous(c, ranks[i], nranks, blobs[static_cast<size_t>(ranks[i])],
                                     timeoutMs, &results[i].table, {}, &results[i].stats);
      results[i].ms = msSince(t0);
    });
  }
  for (auto& t : threads) t.join();
  return results;
}

class BootstrapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sink_ = std::make_shared<CaptureSink>();
    logger().sinks().push_back(sink_);
  }
  void TearDown() override {
    stopAllRoots();  // no root thread logs after this
    auto& sinks = logger().sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  UniqueIdContents newRoot() {
    ftcclUniqueId id;
    Status st = createUniqueId(&id);
    EXPECT_TRUE(st.isOk()) << st.message();
    UniqueIdContents c;
    st = decodeUniqueId(id, &c);
    EXPECT_TRUE(st.isOk()) << st.message();
    return c;
  }
  std::string logText() { return sink_->text(); }

  EnvGuard ifname_{"FTCCL_SOCKET_IFNAME", "lo"};
  EnvGuard commId_{"FTCCL_COMM_ID", nullptr};
  EnvGuard secret_{"FTCCL_COMM_SECRET", nullptr};
  EnvGuard timeout_{"FTCCL_BOOTSTRAP_TIMEOUT_MS", nullptr};
  std::shared_ptr<CaptureSink> sink_;
};

// The contents of an id whose root (host:29500) nobody runs; tests set the port.
inline UniqueIdContents sampleContents(const char* host, bool rankZero) {
  UniqueIdContents c;
  c.rootHost = host;
  c.rootPort = 29500;
  for (int i = 0; i < 16; ++i) c.secret[i] = static_cast<uint8_t>(0xa0 + i);
  c.nonce = 0x0123456789abcdefull;
  c.rankZeroStartsRoot = rankZero;
  return c;
}

// Every rank met and holds every rank's blob.
inline void expectCompleteTables(const std::vector<Result>& results,
                                 const std::vector<Bytes>& blobs) {
  for (size_t i = 0; i < results.size(); ++i) {
    ASSERT_TRUE(results[i].status.isOk()) << "rank " << i << ": " << results[i].status.message();
    EXPECT_EQ(results[i].table, blobs) << "rank " << i;
  }
}

}  // namespace testing
}  // namespace ftccl
