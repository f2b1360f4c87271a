#include "transports/shm/fd_handoff.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "transports/shm/unix_socket.h"
#include "util/log.h"

namespace ftccl {
namespace shm {
namespace {

constexpr char kNamePrefix[] = "ftccl-shm-";
constexpr size_t kNamePrefixBytes = sizeof(kNamePrefix) - 1;
constexpr size_t kNameRandomBytes = 16;
constexpr size_t kNameBytes = kNamePrefixBytes + 2 * kNameRandomBytes;

constexpr size_t kHeaderBytes = 8;
constexpr size_t kNonceBytes = 16;
constexpr size_t kTagBytes = crypto::kTagBytes;
constexpr size_t kChallengeBytes = kHeaderBytes + kNonceBytes;
constexpr size_t kAnswerBytes = kHeaderBytes + kNonceBytes + kTagBytes;
constexpr size_t kReplyBytes = kHeaderBytes + kTagBytes;
constexpr uint8_t kVersion = 1;
constexpr uint8_t kChallenge = 1, kAnswer = 2, kReply = 3;

// Both labels are 16 bytes: neither is a prefix of the other's input.
constexpr char kMemberRole[] = "ftccl-shm-member";
constexpr char kLeaderRole[] = "ftccl-shm-leader";
constexpr size_t kRoleBytes = sizeof(kMemberRole) - 1;
static_assert(sizeof(kLeaderRole) == sizeof(kMemberRole), "roles of one length");

void putHeader(uint8_t* out, uint8_t type) {
  const uint8_t header[kHeaderBytes] = {'F', 'T', 'S', 'H', kVersion, type, 0, 0};
  std::memcpy(out, header, kHeaderBytes);
}

bool isHeader(const uint8_t* in, uint8_t type) {
  uint8_t expected[kHeaderBytes];
  putHeader(expected, type);
  return std::memcmp(in, expected, kHeaderBytes) == 0;
}

// A key of this protocol's own: nothing else MACed under the communicator's key can pass
// for a hand-off proof, and a proof of one context (epoch) is worthless in another.
crypto::MacKey handoffKey(const crypto::Key& key, uint64_t context) {
  return crypto::MacKey(crypto::MacKey(key).derive("ftccl-shm-handoff", {{&context, 8}}));
}

// One end's proof: its role, the other end's nonce (what makes it fresh), its own nonce,
// its pid and the other's. Good once, on one connection, one way, between two processes.
crypto::Tag proof(const crypto::MacKey& mac, const char* role, const uint8_t* theirNonce,
                  const uint8_t* ownNonce, pid_t own, pid_t their) {
  const int32_t pids[2] = {static_cast<int32_t>(own), static_cast<int32_t>(their)};
  return mac.tag({{role, kRoleBytes},
                  {theirNonce, kNonceBytes},
                  {ownNonce, kNonceBytes},
                  {pids, sizeof(pids)}});
}

bool proofHolds(const crypto::Tag& expected, const uint8_t* received) {
  return crypto::equalConstantTime(expected.data(), received, kTagBytes);
}

bool validName(const std::string& name) {
  if (name.size() != kNameBytes || name.compare(0, kNamePrefixBytes, kNamePrefix) != 0) {
    return false;
  }
  return std::all_of(name.begin() + kNamePrefixBytes, name.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

Status receiveFrom(const std::string& name, const crypto::MacKey& mac, pid_t leaderPid,
                   net::Deadline deadline, net::Fd* out) {
  net::Fd sock;
  FTCCL_CHECK(connectAbstract(name, deadline, &sock));
  // A process that took the name after the leader closed it (it is listed in
  // /proc/net/unix) is refused before a byte is read from it or sent to it.
  pid_t peer = peerPid(sock.get());
  if (peer != leaderPid) {
    return remoteError("the socket belongs to pid " + std::to_string(peer) +
                       (peer == 0 ? " (outside this pid namespace)" : "") +
                       ", not to the leader: refused");
  }
  const pid_t self = getpid();
  uint8_t challenge[kChallengeBytes];
  FTCCL_CHECK(readMessage(sock.get(), challenge, sizeof(challenge), deadline,
                          "the leader's challenge",
                          "the leader closed the connection before its challenge: it does not "
                          "expect this process (pid " +
                              std::to_string(self) + "), or served it already"));
  if (!isHeader(challenge, kChallenge)) {
    return remoteError("the leader's challenge is not a hand-off challenge of version 1");
  }
  const uint8_t* leaderNonce = challenge + kHeaderBytes;
  uint8_t answer[kAnswerBytes];
  putHeader(answer, kAnswer);
  uint8_t* ownNonce = answer + kHeaderBytes;
  FTCCL_CHECK(crypto::randomBytes(ownNonce, kNonceBytes));
  crypto::Tag tag = proof(mac, kMemberRole, leaderNonce, ownNonce, self, leaderPid);
  std::memcpy(ownNonce + kNonceBytes, tag.data(), kTagBytes);
  FTCCL_CHECK(net::sendAll(sock.get(), answer, sizeof(answer), deadline));

  uint8_t reply[kReplyBytes];
  ReceivedFds fds;  // closed on every error path below
  FTCCL_CHECK(readMessage(sock.get(), reply, sizeof(reply), deadline, "the leader's reply",
                          "the leader refused our proof (another key or context?)", &fds));
  if (fds.truncated) {
    return remoteError("the leader's reply carried more descriptors than fit; all closed");
  }
  if (!isHeader(reply, kReply)) return remoteError("the leader's reply is not a hand-off reply");
  tag = proof(mac, kLeaderRole, ownNonce, leaderNonce, leaderPid, self);
  if (!proofHolds(tag, reply + kHeaderBytes)) {
    return remoteError("the leader's proof is wrong (another key or context): refused");
  }
  if (fds.count != 1) {
    return remoteError("the leader's reply carried " + std::to_string(fds.count) +
                       " descriptors, not one");
  }
  *out = std::move(fds.first);
  return Status::ok();
}

}  // namespace

Status HandoffServer::start(const crypto::Key& key, uint64_t context,
                            const std::vector<pid_t>& allowedPids, HandoffLimits limits) {
  if (listener_.valid()) return invalidUsage("shm hand-off: the server listens already");
  if (allowedPids.empty()) return invalidArgument("shm hand-off: no member to serve");
  if (limits.handshakeMs <= 0 || limits.attemptsPerPid <= 0) {
    return invalidArgument("shm hand-off: the limits must be positive");
  }
  std::vector<Member> members;
  for (pid_t pid : allowedPids) {
    bool repeated = std::any_of(members.begin(), members.end(),
                                [pid](const Member& m) { return m.pid == pid; });
    if (pid <= 0 || pid == getpid() || repeated) {
      return invalidArgument("shm hand-off: pid " + std::to_string(pid) +
                             " cannot be a member (not positive, the leader's, or repeated)");
    }
    members.emplace_back();
    members.back().pid = pid;
  }
  crypto::MacKey mac = handoffKey(key, context);
  if (!mac.valid()) return internalError("shm hand-off: HMAC-SHA-256 is unavailable");

  // 128 random bits: a name no stranger can take first. EADDRINUSE is then a squatter
  // (or a collision): draw again a few times.
  for (int attempt = 1;; ++attempt) {
    uint8_t bits[kNameRandomBytes];
    FTCCL_CHECK(crypto::randomBytes(bits, sizeof(bits)));
    std::string name = kNamePrefix;
    for (uint8_t b : bits) {
      name += "0123456789abcdef"[b >> 4];
      name += "0123456789abcdef"[b & 15];
    }
    net::Fd sock;
    bool taken = false;
    Status st = listenAbstract(name, &sock, &taken);
    if (taken && attempt < 4) continue;
    if (!st.isOk()) return Status(st.code(), "shm hand-off: " + st.message());
    listener_ = std::move(sock);
    name_ = std::move(name);
    break;
  }
  mac_ = std::move(mac);
  members_ = std::move(members);
  limits_ = limits;
  refused_ = 0;
  return Status::ok();
}

bool HandoffServer::finished() const {
  return std::all_of(members_.begin(), members_.end(), [this](const Member& m) {
    return m.served || m.failures >= limits_.attemptsPerPid;
  });
}

std::vector<pid_t> HandoffServer::servedPids() const {
  std::vector<pid_t> pids;
  for (const Member& m : members_) {
    if (m.served) pids.push_back(m.pid);
  }
  return pids;
}

Status HandoffServer::serve(int fd, net::Deadline deadline, const std::function<bool()>& stopped) {
  constexpr int kStopCheckMs = 50;
  if (fd < 0 || ::fcntl(fd, F_GETFD) < 0) {
    return invalidArgument("shm hand-off: no open descriptor to hand out");
  }
  if (members_.empty()) return invalidUsage("shm hand-off: serve() before start()");
  while (!finished()) {
    if (!listener_.valid()) return invalidUsage("shm hand-off: serve() after close()");
    // First, so that a stream of connections cannot hold serve() past its deadline.
    if (net::msUntil(deadline) <= 0 || (stopped && stopped())) return summary(true);
    pollfd p{listener_.get(), POLLIN, 0};
    int wait = net::msUntil(deadline);
    int rc = ::poll(&p, 1, stopped ? std::min(wait, kStopCheckMs) : wait);
    if (rc < 0 && errno != EINTR) {
      return systemError("shm hand-off: poll: " + net::errnoString(errno));
    }
    if (rc <= 0) continue;
    net::Fd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!conn.valid()) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED) continue;
      if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
        return systemError("shm hand-off: accept: " + net::errnoString(err));
      }
      // Out of descriptors: the connection waits in the backlog; do not spin on it.
      FTCCL_LOG(Warn, Net, "shm hand-off: accept: {}", net::errnoString(err));
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(10, net::msUntil(deadline))));
      continue;
    }
    Member* member = admit(conn.get());
    if (member == nullptr) continue;  // closed before a byte is read or sent
    net::Deadline until =
        std::min(deadline, net::Clock::now() + std::chrono::milliseconds(limits_.handshakeMs));
    Status st = handshake(conn.get(), member->pid, fd, until);
    if (st.isOk()) {
      member->served = true;
      FTCCL_LOG(Debug, Net, "shm hand-off: pid {} has the segment", member->pid);
    } else {
      ++member->failures;
      member->why = st.message();
      FTCCL_LOG(Warn, Net, "shm hand-off: pid {} failed (attempt {} of {}): {}", member->pid,
                member->failures, limits_.attemptsPerPid, member->why);
    }
  }
  close();  // no one left to serve: the name goes, and late connections are reset
  return summary(false);
}

