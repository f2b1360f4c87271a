// Bootstrap: the unique id (encoding, corruption), FTCCL_COMM_ID and FTCCL_COMM_SECRET,
// FTCCL_BOOTSTRAP_TIMEOUT_MS and FTCCL_SOCKET_IFNAME.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstring>
#include <random>
#include <string>

#include "bootstrap/bootstrap.h"
#include "bootstrap/wire.h"
#include "bootstrap_fixture.h"
#include "util/net/socket.h"

namespace ftccl {
namespace testing {
namespace {

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

}  // namespace
}  // namespace testing
}  // namespace ftccl
