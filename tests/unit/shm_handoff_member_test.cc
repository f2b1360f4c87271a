// The member's side against a leader that misbehaves, played by this process (the socket's
// pid is ours, so the member talks to it): silent, closing early, truncated, garbage or
// forged messages, too many or too few descriptors. The member names what failed, gives
// up at its deadline at the latest, and keeps no descriptor it did not accept. A correct
// fake leader, written from the wire format in fd_handoff.h alone, pins that format.
#include <gtest/gtest.h>

#include <functional>
#include <thread>
#include <vector>

#include "shm_handoff_fixture.h"

namespace ftccl {
namespace testing {
namespace {

constexpr uint64_t kContext = 42;
constexpr size_t kNonce = 16;

// A listener at a fresh hand-off name; `script` plays its first connection, if one comes.
class FakeLeader {
 public:
  explicit FakeLeader(std::function<void(int)> script) {
    uint8_t bits[16];
    (void)crypto::randomBytes(bits, sizeof(bits));
    name_ = "ftccl-shm-";
    for (uint8_t b : bits) {
      name_ += "0123456789abcdef"[b >> 4];
      name_ += "0123456789abcdef"[b & 15];
    }
    listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr;
    socklen_t length = abstractAddress(name_, &addr);
    if (::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&addr), length) != 0 ||
        ::listen(listener_.get(), 4) != 0) {
      listener_.reset();
    }
    if (!script) return;  // connections wait in the backlog, unanswered
    thread_ = std::thread([this, script] {
      pollfd p{listener_.get(), POLLIN, 0};
      if (::poll(&p, 1, kLongMs) != 1) return;
      net::Fd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (conn.valid()) script(conn.get());
    });
  }
  ~FakeLeader() {
    if (thread_.joinable()) thread_.join();
  }

  Status receive(const crypto::Key& key, int ms, net::Fd* fd) const {
    return shm::receiveFd(name_, key, kContext, getpid(), net::deadlineAfterMs(ms), fd);
  }