// Strangers, members served already and members out of attempts are refused on accept:
// they cost a getsockopt and a close, and can never exhaust a member's attempts.
HandoffServer::Member* HandoffServer::admit(int conn) {
  pid_t pid = peerPid(conn);
  for (Member& m : members_) {
    if (m.pid == pid && !m.served && m.failures < limits_.attemptsPerPid) return &m;
  }
  ++refused_;
  FTCCL_LOG(Debug, Net, "shm hand-off: refused a connection of pid {}", pid);
  return nullptr;
}

Status HandoffServer::handshake(int conn, pid_t memberPid, int fd, net::Deadline deadline) const {
  uint8_t challenge[kChallengeBytes];
  putHeader(challenge, kChallenge);
  const uint8_t* ownNonce = challenge + kHeaderBytes;
  FTCCL_CHECK(crypto::randomBytes(challenge + kHeaderBytes, kNonceBytes));
  Status sent = net::sendAll(conn, challenge, sizeof(challenge), deadline);
  if (!sent.isOk()) return Status(sent.code(), "our challenge did not go: " + sent.message());
  uint8_t answer[kAnswerBytes];
  FTCCL_CHECK(readMessage(conn, answer, sizeof(answer), deadline, "its answer",
                          "it closed the connection without answering", nullptr));
  if (!isHeader(answer, kAnswer)) return remoteError("its answer is not a hand-off answer");
  const uint8_t* memberNonce = answer + kHeaderBytes;
  const pid_t self = getpid();
  if (!proofHolds(proof(mac_, kMemberRole, ownNonce, memberNonce, memberPid, self),
                  memberNonce + kNonceBytes)) {
    return remoteError("its proof is wrong (another key or context)");
  }
  uint8_t reply[kReplyBytes];
  putHeader(reply, kReply);
  crypto::Tag tag = proof(mac_, kLeaderRole, memberNonce, ownNonce, self, memberPid);
  std::memcpy(reply + kHeaderBytes, tag.data(), kTagBytes);
  // The descriptor travels with the proof: a member never holds one without the other.
  // Only our 24-byte challenge went this way before, so the reply goes at once.
  return sendWithFd(conn, reply, sizeof(reply), fd);
}

