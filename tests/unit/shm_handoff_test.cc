// The shm descriptor hand-off with its members in forked processes: the segment reaches
// them; wrong keys or contexts, pids not expected, another leader's socket, silent,
// stopped, dying or garbage-speaking peers and second hand-offs are refused at the cost of
// one handshake's deadline at most; no descriptor leaks on either side; the name goes
// with the server.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "shm_handoff_fixture.h"

namespace ftccl {
namespace testing {
namespace {

using shm::HandoffLimits;
using shm::HandoffServer;

constexpr uint64_t kContext = 0x5eed0001;
const std::string kOk = std::string("ok: ") + kSegmentText;

// Whether /proc/net/unix lists the abstract name (as "@name").
bool listed(const std::string& name) {
  std::ifstream in("/proc/net/unix");
  std::stringstream text;
  text << in.rdbuf();
  return has(text.str(), "@" + name);
}

// serve() on a thread of its own, for tests that pace their members one after another.
class Serving {
 public:
  Serving(HandoffServer* server, int fd)
      : thread_(
            [this, server, fd] { status_ = server->serve(fd, net::deadlineAfterMs(kLongMs)); }) {}
  ~Serving() {
    if (thread_.joinable()) thread_.join();
  }
  Status wait() {
    thread_.join();
    return status_;
  }

 private:
  Status status_;
  std::thread thread_;
};

class ShmHandoffTest : public ::testing::Test {
 protected:
  void SetUp() override { fdsBefore_ = openFdCount(); }
  void TearDown() override { EXPECT_EQ(openFdCount(), fdsBefore_) << "a descriptor leaked"; }

  // Where a handshake's expiry is not what a test checks, its bound is the long one: on
  // 2 busy cores a member's answer may come seconds late.
  HandoffLimits patient() const {
    HandoffLimits limits;
    limits.handshakeMs = kLongMs;
    return limits;
  }
  HandoffLimits oneAttempt(int handshakeMs = kLongMs) {
    HandoffLimits limits;
    limits.handshakeMs = handshakeMs;
    limits.attemptsPerPid = 1;
    return limits;
  }

