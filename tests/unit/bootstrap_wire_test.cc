// Bootstrap: the wire format (hello, proofs, header, table, error) against truncation,
// corruption and random garbage.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <random>
#include <string>

#include "bootstrap/bootstrap.h"
#include "bootstrap/wire.h"
#include "bootstrap_fixture.h"

namespace ftccl {
namespace testing {
namespace {

const uint8_t kSampleSecret[16] = {0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36, 39, 42, 45};
const uint8_t kSampleChallenge[16] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};

// Recomputes the frame checksum after a test edits a frame on purpose.
void reseal(Bytes* frame) {
  uint64_t h = bootstrap::fnv1a64(frame->data() + 4, 8);
  h = bootstrap::fnv1a64(frame->data() + bootstrap::kFrameHeaderBytes,
                         frame->size() - bootstrap::kFrameHeaderBytes, h);
  for (int i = 0; i < 8; ++i) (*frame)[12 + i] = static_cast<uint8_t>(h >> (8 * i));
}

// The relay's frames: a Role survives the wire and anything cut, lengthened or bent is
// refused; a Fetch proves the secret for one challenge and nothing else.
TEST(Wire, RoleAndFetch) {
  bootstrap::Role in;
  in.nonce = 99;
  in.nranks = 100000;
  in.tableBytes = 4096;
  for (size_t i = 0; i < in.tableDigest.size(); ++i) in.tableDigest[i] = static_cast<uint8_t>(i);
  in.children = 8;
  in.depth = 3;
  in.hopMs = 250;
  in.parent = 17;
  in.parentAddress = "[::1]:5000";
  const Bytes frame = bootstrap::encodeRole(in);
  bootstrap::FrameHeader h;
  ASSERT_TRUE(bootstrap::parseFrameHeader(frame.data(), frame.size(), &h).isOk());
  ASSERT_EQ(h.type, bootstrap::FrameType::Role);
  const uint8_t* body = frame.data() + bootstrap::kFrameHeaderBytes;
  bootstrap::Role out;
  ASSERT_TRUE(bootstrap::decodeRoleBody(body, h.length, &out).isOk());
  EXPECT_EQ(out.nonce, 99u);
  EXPECT_EQ(out.nranks, 100000u);
  EXPECT_EQ(out.tableBytes, 4096u);
  EXPECT_EQ(out.tableDigest, in.tableDigest);
  EXPECT_EQ(out.children, 8u);
  EXPECT_EQ(out.depth, 3u);
  EXPECT_EQ(out.hopMs, 250u);
  EXPECT_EQ(out.parent, 17);
  EXPECT_EQ(out.parentAddress, in.parentAddress);
  for (size_t n = 0; n < h.length; ++n) {
    EXPECT_FALSE(bootstrap::decodeRoleBody(body, n, &out).isOk()) << "prefix " << n;
  }
  Bytes longer(body, body + h.length);
  longer.push_back(0);
  EXPECT_FALSE(bootstrap::decodeRoleBody(longer.data(), longer.size(), &out).isOk());
  bootstrap::Role bad = in;
  bad.parentAddress.clear();  // a parent nobody can reach
  Bytes badFrame = bootstrap::encodeRole(bad);
  EXPECT_FALSE(bootstrap::decodeRoleBody(badFrame.data() + bootstrap::kFrameHeaderBytes,
                                         badFrame.size() - bootstrap::kFrameHeaderBytes, &out)
                   .isOk());
  bad = in;
  bad.depth = bootstrap::kMaxRelayDepth + 1;  // deeper than any tree the root builds
  badFrame = bootstrap::encodeRole(bad);
  EXPECT_FALSE(bootstrap::decodeRoleBody(badFrame.data() + bootstrap::kFrameHeaderBytes,
                                         badFrame.size() - bootstrap::kFrameHeaderBytes, &out)
                   .isOk());
  bad = in;
  bad.tableBytes = 3;  // less than a frame header
  badFrame = bootstrap::encodeRole(bad);
  EXPECT_FALSE(bootstrap::decodeRoleBody(badFrame.data() + bootstrap::kFrameHeaderBytes,
                                         badFrame.size() - bootstrap::kFrameHeaderBytes, &out)
                   .isOk());

  std::array<uint8_t, 32> digest{};
  digest[0] = 1;
  const Bytes fetch = bootstrap::encodeFetch(99, 5, kSampleSecret, kSampleChallenge, digest);
  ASSERT_TRUE(bootstrap::parseFrameHeader(fetch.data(), fetch.size(), &h).isOk());
  ASSERT_EQ(h.type, bootstrap::FrameType::Fetch);
  const uint8_t* fb = fetch.data() + bootstrap::kFrameHeaderBytes;
  uint64_t nonce = 0;
  int32_t rank = -1;
  ASSERT_TRUE(
      bootstrap::fetchProven(fb, h.length, kSampleSecret, kSampleChallenge, digest, &nonce, &rank));
  EXPECT_EQ(nonce, 99u);
  EXPECT_EQ(rank, 5);
  const uint8_t otherSecret[16] = {1};
  EXPECT_FALSE(
      bootstrap::fetchProven(fb, h.length, otherSecret, kSampleChallenge, digest, &nonce, &rank));
  EXPECT_FALSE(
      bootstrap::fetchProven(fb, h.length, kSampleSecret, kSampleSecret, digest, &nonce, &rank))
      << "a fetch proven for another challenge (a replay on another connection)";
  EXPECT_FALSE(
      bootstrap::fetchProven(fb, h.length, kSampleSecret, kSampleChallenge, {}, &nonce, &rank))
      << "a fetch proven for another table (another job's rendezvous)";
  Bytes bent(fb, fb + h.length);
  bent.back() ^= 1;  // the rank
  EXPECT_FALSE(bootstrap::fetchProven(bent.data(), bent.size(), kSampleSecret, kSampleChallenge,
                                      digest, &nonce, &rank));
  EXPECT_FALSE(bootstrap::fetchProven(fb, h.length - 1, kSampleSecret, kSampleChallenge, digest,
                                      &nonce, &rank));
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
  EXPECT_EQ(out.relay, in.relay);

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

}  // namespace
}  // namespace testing
}  // namespace ftccl