Status HandoffServer::summary(bool timedOut) const {
  std::string left;
  size_t count = 0;
  for (const Member& m : members_) {
    if (m.served) continue;
    left += std::string(count++ == 0 ? "" : "; ") + "pid " + std::to_string(m.pid) + ": " +
            (m.why.empty() ? "never connected" : m.why);
  }
  if (count == 0) return Status::ok();
  std::string message = "shm hand-off at " + name_ + ": " + std::to_string(count) + " of " +
                        std::to_string(members_.size()) + " members without the descriptor" +
                        (timedOut ? " at the deadline (" : " (") + left + ")";
  if (refused_ > 0) message += "; " + std::to_string(refused_) + " other connections refused";
  return timedOut ? timeoutError(message) : remoteError(message);
}

Status receiveFd(const std::string& name, const crypto::Key& key, uint64_t context, pid_t leaderPid,
                 net::Deadline deadline, net::Fd* fd) {
  if (!validName(name)) {
    return invalidArgument("shm hand-off: not a hand-off name (ftccl-shm- and 32 hex digits)");
  }
  if (leaderPid <= 0) return invalidArgument("shm hand-off: the leader's pid must be positive");
  crypto::MacKey mac = handoffKey(key, context);
  if (!mac.valid()) return internalError("shm hand-off: HMAC-SHA-256 is unavailable");
  Status st = receiveFrom(name, mac, leaderPid, deadline, fd);
  if (st.isOk()) return st;
  return Status(st.code(), "shm hand-off from the leader (pid " + std::to_string(leaderPid) +
                               ") at " + name + ": " + st.message());
}

}  // namespace shm
}  // namespace ftccl
