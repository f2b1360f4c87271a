// Bootstrap: unique id, FTCCL_COMM_ID parsing, wire format, and in-process rendezvous
// over loopback (threads play the ranks).
#include "bootstrap/bootstrap.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bootstrap/wire.h"
#include "util/log.h"
#include "util/net/socket.h"

namespace ftccl {
namespace {

using net::Clock;
using Bytes = std::vector<uint8_t>;
using Table = std::vector<Bytes>;

// ---- helpers ---------------------------------------------------------------------

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

int64_t msSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

Bytes blobFor(int rank, size_t size) {
  Bytes b(size);
  for (size_t i = 0; i < size; ++i) b[i] = static_cast<uint8_t>(rank * 31 + i * 7);
  return b;
}

// A loopback port that nothing listens on (bound, then closed).
uint16_t closedLoopbackPort() {
  net::SockAddr addr, bound;
  EXPECT_TRUE(net::numericSockAddr("127.0.0.1", 0, &addr).isOk());
  net::Fd fd;
  Status st = net::listenOn(addr, false, &fd, &bound);
  EXPECT_TRUE(st.isOk()) << st.message();
  return bound.port();
}

// Recomputes the frame checksum after a test edits a frame on purpose.
void reseal(Bytes* frame) {
  uint64_t h = bootstrap::fnv1a64(frame->data() + 4, 8);
  h = bootstrap::fnv1a64(frame->data() + bootstrap::kFrameHeaderBytes,
                         frame->size() - bootstrap::kFrameHeaderBytes, h);
  for (int i = 0; i < 8; ++i) (*frame)[12 + i] = static_cast<uint8_t>(h >> (8 * i));
}

void put32(Bytes* b, size_t off, uint32_t v) {
  for (int i = 0; i < 4; ++i) (*b)[off + i] = static_cast<uint8_t>(v >> (8 * i));
}

// A raw TCP client to a root, for garbage and protocol tests.
net::Fd rawConnect(const UniqueIdContents& c) {
  net::SockAddr addr;
  EXPECT_TRUE(net::numericSockAddr(c.rootHost, c.rootPort, &addr).isOk());
  net::Fd fd;
  std::string err;
  Status st = net::connectWithRetry(addr, net::deadlineAfterMs(5000), &fd, &err);
  EXPECT_TRUE(st.isOk()) << st.message();
  return fd;
}

// Reads the challenge a root sends at accept.
void readChallenge(const net::Fd& fd, uint8_t challenge[bootstrap::kChallengeBytes]) {
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

// A hello of `rank` of `nranks` proven for the challenge the root sent on `fd`.
Bytes provenHello(const net::Fd& fd, const UniqueIdContents& c, int rank, int nranks);

struct Result {
  Status status;
  Table table;
  int64_t ms = 0;
};

// Runs rendezvous for the given ranks in threads; results indexed like `ranks`.
std::vector<Result> runRanks(const UniqueIdContents& c, const std::vector<int>& ranks, int nranks,
                             int timeoutMs, const std::vector<Bytes>& blobs) {
  std::vector<Result> results(ranks.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < ranks.size(); ++i) {
    threads.emplace_back([&, i] {
      auto t0 = Clock::now();
      results[i].status = rendezvous(c, ranks[i], nranks, blobs[static_cast<size_t>(ranks[i])],
                                     timeoutMs, &results[i].table);
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

UniqueIdContents sampleContents(const char* host, bool rankZero) {
  UniqueIdContents c;
  c.rootHost = host;
  c.rootPort = 29500;
  for (int i = 0; i < 16; ++i) c.secret[i] = static_cast<uint8_t>(0xa0 + i);
  c.nonce = 0x0123456789abcdefull;
  c.rankZeroStartsRoot = rankZero;
  return c;
}

// ---- unique id ---------------------------------------------------------------------

TEST(UniqueId, RoundTripIPv4AndIPv6) {
  for (const char* host : {"127.0.0.1", "10.1.2.3", "::1", "fd00::2", "2001:db8::1:2"}) {
    for (bool rankZero : {false, true}) {
      UniqueIdContents in = sampleContents(host, rankZero), out;
      ftcclUniqueId id;
      encodeUniqueId(in, &id);
      Status st = decodeUniqueId(id, &out);
      ASSERT_TRUE(st.isOk()) << host << ": " << st.message();
      EXPECT_EQ(out.rootHost, in.rootHost);
      EXPECT_EQ(out.rootPort, in.rootPort);
      EXPECT_EQ(0, std::memcmp(out.secret, in.secret, 16));
      EXPECT_EQ(out.nonce, in.nonce);
      EXPECT_EQ(out.rankZeroStartsRoot, rankZero);
    }
  }
}

TEST(UniqueId, EverySingleByteCorruptionIsRejected) {
  for (const char* host : {"127.0.0.1", "::1"}) {
    ftcclUniqueId good;
    encodeUniqueId(sampleContents(host, true), &good);
    for (int pos = 0; pos < FTCCL_UNIQUE_ID_BYTES; ++pos) {
      for (int delta = 1; delta < 256; ++delta) {
        ftcclUniqueId bad = good;
        bad.internal[pos] = static_cast<char>(bad.internal[pos] ^ delta);
        UniqueIdContents out;
        Status st = decodeUniqueId(bad, &out);
        ASSERT_FALSE(st.isOk()) << "byte " << pos << " ^ " << delta << " accepted";
        ASSERT_EQ(st.code(), ftcclInvalidArgument);
        ASSERT_NE(st.message().find("unique id"), std::string::npos) << st.message();
      }
    }
  }
}

TEST(UniqueId, ZeroGarbageAndOtherVersion) {
  ftcclUniqueId zero;
  std::memset(&zero, 0, sizeof(zero));
  UniqueIdContents out;
  Status st = decodeUniqueId(zero, &out);
  EXPECT_EQ(st.code(), ftcclInvalidArgument);
  EXPECT_NE(st.message().find("corrupted unique id"), std::string::npos) << st.message();

  // A well-formed id of format version 2 (checksum recomputed).
  ftcclUniqueId other;
  encodeUniqueId(sampleContents("127.0.0.1", false), &other);
  other.internal[4] = 2;
  uint64_t h = bootstrap::fnv1a64(other.internal, 120);
  for (int i = 0; i < 8; ++i) other.internal[120 + i] = static_cast<char>(h >> (8 * i));
  st = decodeUniqueId(other, &out);
  EXPECT_EQ(st.code(), ftcclInvalidArgument);
  EXPECT_NE(st.message().find("unique id from another ftccl version"), std::string::npos)
      << st.message();

  // An unparsable host encodes into an id that decode rejects.
  UniqueIdContents badHost = sampleContents("not-an-address", false);
  ftcclUniqueId id;
  encodeUniqueId(badHost, &id);
  EXPECT_EQ(decodeUniqueId(id, &out).code(), ftcclInvalidArgument);

  ftcclUniqueId good;
  encodeUniqueId(sampleContents("127.0.0.1", false), &good);
  std::mt19937_64 rng(42);
  for (int i = 0; i < 20000; ++i) {
    ftcclUniqueId garbage;
    for (auto& ch : garbage.internal) ch = static_cast<char>(rng());
    if (i % 2) std::memcpy(garbage.internal, good.internal, 8);  // right magic and version
    EXPECT_FALSE(decodeUniqueId(garbage, &out).isOk());
  }
}

// ---- FTCCL_COMM_ID / FTCCL_COMM_SECRET ----------------------------------------------

TEST_F(BootstrapTest, CommIdBuildsTheSameIdEverywhere) {
  commId_.set("127.0.0.1:29500");
  secret_.set("00112233445566778899AABBCCDDeeff");
  ftcclUniqueId a, b;
  ASSERT_TRUE(createUniqueId(&a).isOk());
  ASSERT_TRUE(createUniqueId(&b).isOk());
  EXPECT_EQ(0, std::memcmp(&a, &b, sizeof(a)));
  UniqueIdContents c;
  ASSERT_TRUE(decodeUniqueId(a, &c).isOk());
  EXPECT_EQ(c.rootHost, "127.0.0.1");
  EXPECT_EQ(c.rootPort, 29500);
  EXPECT_TRUE(c.rankZeroStartsRoot);
  const uint8_t want[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                            0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
  EXPECT_EQ(0, std::memcmp(c.secret, want, 16));
  EXPECT_EQ(c.nonce, bootstrap::deriveCommIdNonce("127.0.0.1:29500", want));

  // Another secret or port gives another nonce.
  secret_.set("00112233445566778899aabbccddeef0");
  ftcclUniqueId d;
  ASSERT_TRUE(createUniqueId(&d).isOk());
  UniqueIdContents cd;
  ASSERT_TRUE(decodeUniqueId(d, &cd).isOk());
  EXPECT_NE(cd.nonce, c.nonce);

  commId_.set("[::1]:1234");
  ASSERT_TRUE(createUniqueId(&d).isOk());
  ASSERT_TRUE(decodeUniqueId(d, &cd).isOk());
  EXPECT_EQ(cd.rootHost, "::1");
  EXPECT_EQ(cd.rootPort, 1234);

  commId_.set("localhost:4321");  // a name, resolved
  Status st = createUniqueId(&d);
  ASSERT_TRUE(st.isOk()) << st.message();
  ASSERT_TRUE(decodeUniqueId(d, &cd).isOk());
  EXPECT_TRUE(cd.rootHost == "127.0.0.1" || cd.rootHost == "::1") << cd.rootHost;
  EXPECT_EQ(cd.rootPort, 4321);
}

// Without a secret anyone who reaches FTCCL_COMM_ID joins: refused with an error that
// says how to set one, or how to opt out in so many words (then: a warning).
TEST_F(BootstrapTest, CommIdWithoutSecretIsRefusedUnlessInsecureIsAskedFor) {
  commId_.set("127.0.0.1:29501");
  ftcclUniqueId id;
  Status refused = createUniqueId(&id);
  EXPECT_EQ(refused.code(), ftcclInvalidArgument);
  EXPECT_NE(refused.message().find("without FTCCL_COMM_SECRET"), std::string::npos)
      << refused.message();
  EXPECT_NE(refused.message().find("'insecure'"), std::string::npos) << refused.message();

  secret_.set("insecure");
  ASSERT_TRUE(createUniqueId(&id).isOk());
  UniqueIdContents c;
  ASSERT_TRUE(decodeUniqueId(id, &c).isOk());
  const uint8_t zero[16] = {0};
  EXPECT_EQ(0, std::memcmp(c.secret, zero, 16));
  std::string log = logText();
  EXPECT_NE(log.find("FTCCL_COMM_SECRET=insecure"), std::string::npos) << log;
  EXPECT_NE(log.find("127.0.0.1:29501 can join"), std::string::npos) << log;
}

TEST_F(BootstrapTest, MalformedSecretIsRejected) {
  commId_.set("127.0.0.1:29500");
  for (const char* bad : {"xyz", "0011223344556677889900aabbccddee0",  // 33
                          "0011223344556677889900aabbccdde",           // 31
                          "0011223344556677889900aabbccddeg", "0x112233445566778899aabbccddeeff",
                          " 0112233445566778899aabbccddeeff"}) {
    secret_.set(bad);
    ftcclUniqueId id;
    Status st = createUniqueId(&id);
    EXPECT_EQ(st.code(), ftcclInvalidArgument) << bad;
    EXPECT_NE(st.message().find("FTCCL_COMM_SECRET"), std::string::npos) << st.message();
    EXPECT_EQ(st.message().find(bad), std::string::npos) << "the secret is echoed";
  }
}

TEST_F(BootstrapTest, MalformedCommIdIsRejected) {
  for (const char* bad :
       {"nohost", "host:", ":123", "host:0", "host:65536", "host:12a", "host:-1", "::1:80",
        "[::1]80", "[]:80", "[::1]:", "[::1", "a b:80", "127.0.0.1:123456"}) {
    commId_.set(bad);
    ftcclUniqueId id;
    Status st = createUniqueId(&id);
    EXPECT_EQ(st.code(), ftcclInvalidArgument) << bad;
    EXPECT_NE(st.message().find("FTCCL_COMM_ID"), std::string::npos) << st.message();
  }
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(bootstrap::parseHostPort("[fe80::1]:65535", &host, &port).isOk());
  EXPECT_EQ(host, "fe80::1");
  EXPECT_EQ(port, 65535);
}

TEST_F(BootstrapTest, BootstrapTimeoutFromEnvironment) {
  int ms = 0;
  ASSERT_TRUE(bootstrapTimeoutMs(&ms).isOk());
  EXPECT_EQ(ms, 120000);
  timeout_.set("5000");
  ASSERT_TRUE(bootstrapTimeoutMs(&ms).isOk());
  EXPECT_EQ(ms, 5000);
  timeout_.set("86400000");
  ASSERT_TRUE(bootstrapTimeoutMs(&ms).isOk());
  EXPECT_EQ(ms, 86400000);
  for (const char* bad : {"0", "-1", "abc", "86400001", "", "10ms", "99999999999999999999"}) {
    timeout_.set(bad);
    Status st = bootstrapTimeoutMs(&ms);
    EXPECT_EQ(st.code(), ftcclInvalidArgument) << bad;
    EXPECT_NE(st.message().find("FTCCL_BOOTSTRAP_TIMEOUT_MS"), std::string::npos);
  }
  // An invalid timeout makes createUniqueId fail rather than start a root.
  timeout_.set("0");
  ftcclUniqueId id;
  EXPECT_EQ(createUniqueId(&id).code(), ftcclInvalidArgument);
}

TEST_F(BootstrapTest, SocketIfnameMustExist) {
  ifname_.set("no-such-iface0");
  ftcclUniqueId id;
  Status st = createUniqueId(&id);
  EXPECT_EQ(st.code(), ftcclInvalidArgument);
  EXPECT_NE(st.message().find("FTCCL_SOCKET_IFNAME=no-such-iface0"), std::string::npos);
  // The default choice (no socket is opened here: tests stay on loopback).
  ifname_.set(nullptr);
  net::SockAddr addr;
  std::string iface;
  st = net::chooseListenAddress(&addr, &iface);
  ASSERT_TRUE(st.isOk()) << st.message();
  EXPECT_EQ(addr.family(), AF_INET);
  EXPECT_FALSE(iface.empty());
  ifname_.set("lo");
  ASSERT_TRUE(net::chooseListenAddress(&addr, &iface).isOk());
  EXPECT_EQ(addr.host(), "127.0.0.1");
  EXPECT_EQ(iface, "lo");
}

// ---- wire format -------------------------------------------------------------------

const uint8_t kSampleSecret[16] = {0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36, 39, 42, 45};
const uint8_t kSampleChallenge[16] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};

bootstrap::Hello sampleHello() {
  bootstrap::Hello h;
  for (int i = 0; i < 16; ++i) h.challenge[i] = static_cast<uint8_t>(0x70 + i);
  h.nonce = 0xfeedfacecafebeefull;
  h.rank = 3;
  h.nranks = 5;
  h.timeoutMs = 1500;
  h.remainingMs = 1400;
  h.blob = blobFor(3, 37);
  return h;
}

Bytes provenHello(const net::Fd& fd, const UniqueIdContents& c, int rank, int nranks) {
  uint8_t challenge[16] = {0};
  readChallenge(fd, challenge);
  bootstrap::Hello h = sampleHello();
  h.nonce = c.nonce;
  h.rank = rank;
  h.nranks = nranks;
  return bootstrap::encodeHello(h, c.secret, challenge);
}

TEST(Wire, HelloRoundTripTruncationAndCorruption) {
  const bootstrap::Hello in = sampleHello();
  const Bytes frame = bootstrap::encodeHello(in, kSampleSecret, kSampleChallenge);
  bootstrap::Hello out;
  ASSERT_TRUE(bootstrap::decodeHello(frame, &out).isOk());
  EXPECT_EQ(0, std::memcmp(out.challenge, in.challenge, 16));
  EXPECT_EQ(out.nonce, in.nonce);
  EXPECT_EQ(out.rank, 3);
  EXPECT_EQ(out.nranks, 5);
  EXPECT_EQ(out.timeoutMs, 1500u);
  EXPECT_EQ(out.remainingMs, 1400u);
  EXPECT_EQ(out.blob, in.blob);

  for (size_t n = 0; n < frame.size(); ++n) {
    Bytes cut(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(bootstrap::decodeHello(cut, &out).isOk()) << "prefix " << n;
  }
  Bytes longer = frame;
  longer.push_back(0);
  EXPECT_FALSE(bootstrap::decodeHello(longer, &out).isOk());
  for (size_t pos = 0; pos < frame.size(); ++pos) {
    for (int delta : {1, 0x80, 0xff}) {
      Bytes bad = frame;
      bad[pos] = static_cast<uint8_t>(bad[pos] ^ delta);
      Status st = bootstrap::decodeHello(bad, &out);
      EXPECT_FALSE(st.isOk()) << "byte " << pos << " ^ " << delta;
      EXPECT_EQ(st.code(), ftcclInvalidArgument);
    }
  }
  // Resealed (valid checksum) but structurally wrong bodies.
  Bytes bad = frame;
  put32(&bad, bootstrap::kFrameHeaderBytes + 56, 38);  // blob length != bytes that follow
  reseal(&bad);
  EXPECT_FALSE(bootstrap::decodeHello(bad, &out).isOk());
  put32(&bad, bootstrap::kFrameHeaderBytes + 56, 0xffffffffu);
  reseal(&bad);
  EXPECT_FALSE(bootstrap::decodeHello(bad, &out).isOk());
  // A table is not a hello.
  EXPECT_FALSE(bootstrap::decodeHello(bootstrap::encodeTable(1, {{1}}), &out).isOk());
  // Empty blob works.
  bootstrap::Hello empty = in;
  empty.blob.clear();
  ASSERT_TRUE(
      bootstrap::decodeHello(bootstrap::encodeHello(empty, kSampleSecret, kSampleChallenge), &out)
          .isOk());
  EXPECT_TRUE(out.blob.empty());
}

// The hello proves the secret for the root's challenge of this connection; it never
// carries the secret, and no other secret, challenge or byte passes.
TEST(Wire, HelloProvesTheSecretWithoutCarryingIt) {
  const Bytes frame = bootstrap::encodeHello(sampleHello(), kSampleSecret, kSampleChallenge);
  const uint8_t* body = frame.data() + bootstrap::kFrameHeaderBytes;
  const size_t size = frame.size() - bootstrap::kFrameHeaderBytes;
  EXPECT_TRUE(bootstrap::helloProven(body, size, kSampleSecret, kSampleChallenge));
  EXPECT_EQ(std::search(frame.begin(), frame.end(), kSampleSecret, kSampleSecret + 16),
            frame.end());
  uint8_t otherSecret[16], otherChallenge[16];
  std::memcpy(otherSecret, kSampleSecret, 16);
  std::memcpy(otherChallenge, kSampleChallenge, 16);
  otherSecret[7] ^= 1;
  otherChallenge[0] ^= 0x80;
  EXPECT_FALSE(bootstrap::helloProven(body, size, otherSecret, kSampleChallenge));
  EXPECT_FALSE(bootstrap::helloProven(body, size, kSampleSecret, otherChallenge));
  for (size_t pos = 0; pos < size; ++pos) {
    Bytes bad(body, body + size);
    bad[pos] ^= 0x01;
    EXPECT_FALSE(bootstrap::helloProven(bad.data(), bad.size(), kSampleSecret, kSampleChallenge))
        << "byte " << pos;
  }
  // The root's proof of a reply: bound to both challenges and to the reply's bytes.
  const Bytes table = bootstrap::encodeTable(5, {{1, 2}});
  const Bytes proof = bootstrap::encodeReplyProof(kSampleSecret, kSampleChallenge, otherChallenge,
                                                  bootstrap::replyDigest(table));
  const uint8_t* tag = proof.data() + bootstrap::kFrameHeaderBytes;
  EXPECT_TRUE(bootstrap::replyProven(tag, 16, kSampleSecret, kSampleChallenge, otherChallenge,
                                     bootstrap::replyDigest(table)));
  EXPECT_FALSE(bootstrap::replyProven(tag, 16, otherSecret, kSampleChallenge, otherChallenge,
                                      bootstrap::replyDigest(table)));
  EXPECT_FALSE(bootstrap::replyProven(tag, 16, kSampleSecret, otherChallenge, kSampleChallenge,
                                      bootstrap::replyDigest(table)));
  EXPECT_FALSE(bootstrap::replyProven(tag, 16, kSampleSecret, kSampleChallenge, otherChallenge,
                                      bootstrap::replyDigest(bootstrap::encodeTable(5, {{1, 3}}))));
}

TEST(Wire, HeaderChecks) {
  Bytes frame = bootstrap::encodeHello(sampleHello(), kSampleSecret, kSampleChallenge);
  bootstrap::FrameHeader h;
  ASSERT_TRUE(bootstrap::parseFrameHeader(frame.data(), frame.size(), &h).isOk());
  EXPECT_EQ(h.type, bootstrap::FrameType::Hello);
  EXPECT_EQ(h.length, frame.size() - bootstrap::kFrameHeaderBytes);
  Bytes v2 = frame;
  v2[4] = 1;  // the format before challenge-response
  Status st = bootstrap::parseFrameHeader(v2.data(), v2.size(), &h);
  EXPECT_NE(st.message().find("another ftccl version"), std::string::npos) << st.message();
  Bytes huge = frame;
  put32(&huge, 8, 0x7fffffffu);  // length above any cap: rejected before any allocation
  EXPECT_FALSE(bootstrap::parseFrameHeader(huge.data(), huge.size(), &h).isOk());
  Bytes type9 = frame;
  type9[6] = 9;
  EXPECT_FALSE(bootstrap::parseFrameHeader(type9.data(), type9.size(), &h).isOk());
  EXPECT_FALSE(bootstrap::parseFrameHeader(frame.data(), 19, &h).isOk());
}

TEST(Wire, TableRoundTripTruncationAndCorruption) {
  Table blobs = {blobFor(0, 5), {}, blobFor(2, 300), blobFor(3, 1)};
  const Bytes frame = bootstrap::encodeTable(77, blobs);
  uint64_t nonce = 0;
  Table out;
  ASSERT_TRUE(bootstrap::decodeTable(frame, &nonce, &out).isOk());
  EXPECT_EQ(nonce, 77u);
  EXPECT_EQ(out, blobs);
  for (size_t n = 0; n < frame.size(); ++n) {
    Bytes cut(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(bootstrap::decodeTable(cut, &nonce, &out).isOk()) << "prefix " << n;
  }
  for (size_t pos = 0; pos < frame.size(); ++pos) {
    Bytes bad = frame;
    bad[pos] = static_cast<uint8_t>(bad[pos] ^ 0x10);
    EXPECT_FALSE(bootstrap::decodeTable(bad, &nonce, &out).isOk()) << "byte " << pos;
  }
  const size_t body = bootstrap::kFrameHeaderBytes;
  for (uint32_t nranks : {0u, 3u, 5u, 1000000u, 0xffffffffu}) {
    Bytes bad = frame;
    put32(&bad, body + 8, nranks);
    reseal(&bad);
    EXPECT_FALSE(bootstrap::decodeTable(bad, &nonce, &out).isOk()) << nranks;
  }
  Bytes bad = frame;
  put32(&bad, body + 12, 0xfffffff0u);  // first entry length
  reseal(&bad);
  EXPECT_FALSE(bootstrap::decodeTable(bad, &nonce, &out).isOk());
}

TEST(Wire, ErrorRoundTripAndCorruption) {
  const Bytes frame = bootstrap::encodeError(ftcclTimeout, "ranks 2,3 of 4 did not join");
  ftcclResult_t code = ftcclSuccess;
  std::string msg;
  ASSERT_TRUE(bootstrap::decodeError(frame, &code, &msg).isOk());
  EXPECT_EQ(code, ftcclTimeout);
  EXPECT_EQ(msg, "ranks 2,3 of 4 did not join");
  for (size_t n = 0; n < frame.size(); ++n) {
    Bytes cut(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(bootstrap::decodeError(cut, &code, &msg).isOk()) << "prefix " << n;
  }
  for (size_t pos = 0; pos < frame.size(); ++pos) {
    Bytes bad = frame;
    bad[pos] = static_cast<uint8_t>(bad[pos] ^ 0x01);
    EXPECT_FALSE(bootstrap::decodeError(bad, &code, &msg).isOk()) << "byte " << pos;
  }
  Bytes bad = frame;
  put32(&bad, bootstrap::kFrameHeaderBytes, 0);  // "success" is no error
  reseal(&bad);
  EXPECT_FALSE(bootstrap::decodeError(bad, &code, &msg).isOk());
  // Long messages are truncated to the cap, not rejected.
  std::string longMsg(bootstrap::kMaxErrorMessageBytes + 100, 'x');
  ASSERT_TRUE(bootstrap::decodeError(bootstrap::encodeError(ftcclRemoteError, longMsg), &code, &msg)
                  .isOk());
  EXPECT_EQ(msg.size(), bootstrap::kMaxErrorMessageBytes);
}

TEST(Wire, RandomGarbageNeverCrashes) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; ++i) {
    Bytes b(rng() % 80);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    if (b.size() >= 8 && (i & 1)) {  // right magic and version, garbage after
      put32(&b, 0, bootstrap::kFrameMagic);
      b[4] = static_cast<uint8_t>(bootstrap::kWireVersion);
      b[5] = 0;
    }
    bootstrap::Hello h;
    uint64_t nonce;
    Table t;
    ftcclResult_t code;
    std::string msg;
    EXPECT_FALSE(bootstrap::decodeHello(b, &h).isOk());
    EXPECT_FALSE(bootstrap::decodeTable(b, &nonce, &t).isOk());
    EXPECT_FALSE(bootstrap::decodeError(b, &code, &msg).isOk());
    EXPECT_FALSE(bootstrap::decodeHelloBody(b.data(), b.size() < 60 ? b.size() : 59, &h).isOk());
    (void)bootstrap::decodeTableBody(b.data(), b.size(), &nonce, &t);
    (void)bootstrap::decodeErrorBody(b.data(), b.size(), &code, &msg);
  }
}

TEST(Wire, FormatRankList) {
  EXPECT_EQ(bootstrap::formatRankList({2}), "rank 2");
  EXPECT_EQ(bootstrap::formatRankList({2, 3}), "ranks 2,3");
  EXPECT_EQ(bootstrap::formatRankList({0, 4, 5, 6, 7, 9}), "ranks 0,4-7,9");
  std::vector<int> many;
  for (int i = 0; i < 1000; i += 2) many.push_back(i);
  std::string s = bootstrap::formatRankList(many);
  EXPECT_LT(s.size(), 260u);
  EXPECT_NE(s.find(",..."), std::string::npos);
}

// ---- rendezvous -----------------------------------------------------------------

void expectCompleteTables(const std::vector<Result>& results, const std::vector<Bytes>& blobs) {
  for (size_t i = 0; i < results.size(); ++i) {
    ASSERT_TRUE(results[i].status.isOk()) << "rank " << i << ": " << results[i].status.message();
    EXPECT_EQ(results[i].table, blobs) << "rank " << i;
  }
}

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

TEST_F(BootstrapTest, WrongSecretIsRejectedOthersComplete) {
  UniqueIdContents c = newRoot();
  std::vector<Bytes> blobs = {blobFor(0, 16), blobFor(1, 16), blobFor(2, 16)};
  std::vector<Result> results(3);
  std::thread r0(
      [&] { results[0].status = rendezvous(c, 0, 3, blobs[0], 10000, &results[0].table); });
  std::thread r2(
      [&] { results[2].status = rendezvous(c, 2, 3, blobs[2], 10000, &results[2].table); });

  UniqueIdContents wrong = c;
  wrong.secret[5] ^= 0x40;
  Table t;
  auto t0 = Clock::now();
  Status st = rendezvous(wrong, 1, 3, blobs[1], 10000, &t);
  EXPECT_FALSE(st.isOk());
  EXPECT_LT(msSince(t0), 5000) << "a rejected rank must fail at once";
  EXPECT_NE(st.message().find("closed the connection"), std::string::npos) << st.message();

  results[1].status = rendezvous(c, 1, 3, blobs[1], 10000, &results[1].table);
  r0.join();
  r2.join();
  expectCompleteTables(results, blobs);
  stopAllRoots();
  std::string log = logText();
  EXPECT_NE(log.find("rejected bootstrap connection from 127.0.0.1:"), std::string::npos) << log;
  EXPECT_NE(log.find(": wrong secret"), std::string::npos) << log;
}

// More idle connections than the root lets wait for a hello (a flood from strangers):
// the oldest idle ones make room, the ranks that connect after them still meet, and
// the root says what it did.
TEST_F(BootstrapTest, IdleConnectionFloodDoesNotKeepRanksOut) {
  UniqueIdContents c = newRoot();
  std::vector<net::Fd> idle;
  for (int i = 0; i < 300; ++i) idle.push_back(rawConnect(c));
  std::vector<Bytes> blobs = {blobFor(0, 8), blobFor(1, 8), blobFor(2, 8)};
  expectCompleteTables(runRanks(c, {0, 1, 2}, 3, 20000, blobs), blobs);
  stopAllRoots();
  EXPECT_NE(logText().find("without a hello to make room"), std::string::npos) << logText();
}

// A hello recorded on one connection proves nothing on another: the root's challenge
// differs, so it is rejected like a wrong secret.
TEST_F(BootstrapTest, HelloReplayedOnAnotherConnectionIsRejected) {
  UniqueIdContents c = newRoot();
  net::Fd first = rawConnect(c);
  const Bytes recorded = provenHello(first, c, 1, 2);
  net::Fd replay = rawConnect(c);
  uint8_t other[16];
  readChallenge(replay, other);
  ASSERT_TRUE(
      net::sendAll(replay.get(), recorded.data(), recorded.size(), net::deadlineAfterMs(1000))
          .isOk());
  uint8_t byte = 0;
  size_t got = 0;
  Status st = net::recvAll(replay.get(), &byte, 1, net::deadlineAfterMs(5000), &got);
  EXPECT_FALSE(st.isOk()) << "the root answered a replayed hello";
  EXPECT_EQ(got, 0u);
  std::vector<Bytes> blobs = {blobFor(0, 8), blobFor(1, 8)};
  expectCompleteTables(runRanks(c, {0, 1}, 2, 10000, blobs), blobs);
  stopAllRoots();
  EXPECT_NE(logText().find("wrong secret"), std::string::npos) << logText();
}

// Whatever listens at the root's address must prove the secret too: a stranger (or a
// stale root of another job) that answers with a table of its own is not believed, and
// what the client sent it holds no secret.
TEST_F(BootstrapTest, AFakeRootIsNotBelievedAndLearnsNoSecret) {
  net::SockAddr addr, bound;
  ASSERT_TRUE(net::numericSockAddr("127.0.0.1", 0, &addr).isOk());
  net::Fd listener;
  ASSERT_TRUE(net::listenOn(addr, false, &listener, &bound).isOk());
  UniqueIdContents c = sampleContents("127.0.0.1", false);
  c.rootPort = bound.port();
  Bytes heard;
  std::thread fake([&] {
    net::Fd fd(::accept(listener.get(), nullptr, nullptr));
    if (!fd.valid()) return;
    uint8_t challenge[16] = {1};
    Bytes frame = bootstrap::encodeChallenge(challenge);
    (void)net::sendAll(fd.get(), frame.data(), frame.size(), net::deadlineAfterMs(2000));
    heard.resize(bootstrap::kFrameHeaderBytes);
    size_t got = 0;
    bootstrap::FrameHeader h;
    if (!net::recvAll(fd.get(), heard.data(), heard.size(), net::deadlineAfterMs(2000), &got)
             .isOk() ||
        !bootstrap::parseFrameHeader(heard.data(), heard.size(), &h).isOk()) {
      return;
    }
    heard.resize(heard.size() + h.length);
    (void)net::recvAll(fd.get(), heard.data() + bootstrap::kFrameHeaderBytes, h.length,
                       net::deadlineAfterMs(2000), &got);
    Bytes table = bootstrap::encodeTable(c.nonce, {blobFor(0, 8)});
    uint8_t guess[16] = {0}, clientChallenge[16] = {0};
    Bytes proof = bootstrap::encodeReplyProof(guess, challenge, clientChallenge,
                                              bootstrap::replyDigest(table));
    table.insert(table.end(), proof.begin(), proof.end());
    (void)net::sendAll(fd.get(), table.data(), table.size(), net::deadlineAfterMs(2000));
  });
  Table t;
  Status st = rendezvous(c, 0, 1, blobFor(0, 8), 5000, &t);
  fake.join();
  EXPECT_EQ(st.code(), ftcclRemoteError) << st.message();
  EXPECT_NE(st.message().find("did not prove that it holds this job's secret"), std::string::npos)
      << st.message();
  ASSERT_GT(heard.size(), 60u);
  EXPECT_EQ(std::search(heard.begin(), heard.end(), c.secret, c.secret + 16), heard.end());
}

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
    EXPECT_LT(r.ms, 3500);
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
  EXPECT_LT(results[0].ms, 3000);
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
  EXPECT_LT(ms, 2500);
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

TEST_F(BootstrapTest, InconsistentNranksAndDuplicateRankGetAnError) {
  UniqueIdContents c = newRoot();
  std::vector<Bytes> blobs = {blobFor(0, 8), blobFor(1, 8)};
  Result r0;
  std::thread t0([&] { r0.status = rendezvous(c, 0, 2, blobs[0], 15000, &r0.table); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // rank 0 has joined
  Table t;
  Status st = rendezvous(c, 1, 3, blobs[1], 5000, &t);
  EXPECT_EQ(st.code(), ftcclInvalidArgument) << st.message();
  EXPECT_NE(st.message().find("says nranks 3"), std::string::npos) << st.message();
  st = rendezvous(c, 0, 2, blobs[0], 5000, &t);
  EXPECT_EQ(st.code(), ftcclInvalidArgument) << st.message();
  EXPECT_NE(st.message().find("rank 0 already joined"), std::string::npos) << st.message();
  Result r1;
  r1.status = rendezvous(c, 1, 2, blobs[1], 5000, &r1.table);
  t0.join();
  expectCompleteTables({r0, r1}, blobs);
}

TEST_F(BootstrapTest, GarbageSilentAndPartialClientsDoNotStallTheRest) {
  UniqueIdContents c = newRoot();
  net::Fd silent = rawConnect(c);
  net::Fd garbage = rawConnect(c);
  Bytes junk(100, 0xab);
  ASSERT_TRUE(
      net::sendAll(garbage.get(), junk.data(), junk.size(), net::deadlineAfterMs(1000)).isOk());
  net::Fd partial = rawConnect(c);
  Bytes frame = provenHello(partial, c, 3, 5);
  ASSERT_TRUE(net::sendAll(partial.get(), frame.data(), 30, net::deadlineAfterMs(1000)).isOk());
  net::Fd hugeLength = rawConnect(c);
  Bytes hdr(frame.begin(), frame.begin() + 20);
  put32(&hdr, 8, 0x7fffffffu);
  ASSERT_TRUE(
      net::sendAll(hugeLength.get(), hdr.data(), hdr.size(), net::deadlineAfterMs(1000)).isOk());

  std::vector<Bytes> blobs = {blobFor(0, 8), blobFor(1, 8)};
  auto t0 = Clock::now();
  auto results = runRanks(c, {0, 1}, 2, 10000, blobs);
  expectCompleteTables(results, blobs);
  EXPECT_LT(msSince(t0), 3000);
  stopAllRoots();
  std::string log = logText();
  EXPECT_NE(log.find("dropped bootstrap connection from 127.0.0.1:"), std::string::npos) << log;
  EXPECT_NE(log.find("bad magic"), std::string::npos) << log;
  EXPECT_NE(log.find("exceeds the limit"), std::string::npos) << log;
}

TEST_F(BootstrapTest, RankThatLeftCanBeReplaced) {
  UniqueIdContents c = newRoot();
  {
    net::Fd fd = rawConnect(c);
    Bytes frame = provenHello(fd, c, 1, 2);
    ASSERT_TRUE(
        net::sendAll(fd.get(), frame.data(), frame.size(), net::deadlineAfterMs(1000)).isOk());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }  // closes: rank 1 leaves
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::vector<Bytes> blobs = {blobFor(0, 8), blobFor(1, 9)};
  auto results = runRanks(c, {0, 1}, 2, 10000, blobs);
  expectCompleteTables(results, blobs);
  stopAllRoots();
  EXPECT_NE(logText().find("disconnected before the rendezvous completed"), std::string::npos);
}

TEST_F(BootstrapTest, StopAllRootsWakesWaitingRanks) {
  UniqueIdContents c = newRoot();
  Result r;
  std::thread t([&] { r.status = rendezvous(c, 0, 2, blobFor(0, 4), 20000, &r.table); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto t0 = Clock::now();
  stopAllRoots();
  t.join();
  EXPECT_LT(msSince(t0), 2000);
  EXPECT_EQ(r.status.code(), ftcclRemoteError) << r.status.message();
  EXPECT_NE(r.status.message().find("was stopped"), std::string::npos) << r.status.message();
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
}  // namespace ftccl