  const crypto::Key key_ = crypto::randomKey();
  const pid_t self_ = getpid();
  int fdsBefore_ = 0;
};

TEST_F(ShmHandoffTest, MembersReceiveTheLeadersSegment) {
  Child a(member(key_, kContext, self_));
  Child b(member(key_, kContext, self_));
  const std::vector<pid_t> pids = {a.pid(), b.pid()};
  net::Fd segment = segmentWithText();
  HandoffServer server;
  ASSERT_TRUE(server.start(key_, kContext, pids, patient()).isOk());
  a.channel().say(server.name());
  b.channel().say(server.name());
  Status st = server.serve(segment.get(), net::deadlineAfterMs(kLongMs));
  EXPECT_TRUE(st.isOk()) << st.message();
  EXPECT_EQ(a.channel().hear(), kOk);
  EXPECT_EQ(b.channel().hear(), kOk);
  EXPECT_TRUE(a.reap());
  EXPECT_TRUE(b.reap());
  EXPECT_EQ(server.servedPids(), pids);
  EXPECT_EQ(server.refusedConnections(), 0u);
  EXPECT_FALSE(listed(server.name())) << "serve() closes the listener once all are served";
}

TEST_F(ShmHandoffTest, AWrongKeyOrContextIsRefusedAndTheRightMemberServed) {
  Child wrongKey(member(crypto::randomKey(), kContext, self_));
  Child wrongContext(member(key_, kContext + 1, self_));  // an older epoch, say
  Child right(member(key_, kContext, self_));
  const pid_t wk = wrongKey.pid(), wc = wrongContext.pid(), r = right.pid();
  net::Fd segment = segmentWithText();
  HandoffServer server;
  ASSERT_TRUE(server.start(key_, kContext, {wk, wc, r}, oneAttempt()).isOk());
  for (Child* c : {&wrongKey, &wrongContext, &right}) c->channel().say(server.name());
  Status st = server.serve(segment.get(), net::deadlineAfterMs(kLongMs));
  EXPECT_EQ(st.code(), ftcclRemoteError) << st.message();
  EXPECT_TRUE(has(st.message(), "pid " + std::to_string(wk) + ": its proof is wrong"))
      << st.message();
  EXPECT_TRUE(has(st.message(), "pid " + std::to_string(wc) + ": its proof is wrong"))
      << st.message();
  EXPECT_EQ(right.channel().hear(), kOk);
  for (Child* c : {&wrongKey, &wrongContext}) {
    std::string heard = c->channel().hear();
    EXPECT_TRUE(has(heard, "the leader refused our proof")) << heard;
    EXPECT_FALSE(has(heard, "LEAK")) << heard;
  }
  EXPECT_EQ(server.servedPids(), std::vector<pid_t>{r});
}

TEST_F(ShmHandoffTest, AProcessNotExpectedIsRefusedBeforeAByte) {
  Child stranger(member(key_, kContext, self_));  // it even holds the key: the pid decides
  Child right(member(key_, kContext, self_));
  net::Fd segment = segmentWithText();
  HandoffServer server;
  ASSERT_TRUE(server.start(key_, kContext, {right.pid()}, patient()).isOk());
  Serving serving(&server, segment.get());
  stranger.channel().say(server.name());
  std::string heard = stranger.channel().hear();
  EXPECT_TRUE(has(heard, "before its challenge: it does not expect this process")) << heard;
  EXPECT_FALSE(has(heard, "LEAK")) << heard;
  right.channel().say(server.name());
  EXPECT_EQ(right.channel().hear(), kOk);
  Status st = serving.wait();
  EXPECT_TRUE(st.isOk()) << st.message();
  EXPECT_EQ(server.refusedConnections(), 1u);
}

TEST_F(ShmHandoffTest, AMemberRefusesASocketThatIsNotItsLeaders) {
  // It expects a leader of another pid (its own): the socket at the name is this process's.
  Child m([this](Channel& channel) {
    std::string name = channel.hear();
    channel.say(receiveAndRead(name, key_, kContext, getpid()));
  });
  const pid_t mp = m.pid();
  net::Fd segment = segmentWithText();
  HandoffServer server;
  ASSERT_TRUE(server.start(key_, kContext, {mp}, oneAttempt()).isOk());
  m.channel().say(server.name());
  Status st = server.serve(segment.get(), net::deadlineAfterMs(kLongMs));
  std::string heard = m.channel().hear();
  EXPECT_TRUE(has(heard, "belongs to pid " + std::to_string(self_) + ", not to the leader"))
      << heard;
  EXPECT_FALSE(has(heard, "LEAK")) << heard;
  EXPECT_EQ(st.code(), ftcclRemoteError) << st.message();
  EXPECT_TRUE(has(st.message(), "pid " + std::to_string(mp) + ": ")) << st.message();
  EXPECT_TRUE(server.servedPids().empty());
}

TEST_F(ShmHandoffTest, SilentStoppedOrDyingPeersCostOnlyTheirHandshake) {
  Child silent([](Channel& channel) {
    net::Fd conn = connectRaw(channel.hear());
    ::pause();
  });
  Child stopped([](Channel& channel) {  // a member SIGSTOPped mid-handshake
    net::Fd conn = connectRaw(channel.hear());
    ::raise(SIGSTOP);
  });
  Child dying([](Channel& channel) {  // reads the challenge, sends half an answer, dies
    net::Fd conn = connectRaw(channel.hear());
    uint8_t bytes[24] = {};
    size_t got = 0;
    (void)net::recvAll(conn.get(), bytes, sizeof(bytes), net::deadlineAfterMs(kLongMs), &got);
    (void)net::sendAll(conn.get(), bytes, 20, net::deadlineAfterMs(kLongMs));
    ::_exit(0);
  });
  Child right(member(key_, kContext, self_));
  const pid_t s = silent.pid(), t = stopped.pid(), d = dying.pid(), r = right.pid();
  net::Fd segment = segmentWithText();
  HandoffServer server;
  ASSERT_TRUE(server.start(key_, kContext, {s, t, d, r}, oneAttempt(3000)).isOk());
  for (Child* c : {&silent, &stopped, &dying, &right}) c->channel().say(server.name());
  Status st = server.serve(segment.get(), net::deadlineAfterMs(kLongMs));
  EXPECT_EQ(st.code(), ftcclRemoteError) << st.message();
  for (pid_t quiet : {s, t}) {
    EXPECT_TRUE(has(st.message(), "pid " + std::to_string(quiet) +
                                      ": its answer: 0 of 40 bytes before the deadline"))
        << st.message();
  }
  EXPECT_TRUE(has(st.message(), "pid " + std::to_string(d) +
                                    ": its answer truncated: the connection closed after 20 of 40"))
      << st.message();
  EXPECT_EQ(right.channel().hear(), kOk);
  EXPECT_EQ(server.servedPids(), std::vector<pid_t>{r});
}

TEST_F(ShmHandoffTest, ASecondHandOffToTheSamePidIsRefused) {
  Child twice(member(key_, kContext, self_, 2));
  Child other(member(key_, kContext, self_));
  net::Fd segment = segmentWithText();
  HandoffServer server;
  ASSERT_TRUE(server.start(key_, kContext, {twice.pid(), other.pid()}, patient()).isOk());
  Serving serving(&server, segment.get());
  twice.channel().say(server.name());
  EXPECT_EQ(twice.channel().hear(), kOk);
  std::string second = twice.channel().hear();
  EXPECT_TRUE(has(second, "or served it already")) << second;
  EXPECT_FALSE(has(second, "LEAK")) << second;
  other.channel().say(server.name());
  EXPECT_EQ(other.channel().hear(), kOk);
  Status st = serving.wait();
  EXPECT_TRUE(st.isOk()) << st.message();
  EXPECT_EQ(server.refusedConnections(), 1u);
}

TEST_F(ShmHandoffTest, GarbageIsRefusedWithoutACrashOrADescriptorTaken) {
  Child stranger([](Channel& channel) {  // pours 64 KiB at the name
    net::Fd conn = connectRaw(channel.hear());
    std::vector<uint8_t> junk(65536);
    (void)crypto::randomBytes(junk.data(), junk.size());
    (void)net::sendAll(conn.get(), junk.data(), junk.size(), net::deadlineAfterMs(2000));
  });
  // Expected pids that answer noise with descriptors attached, or a forged proof.
  Child noise([](Channel& channel) {
    net::Fd conn = connectRaw(channel.hear());
    uint8_t junk[4096];
    size_t got = 0;
    (void)net::recvAll(conn.get(), junk, 24, net::deadlineAfterMs(kLongMs), &got);
    (void)crypto::randomBytes(junk, sizeof(junk));
    net::Fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    sendWithFds(conn.get(), junk, sizeof(junk), {null.get(), null.get(), null.get()});
    channel.hear();  // until the test ends
  });
  Child forger([](Channel& channel) {
    net::Fd conn = connectRaw(channel.hear());
    uint8_t answer[40] = {'F', 'T', 'S', 'H', 1, 2, 0, 0};
    size_t got = 0;
    (void)net::recvAll(conn.get(), answer + 8, 24, net::deadlineAfterMs(kLongMs), &got);
    (void)crypto::randomBytes(answer + 8, 32);
    (void)net::sendAll(conn.get(), answer, sizeof(answer), net::deadlineAfterMs(kLongMs));
    channel.hear();
  });
  Child right(member(key_, kContext, self_));
  const pid_t n = noise.pid(), f = forger.pid();
  net::Fd segment = segmentWithText();
  HandoffServer server;
  ASSERT_TRUE(server.start(key_, kContext, {n, f, right.pid()}, oneAttempt()).isOk());
  Serving serving(&server, segment.get());
  stranger.channel().say(server.name());
  EXPECT_TRUE(stranger.reap());
  for (Child* c : {&noise, &forger, &right}) c->channel().say(server.name());
  EXPECT_EQ(right.channel().hear(), kOk);
  Status st = serving.wait();
  EXPECT_EQ(st.code(), ftcclRemoteError) << st.message();
  EXPECT_TRUE(has(st.message(), "pid " + std::to_string(n) + ": its answer is not a hand-off"))
      << st.message();
  EXPECT_TRUE(has(st.message(), "pid " + std::to_string(f) + ": its proof is wrong"))
      << st.message();
  EXPECT_EQ(server.refusedConnections(), 1u);
}

constexpr pid_t kAbsent = 4194000;  // a member that never connects

TEST_F(ShmHandoffTest, AFloodOfStrangersNeitherKeepsAMemberOutNorHoldsTheLeader) {
  Child flood([](Channel& channel) {  // connects and closes as fast as it can, until killed
    std::string name = channel.hear();
    for (;;) connectRaw(name);
  });
  Child right(member(key_, kContext, self_));
  net::Fd segment = segmentWithText();
  HandoffServer server;
  ASSERT_TRUE(server.start(key_, kContext, {right.pid(), kAbsent}, patient()).isOk());
  flood.channel().say(server.name());
  right.channel().say(server.name());
  // Each call returns at its deadline, though connections keep coming (a hang here is
  // the failure); calls go on until the member is in, however slowly it is scheduled.
  Status st;
  const auto giveUp = std::chrono::steady_clock::now() + std::chrono::milliseconds(kLongMs);
  do {
    st = server.serve(segment.get(), net::deadlineAfterMs(1000));
  } while (server.servedPids().empty() && std::chrono::steady_clock::now() < giveUp);
  EXPECT_EQ(st.code(), ftcclTimeout) << st.message();
  EXPECT_TRUE(has(st.message(), "pid 4194000: never connected")) << st.message();
  EXPECT_EQ(right.channel().hear(), kOk);
  EXPECT_EQ(server.servedPids(), std::vector<pid_t>{right.pid()});
  EXPECT_GT(server.refusedConnections(), 0u);

  // Past its deadline serve() accepts nothing more, however many wait.
  HandoffServer idle;
  ASSERT_TRUE(idle.start(key_, kContext, {kAbsent}).isOk());
  std::vector<net::Fd> waiting;  // ours: not a member's pid
  for (int i = 0; i < 16; ++i) waiting.push_back(connectRaw(idle.name()));
  st = idle.serve(segment.get(), net::Clock::now());
  EXPECT_EQ(st.code(), ftcclTimeout) << st.message();
  EXPECT_EQ(idle.refusedConnections(), 0u);
}

TEST_F(ShmHandoffTest, TheNameIsAbstractRandomAndGoesWithTheServer) {
  HandoffServer server, other;
  ASSERT_TRUE(server.start(key_, kContext, {kAbsent}).isOk());
  ASSERT_TRUE(other.start(key_, kContext, {kAbsent}).isOk());
  EXPECT_NE(server.name(), other.name());
  EXPECT_EQ(server.name().size(), 42u);
  EXPECT_EQ(server.name().rfind("ftccl-shm-", 0), 0u);
  EXPECT_TRUE(listed(server.name()));
  server.close();
  EXPECT_FALSE(listed(server.name()));
  net::Fd fd;
  Status st =
      shm::receiveFd(server.name(), key_, kContext, self_, net::deadlineAfterMs(kLongMs), &fd);
  EXPECT_EQ(st.code(), ftcclRemoteError) << st.message();
  EXPECT_TRUE(has(st.message(), "nothing listens at the name")) << st.message();

  // A deadline that passes says who never came, and leaves the server listening.
  net::Fd segment = segmentWithText();
  st = other.serve(segment.get(), net::deadlineAfterMs(100));
  EXPECT_EQ(st.code(), ftcclTimeout) << st.message();
  EXPECT_TRUE(has(st.message(), "pid 4194000: never connected")) << st.message();
  EXPECT_TRUE(listed(other.name()));
}

TEST_F(ShmHandoffTest, InvalidArgumentsAreRefused) {
  HandoffServer server;
  net::Fd segment = segmentWithText();
  EXPECT_EQ(server.serve(segment.get(), net::deadlineAfterMs(100)).code(), ftcclInvalidUsage);
  for (const std::vector<pid_t>& pids : {std::vector<pid_t>{}, {0}, {-3}, {self_}, {7, 7}}) {
    EXPECT_EQ(server.start(key_, kContext, pids).code(), ftcclInvalidArgument);
  }
  EXPECT_EQ(server.start(key_, kContext, {7}, oneAttempt(0)).code(), ftcclInvalidArgument);
  ASSERT_TRUE(server.start(key_, kContext, {7}).isOk());
  EXPECT_EQ(server.start(key_, kContext, {7}).code(), ftcclInvalidUsage);
  EXPECT_EQ(server.serve(-1, net::deadlineAfterMs(100)).code(), ftcclInvalidArgument);
  net::Fd fd;
  for (std::string name : {std::string("ftccl-shm-"), std::string(server.name() + "0"),
                           "ftccl-shm-" + std::string(32, 'A'), "x" + server.name().substr(1)}) {
    EXPECT_EQ(shm::receiveFd(name, key_, kContext, self_, net::deadlineAfterMs(100), &fd).code(),
              ftcclInvalidArgument)
        << name;
  }
  EXPECT_EQ(shm::receiveFd(server.name(), key_, kContext, 0, net::deadlineAfterMs(100), &fd).code(),
            ftcclInvalidArgument);
}

}  // namespace
}  // namespace testing
}  // namespace ftccl