 private:
  std::string name_;
  net::Fd listener_;
  std::thread thread_;
};

// Either end's proof, computed from the wire format's definition.
crypto::Tag wireTag(const crypto::Key& key, const char* role, const uint8_t* theirNonce,
                    const uint8_t* ownNonce, pid_t own, pid_t their) {
  uint64_t context = kContext;
  crypto::MacKey k(crypto::MacKey(key).derive("ftccl-shm-handoff", {{&context, 8}}));
  const int32_t pids[2] = {own, their};
  return k.tag({{role, 16}, {theirNonce, kNonce}, {ownNonce, kNonce}, {pids, sizeof(pids)}});
}

// Sends a well-formed challenge (its nonce into `nonce`) and reads the 40-byte answer.
bool challenge(int conn, uint8_t* nonce, uint8_t* answer) {
  uint8_t message[24] = {'F', 'T', 'S', 'H', 1, 1, 0, 0};
  (void)crypto::randomBytes(message + 8, kNonce);
  std::memcpy(nonce, message + 8, kNonce);
  size_t got = 0;
  return net::sendAll(conn, message, sizeof(message), net::deadlineAfterMs(kLongMs)).isOk() &&
         net::recvAll(conn, answer, 40, net::deadlineAfterMs(kLongMs), &got).isOk();
}

struct Reply {
  bool header = true;  // else 8 garbage bytes
  bool rightTag = true;
  int fds = 1;  // copies of `fd` (else of /dev/null) attached
  int fd = -1;
  size_t bytes = 24;  // fewer: truncated, then closed
  bool* memberTagHeld = nullptr;
};

// A leader that challenges, hears the answer, then replies as told.
std::function<void(int)> replying(const crypto::Key& key, Reply reply) {
  return [key, reply](int conn) {
    uint8_t nonce[kNonce], answer[40];
    if (!challenge(conn, nonce, answer)) return;
    const pid_t pid = getpid();  // the leader's and the member's: one process
    crypto::Tag memberTag = wireTag(key, "ftccl-shm-member", nonce, answer + 8, pid, pid);
    if (reply.memberTagHeld != nullptr) {
      *reply.memberTagHeld = std::memcmp(memberTag.data(), answer + 24, 16) == 0;
    }
    uint8_t message[24] = {'F', 'T', 'S', 'H', 1, 3, 0, 0};
    if (!reply.header) (void)crypto::randomBytes(message, 8);
    crypto::Tag tag = wireTag(key, "ftccl-shm-leader", answer + 8, nonce, pid, pid);
    std::memcpy(message + 8, tag.data(), 16);
    if (!reply.rightTag) message[8] ^= 1;
    net::Fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    int attached = reply.fd >= 0 ? reply.fd : null.get();
    sendWithFds(conn, message, reply.bytes, std::vector<int>(reply.fds, attached));
  };
}

class ShmHandoffMemberTest : public ::testing::Test {
 protected:
  const crypto::Key key_ = crypto::randomKey();
};

TEST_F(ShmHandoffMemberTest, ACorrectLeaderWrittenFromTheWireFormatIsBelieved) {
  int before = openFdCount();
  net::Fd segment = segmentWithText();
  bool memberTagHeld = false;
  {
    Reply reply;
    reply.fd = segment.get();
    reply.memberTagHeld = &memberTagHeld;
    FakeLeader leader(replying(key_, reply));
    net::Fd fd;
    Status st = leader.receive(key_, kLongMs, &fd);
    ASSERT_TRUE(st.isOk()) << st.message();
    char text[sizeof(kSegmentText)] = {};
    EXPECT_GT(::pread(fd.get(), text, sizeof(text) - 1, 0), 0);
    EXPECT_STREQ(text, kSegmentText);
    EXPECT_TRUE(::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC);
  }
  EXPECT_TRUE(memberTagHeld) << "the member's proof differs from the wire format";
  segment.reset();
  EXPECT_EQ(openFdCount(), before);
}

TEST_F(ShmHandoffMemberTest, AMisbehavingLeaderIsNamedAndItsDescriptorsClosed) {
  auto reply = [](auto change) {
    Reply r;
    change(&r);
    return r;
  };
  struct Case {
    const char* what;
    std::function<void(int)> script;
    int ms;
    ftcclResult_t code;
    const char* said;
  };
  const std::vector<Case> cases = {
      {"silent", nullptr, 300, ftcclTimeout, "the leader's challenge: 0 of 24 bytes before"},
      {"closes at once", [](int) {}, kLongMs, ftcclRemoteError,
       "closed the connection before its challenge: it does not expect this process"},
      {"garbage challenge",
       [](int conn) {
         uint8_t junk[24] = {'x'};
         (void)net::sendAll(conn, junk, sizeof(junk), net::deadlineAfterMs(kLongMs));
       },
       kLongMs, ftcclRemoteError, "the leader's challenge is not a hand-off challenge"},
      {"truncated challenge",
       [](int conn) {
         uint8_t part[10] = {'F', 'T', 'S', 'H', 1, 1};
         (void)net::sendAll(conn, part, sizeof(part), net::deadlineAfterMs(kLongMs));
       },
       kLongMs, ftcclRemoteError,
       "the leader's challenge truncated: the connection closed after 10 of 24 bytes"},
      {"refuses the answer",
       [](int conn) {
         uint8_t nonce[kNonce], answer[40];
         challenge(conn, nonce, answer);
       },
       kLongMs, ftcclRemoteError, "the leader refused our proof"},
      {"stops after the answer",
       [](int conn) {
         uint8_t nonce[kNonce], answer[40];
         if (challenge(conn, nonce, answer)) {
           pollfd p{conn, POLLIN, 0};
           (void)::poll(&p, 1, kLongMs);  // until the member gives up and closes
         }
       },
       2000, ftcclTimeout, "the leader's reply: 0 of 24 bytes before the deadline"},
      {"truncated reply", replying(key_, reply([](Reply* r) { r->bytes = 10; })), kLongMs,
       ftcclRemoteError, "the leader's reply truncated: the connection closed after 10 of 24"},
      {"garbage reply", replying(key_, reply([](Reply* r) { r->header = false; })), kLongMs,
       ftcclRemoteError, "the leader's reply is not a hand-off reply"},
      {"forged proof, 3 descriptors",
       replying(key_, reply([](Reply* r) { r->rightTag = false, r->fds = 3; })), kLongMs,
       ftcclRemoteError, "the leader's proof is wrong"},
      {"9 descriptors", replying(key_, reply([](Reply* r) { r->fds = 9; })), kLongMs,
       ftcclRemoteError, "more descriptors than fit"},
      {"2 descriptors", replying(key_, reply([](Reply* r) { r->fds = 2; })), kLongMs,
       ftcclRemoteError, "carried 2 descriptors, not one"},
      {"no descriptor", replying(key_, reply([](Reply* r) { r->fds = 0; })), kLongMs,
       ftcclRemoteError, "carried 0 descriptors, not one"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    int before = openFdCount();
    {
      FakeLeader leader(c.script);
      net::Fd fd;
      Status st = leader.receive(key_, c.ms, &fd);
      EXPECT_EQ(st.code(), c.code) << st.message();
      EXPECT_TRUE(has(st.message(), c.said)) << st.message();
      EXPECT_TRUE(has(st.message(), "shm hand-off from the leader (pid ")) << st.message();
      EXPECT_FALSE(fd.valid());
    }
    EXPECT_EQ(openFdCount(), before) << "a descriptor leaked";
  }
}

}  // namespace
}  // namespace testing
}  // namespace ftccl
