// The agreement's wire format, pinned: one message of each type encodes to the bytes of
// the layout one struct holding every type's fields had (each field in its place,
// defaults where a type has none), with failed sets as place ranges since issue 27.
// Processes of one build must understand each other whatever their compiler.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "hex_bytes.h"
#include "recovery/agreement_messages.h"

namespace ftccl {
namespace {

EpochSalt saltFrom(uint8_t first) {
  EpochSalt salt{};
  for (size_t i = 0; i < salt.size(); ++i) salt[i] = static_cast<uint8_t>(first + i);
  return salt;
}

const JoiningSpare kSpare{"s9", "node9", 9, {0xC1, 0xC2}};

AgreementCommit poolCommit() {
  AgreementCommit c;
  c.epoch = 4;
  c.failed = {3, 1};
  c.next.epoch = 4;
  c.next.ranks = {"p0", "s0"};
  c.next.spares = {"s9"};
  c.failedRanks = {1};
  c.replaced = 1;
  c.shrunk = true;
  c.joined = {kSpare};
  c.salt = saltFrom(0x20);
  return c;
}

struct Pinned {
  const char* name;
  RecoveryMessage message;
  const char* hex;  // from the one-struct codec
};

std::vector<Pinned> pinned() {
  return {
      {"report", AgreementReport{3, {2, 2}, 1, {3, 1}, {kSpare}, saltFrom(0x10), true},
       "010300000000000000020000000200000002000000000000000000000000000000000000000000000000"
       "0000000001000000020000007339050000006e6f6465390900000002000000c1c2000000000100000000"
       "00000002000000030000000100000001101112131415161718191a1b1c1d1e1f00000000"},
      {"commit", poolCommit(),
       "020400000000000000020000000300000001000000040000000000000002000000020000007030020000"
       "007330010000000200000073390100000001000000010000000101000000020000007339050000006e6f"
       "6465390900000002000000c1c200000000ffffffffffffffff0000000000202122232425262728292a2b"
       "2c2d2e2f00000000"},
      {"expelled", AgreementExpelled{5},
       "030500000000000000000000000000000000000000000000000000000000000000000000000000000000"
       "00000000ffffffffffffffff00000000000000000000000000000000000000000000000000"},
      {"join", JoinRequest{2, kSpare, {0x01}},
       "040200000000000000000000000000000000000000000000000000000000000000000000000001000000"
       "020000007339050000006e6f6465390900000002000000c1c20100000001ffffffffffffffff00000000"
       "000000000000000000000000000000000000000000"},
      {"join accept", JoinAccept{poolCommit(), {0x07, 0x08, 0x09}, {0xAA, 0xBB}},
       "050400000000000000020000000300000001000000040000000000000002000000020000007030020000"
       "007330010000000200000073390100000001000000010000000101000000020000007339050000006e6f"
       "6465390900000002000000c1c203000000070809ffffffffffffffff0000000000202122232425262728"
       "292a2b2c2d2e2f02000000aabb"},
      {"proposal", AgreementProposal{3, 2, {3, 1}, {kSpare}, saltFrom(0x30)},
       "060300000000000000020000000300000001000000000000000000000000000000000000000000000000"
       "0000000001000000020000007339050000006e6f6465390900000002000000c1c2000000000200000000"
       "0000000000000000303132333435363738393a3b3c3d3e3f00000000"},
      {"accept", AgreementAccept{3, 2},
       "070300000000000000000000000000000000000000000000000000000000000000000000000000000000"
       "00000000020000000000000000000000000000000000000000000000000000000000000000"},
  };
}

TEST(AgreementWire, EachTypeKeepsTheBytesOfTheOneStructCodec) {
  for (const Pinned& p : pinned()) {
    const std::vector<uint8_t> frame = encodeRecoveryMessage(p.message);
    EXPECT_EQ(hexOf(frame), p.hex) << p.name;
    RecoveryMessage back;
    ASSERT_TRUE(decodeRecoveryMessage(bytesOf(p.hex), &back)) << p.name;
    EXPECT_EQ(back.index(), p.message.index()) << p.name;
    EXPECT_EQ(hexOf(encodeRecoveryMessage(back)), p.hex) << p.name;
  }
}

// Frames the one-struct codec accepted still decode: a field the type lacks is dropped
// (re-encoded as its default), and a join naming several candidates names none.
TEST(AgreementWire, FieldsATypeLacksAreDroppedNotRefused) {
  const std::vector<Pinned> all = pinned();
  RecoveryMessage back;
  // The proposal's frame with its type byte made EXPELLED: only the epoch remains.
  std::vector<uint8_t> frame = bytesOf(all[5].hex);
  frame[0] = AgreementExpelled::kWireType;
  ASSERT_TRUE(decodeRecoveryMessage(frame, &back));
  ASSERT_TRUE(std::holds_alternative<AgreementExpelled>(back));
  EXPECT_EQ(std::get<AgreementExpelled>(back).epoch, 3u);
  EXPECT_EQ(encodeRecoveryMessage(back), encodeRecoveryMessage(AgreementExpelled{3}));
  // The commit's frame made a JOIN: one newcomer, no secret.
  frame = bytesOf(all[1].hex);
  frame[0] = JoinRequest::kWireType;
  ASSERT_TRUE(decodeRecoveryMessage(frame, &back));
  ASSERT_TRUE(std::holds_alternative<JoinRequest>(back));
  const JoinRequest& join = std::get<JoinRequest>(back);
  ASSERT_TRUE(join.candidate.has_value());
  EXPECT_EQ(join.candidate->key, "s9");
  EXPECT_TRUE(join.secret.empty());
  // Two candidates: still a JOIN, ignored by everyone for naming no single one.
  AgreementReport two{2, {}, -1, {}, {kSpare, kSpare}, {}, false};
  frame = encodeRecoveryMessage(two);
  frame[0] = JoinRequest::kWireType;
  ASSERT_TRUE(decodeRecoveryMessage(frame, &back));
  ASSERT_TRUE(std::holds_alternative<JoinRequest>(back));
  EXPECT_FALSE(std::get<JoinRequest>(back).candidate.has_value());
}

// The relays' votes (a layout of their own): every field survives; ranges that are not
// ascending, apart and non-empty pairs, or flags beyond the two, are refused, and so is
// a count larger than the frame (nothing allocated for it).
TEST(AgreementWire, VotesRoundTripAndMalformedRangesAreRefused) {
  AgreementVotes votes;
  votes.epoch = 7;
  votes.ballot = 2;
  votes.toCoordinator = true;
  votes.places = {0, 3, 5, 1, 9, 100};
  votes.failed = {4, 1, 8, 1};
  votes.acceptedBallot = 1;
  votes.acceptedFailed = {4, 1};
  votes.joined = {kSpare};
  votes.salt = saltFrom(0x40);
  const std::vector<uint8_t> frame = encodeRecoveryMessage(votes);
  RecoveryMessage back;
  ASSERT_TRUE(decodeRecoveryMessage(frame, &back));
  ASSERT_TRUE(std::holds_alternative<AgreementVotes>(back));
  const AgreementVotes& got = std::get<AgreementVotes>(back);
  EXPECT_EQ(got.epoch, 7u);
  EXPECT_EQ(got.ballot, 2);
  EXPECT_FALSE(got.accepts);
  EXPECT_TRUE(got.toCoordinator);
  EXPECT_EQ(got.places, votes.places);
  EXPECT_EQ(got.failed, votes.failed);
  EXPECT_EQ(got.acceptedBallot, 1);
  EXPECT_EQ(got.acceptedFailed, votes.acceptedFailed);
  ASSERT_EQ(got.joined.size(), 1u);
  EXPECT_EQ(got.joined[0].key, "s9");
  EXPECT_EQ(got.salt, votes.salt);
  EXPECT_EQ(encodeRecoveryMessage(back), frame);

  for (const std::vector<uint32_t>& bad :
       std::vector<std::vector<uint32_t>>{{0, 3, 2, 1},        // overlaps the run before
                                          {0, 3, 3, 1},        // touches it: one run, sent as two
                                          {5, 1, 0, 1},        // descending
                                          {0, 0},              // empty
                                          {0, 3, 9},           // not a pair
                                          {0x7fffffff, 2}}) {  // past RunSet's bound
    AgreementVotes forged = votes;
    forged.places = bad;
    EXPECT_FALSE(decodeRecoveryMessage(encodeRecoveryMessage(forged), &back));
    forged = votes;
    forged.failed = bad;
    EXPECT_FALSE(decodeRecoveryMessage(encodeRecoveryMessage(forged), &back));
    forged = votes;
    forged.acceptedFailed = bad;
    EXPECT_FALSE(decodeRecoveryMessage(encodeRecoveryMessage(forged), &back));
    // The shared layout refuses them the same way.
    EXPECT_FALSE(decodeRecoveryMessage(
        encodeRecoveryMessage(AgreementProposal{3, 2, bad, {}, saltFrom(0x30)}), &back));
    AgreementCommit commit = poolCommit();
    commit.failed = bad;
    EXPECT_FALSE(decodeRecoveryMessage(encodeRecoveryMessage(commit), &back));
  }
  std::vector<uint8_t> flags = frame;
  flags[1 + 8 + 8] = 8;  // type, epoch, ballot, then the flags
  EXPECT_FALSE(decodeRecoveryMessage(flags, &back));
  std::vector<uint8_t> huge = frame;
  huge[1 + 8 + 8 + 1 + 3] = 0x40;  // a count of about 2^30 places in a frame of 200 bytes
  EXPECT_FALSE(decodeRecoveryMessage(huge, &back));
  for (size_t cut = 0; cut < frame.size(); ++cut) {
    EXPECT_FALSE(
        decodeRecoveryMessage(std::vector<uint8_t>(frame.begin(), frame.begin() + cut), &back))
        << "cut at " << cut;
  }
}

}  // namespace
}  // namespace ftccl
