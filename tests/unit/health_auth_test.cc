// The health channel's seals and keys (health_auth.h), and the protocol's use of them:
// what a frame's key must fit, and probes taken once.
#include "health/health_auth.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "health/health_messages.h"
#include "health/health_protocol.h"

namespace ftccl {
namespace {

using namespace std::chrono_literals;

const uint8_t kSecret[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
constexpr uint64_t kComm = 0x1234abcdull;

std::shared_ptr<const crypto::MacKey> epochKey(uint32_t epoch, const EpochSalt& salt = {}) {
  HealthKeys keys;
  crypto::Key root = communicatorRootKey(kSecret, kComm);
  keys.hold(kComm, &root);
  keys.addEpoch(kComm, epoch, salt);
  return keys.epochKey(kComm, epoch);
}

HealthMessage heartbeat(uint64_t seq, uint32_t epoch) {
  HealthMessage hb = HealthHeartbeat{seq, 0, {}};
  hb.auth.comm = kComm;
  hb.auth.epoch = epoch;
  hb.auth.key = epochKey(epoch);
  return hb;
}

HealthMessage failedNotice(uint32_t epoch) {
  HealthFailed notice;
  notice.commKey = kComm;
  notice.epoch = epoch;
  notice.rank = 1;
  notice.failedKey = "10.0.0.1:4000";
  HealthMessage m = std::move(notice);
  m.auth.comm = kComm;
  m.auth.epoch = epoch;
  m.auth.key = epochKey(epoch);
  return m;
}

SealContext tcp(const std::string& senderNonce, const std::string& receiverNonce, uint64_t counter,
                const char* sender = "10.0.0.1:4000", const char* receiver = "10.0.0.2:4000") {
  SealContext c;
  c.sender = sender;
  c.receiver = receiver;
  c.senderNonce = senderNonce;
  c.receiverNonce = receiverNonce;
  c.counter = counter;
  return c;
}

TEST(HealthAuth, ASealVerifiesOnlyForItsKeyEndsNoncesCountAndBytes) {
  const std::string nonce(kConnectionNonceBytes, 'n'), theirs(kConnectionNonceBytes, 't');
  HealthMessage m = failedNotice(3);
  std::vector<uint8_t> frame = encodeHealthMessage(m);
  const size_t frameBytes = frame.size();
  appendSeal(&frame, 0, m.auth, tcp(theirs, nonce, 7));
  ASSERT_EQ(frame.size(), frameBytes + kSealBytes);
  const uint8_t* seal = frame.data() + frameBytes;
  HealthAuth read;
  ASSERT_TRUE(readSeal(seal, &read));
  EXPECT_EQ(read.comm, kComm);
  EXPECT_EQ(read.epoch, 3u);
  EXPECT_EQ(read.kind, KeyKind::kEpoch);
  const crypto::MacKey& key = *m.auth.key;
  EXPECT_TRUE(sealValid(key, frame.data(), frameBytes, seal, tcp(theirs, nonce, 7)));
  EXPECT_FALSE(sealValid(key, frame.data(), frameBytes, seal, tcp(theirs, nonce, 8)))
      << "replayed later";
  EXPECT_FALSE(sealValid(key, frame.data(), frameBytes, seal, tcp(theirs, std::string(16, 'o'), 7)))
      << "replayed on another connection";
  EXPECT_FALSE(sealValid(key, frame.data(), frameBytes, seal, tcp(std::string(16, 'o'), nonce, 7)))
      << "relayed from another connection";
  EXPECT_FALSE(sealValid(key, frame.data(), frameBytes, seal,
                         tcp(theirs, nonce, 7, "10.0.0.3:4000", "10.0.0.2:4000")))
      << "claimed by another sender";
  EXPECT_FALSE(sealValid(key, frame.data(), frameBytes, seal,
                         tcp(theirs, nonce, 7, "10.0.0.1:4000", "10.0.0.3:4000")))
      << "sent to another receiver";
  SealContext probe = tcp(theirs, nonce, 7);
  probe.datagram = true;
  EXPECT_FALSE(sealValid(key, frame.data(), frameBytes, seal, probe)) << "taken for a probe";
  EXPECT_FALSE(sealValid(*epochKey(4), frame.data(), frameBytes, seal, tcp(theirs, nonce, 7)))
      << "other epoch";
  crypto::Key otherRoot = communicatorRootKey(kSecret, kComm + 1);
  EXPECT_FALSE(
      sealValid(crypto::MacKey(otherRoot), frame.data(), frameBytes, seal, tcp(theirs, nonce, 7)));
  for (size_t i = 0; i < frame.size(); ++i) {
    std::vector<uint8_t> bad = frame;
    bad[i] ^= 0x20;
    EXPECT_FALSE(
        sealValid(key, bad.data(), frameBytes, bad.data() + frameBytes, tcp(theirs, nonce, 7)))
        << "byte " << i;
  }
}

TEST(HealthAuth, ASealedProbeOpensOnlyUnderItsKey) {
  HealthHello hello;
  hello.senderKey = "10.0.0.2:4000";
  const std::vector<uint8_t> helloFrame = encodeHealthMessage(hello);
  const HealthMessage hb = heartbeat(99, 2);
  const std::string me = "10.0.0.9:4000";
  const std::vector<uint8_t> datagram = encodeSealedProbe(helloFrame, hb, me);
  auto mine = [&](uint64_t comm, uint32_t epoch) {
    return comm == kComm && epoch == 2 ? hb.auth.key : nullptr;
  };
  std::string from;
  HealthMessage back;
  ASSERT_TRUE(decodeSealedProbe(datagram.data(), datagram.size(), me, &from, &back, mine));
  EXPECT_EQ(from, "10.0.0.2:4000");
  ASSERT_NE(back.as<HealthHeartbeat>(), nullptr);
  EXPECT_EQ(back.as<HealthHeartbeat>()->seq, 99u);
  EXPECT_EQ(back.auth.epoch, 2u);
  // Recorded on its way to another process, it is nothing here.
  EXPECT_FALSE(
      decodeSealedProbe(datagram.data(), datagram.size(), "10.0.0.8:4000", &from, &back, mine));
  auto stranger = [](uint64_t, uint32_t) { return std::shared_ptr<const crypto::MacKey>(); };
  EXPECT_FALSE(decodeSealedProbe(datagram.data(), datagram.size(), me, &from, &back, stranger));
  auto wrong = [&](uint64_t, uint32_t) { return epochKey(3); };
  EXPECT_FALSE(decodeSealedProbe(datagram.data(), datagram.size(), me, &from, &back, wrong));
  for (size_t cut = 0; cut < datagram.size(); ++cut) {
    EXPECT_FALSE(decodeSealedProbe(datagram.data(), cut, me, &from, &back, mine)) << "cut " << cut;
  }
  for (size_t i = 0; i < datagram.size(); ++i) {
    std::vector<uint8_t> bad = datagram;
    bad[i] ^= 1;
    EXPECT_FALSE(decodeSealedProbe(bad.data(), bad.size(), me, &from, &back, mine)) << "byte " << i;
  }
}

// The epoch's key needs the salt of its commit: a process holding the root key (an
// expelled member of the same job) but not told the commit cannot compute it.
TEST(HealthAuth, EpochKeysNeedTheCommitsSalt) {
  EpochSalt salt{};
  salt[0] = 7;
  auto told = epochKey(5, salt);
  auto guessed = epochKey(5, EpochSalt{});
  const std::string nonce(16, 'x');
  std::vector<uint8_t> frame = {1, 2, 3};
  HealthAuth auth{kComm, 5, KeyKind::kEpoch, told};
  appendSeal(&frame, 0, auth, tcp(nonce, nonce, 0));
  EXPECT_TRUE(sealValid(*told, frame.data(), 3, frame.data() + 3, tcp(nonce, nonce, 0)));
  EXPECT_FALSE(sealValid(*guessed, frame.data(), 3, frame.data() + 3, tcp(nonce, nonce, 0)));
}

TEST(HealthAuth, KeysGoWithTheirLastHolderAndOldEpochsAreBounded) {
  HealthKeys keys;
  crypto::Key root = communicatorRootKey(kSecret, kComm);
  keys.hold(kComm, &root);
  keys.hold(kComm, &root);
  for (uint32_t e = 0; e < HealthKeys::kMaxEpochs + 10; ++e) keys.addEpoch(kComm, e, {});
  EXPECT_EQ(keys.epochKey(kComm, 0), nullptr);
  EXPECT_NE(keys.epochKey(kComm, HealthKeys::kMaxEpochs + 9), nullptr);
  EXPECT_NE(keys.epochKey(kComm, 10), nullptr);
  keys.addJoinSecret(kComm, {9, 9});
  keys.addJoinSecret(kComm, {9, 9});
  EXPECT_EQ(keys.joinKeys(kComm).size(), 1u);
  keys.release(kComm);
  EXPECT_NE(keys.root(kComm), nullptr);
  keys.release(kComm);
  EXPECT_EQ(keys.root(kComm), nullptr);
  EXPECT_EQ(keys.epochKey(kComm, 10), nullptr);
  // A newcomer holds no root key: its join key only.
  keys.hold(kComm, nullptr);
  keys.addJoinSecret(kComm, {1});
  keys.addEpoch(kComm, 1, {});
  EXPECT_EQ(keys.epochKey(kComm, 1), nullptr);
  EXPECT_EQ(keys.joinKeys(kComm).size(), 1u);
}

// A protocol whose network authenticates: what it sends names a key, and what it takes
// must be sealed by a key that fits what the message says.
class Recorder final : public HealthNetwork, public HealthListener {
 public:
  void send(const ProcessKey& to, const HealthMessage& m) override { sent.push_back({to, m}); }
  void monitor(const ProcessKey&) override {}
  void unmonitor(const ProcessKey&) override {}
  void onMemberFailed(const FailureReport& report) override { failed.push_back(report); }
  std::vector<std::pair<ProcessKey, HealthMessage>> sent;
  std::vector<FailureReport> failed;
};

struct AuthenticatedProcess {
  explicit AuthenticatedProcess(bool recoverable = false)
      : protocol("10.0.0.0:4000", "h", 1, &net) {
    protocol.requireAuthentication();
    HealthRegistration reg;
    reg.commKey = kComm;
    reg.epoch = 3;
    reg.myRank = 0;
    std::vector<MemberInfo> members;
    for (int m = 0; m < 3; ++m) {
      members.push_back(MemberInfo{{"10.0.0." + std::to_string(m) + ":4000", "h", m + 1}, m});
    }
    reg.members = MemberTable::make(std::move(members));
    reg.monitored = {1};
    reg.listener = &net;
    reg.failureTimeoutMs = 1000;
    reg.recoverable = recoverable;
    reg.authRoot = std::make_shared<const crypto::Key>(communicatorRootKey(kSecret, kComm));
    protocol.add(std::move(reg), t0);
  }
  Recorder net;
  HealthProtocol protocol;
  HealthTime t0 = HealthClock::now();
};

TEST(HealthAuth, TheProtocolTakesOnlyMessagesWhoseKeyFitsThem) {
  AuthenticatedProcess p;
  HealthMessage noKey = failedNotice(3);
  noKey.auth.key.reset();
  p.protocol.onMessage("10.0.0.2:4000", noKey, p.t0);
  HealthMessage otherEpoch = failedNotice(3);
  otherEpoch.auth.epoch = 2;
  p.protocol.onMessage("10.0.0.2:4000", otherEpoch, p.t0);
  HealthMessage otherComm = failedNotice(3);
  otherComm.auth.comm = kComm + 1;
  p.protocol.onMessage("10.0.0.2:4000", otherComm, p.t0);
  EXPECT_TRUE(p.net.failed.empty()) << "a FAILED notice under a key that does not fit it";
  p.protocol.onMessage("10.0.0.2:4000", failedNotice(3), p.t0);
  ASSERT_EQ(p.net.failed.size(), 1u);
  EXPECT_EQ(p.net.failed[0].rank, 1);
  // What it sent (FAILED to rank 2's peers: none but rank 2; heartbeats) names a key.
  p.protocol.onTick(p.t0 + 20ms);
  for (const auto& [to, m] : p.net.sent) EXPECT_TRUE(m.auth.key) << "type " << int(m.type());
}

// A process the agreement no longer lists (expelled, resumed after SIGSTOP) still holds
// the old epoch's key; its FAILED notices count for nothing.
TEST(HealthAuth, AFailedNoticeFromANonMemberIsIgnored) {
  AuthenticatedProcess p(/*recoverable=*/true);
  p.protocol.onMessage("10.0.0.9:4000", failedNotice(3), p.t0);
  EXPECT_TRUE(p.net.failed.empty()) << "a stale process's suspicion was taken";
  p.protocol.onMessage("10.0.0.2:4000", failedNotice(3), p.t0);
  EXPECT_EQ(p.net.failed.size(), 1u);
}

// A replayed heartbeat of a monitored peer does not count as a sign of life: a hang is
// still detected at the failure timeout.
TEST(HealthAuth, AReplayedHeartbeatHidesNoHang) {
  AuthenticatedProcess p;
  const HealthMessage hb = heartbeat(1000, 3);
  p.protocol.onMessage("10.0.0.1:4000", hb, p.t0 + 10ms);
  for (int ms = 100; ms <= 1500; ms += 100) {
    p.protocol.onMessage("10.0.0.1:4000", hb, p.t0 + std::chrono::milliseconds(ms));  // replayed
    p.protocol.onTick(p.t0 + std::chrono::milliseconds(ms));
  }
  ASSERT_EQ(p.net.failed.size(), 1u) << "the replays hid the hang";
  EXPECT_EQ(p.net.failed[0].rank, 1);
  EXPECT_EQ(p.net.failed[0].cause, DetectionCause::kSilence);
}

}  // namespace
}  // namespace ftccl
