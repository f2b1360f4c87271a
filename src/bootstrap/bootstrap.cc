// Bootstrap: the root service (one poll-driven thread per rendezvous) and the client
// side of the rendezvous. See bootstrap.h for the protocol and wire.h for the format.
//
// Deadlines. A client sends, with its hello, its whole timeout and what is left of it.
// The root gives up at the earliest of (first hello + its own timeout) and, for every
// joined rank, (arrival + that rank's remaining time): once any rank would give up the
// rendezvous cannot complete, so the root tells every joined rank which ranks are
// missing. A client waits for the root's reply a short grace past its own deadline, so
// that it normally receives that message instead of timing out blind.
#include "bootstrap/bootstrap.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <new>
#include <thread>

#include "bootstrap/wire.h"
#include "util/crypto.h"
#include "util/env.h"
#include "util/log.h"
#include "util/net/socket.h"

namespace ftccl {
namespace bootstrap {
namespace {

constexpr int kDefaultTimeoutMs = 120000;
constexpr int kMaxHelloWaitMs = 10000;    // a connection must deliver its hello by then
constexpr int kErrorReplyWriteMs = 5000;  // time to flush an error reply
// Connections that have not said hello, and the hello bytes they may make the root hold.
// Past either cap the root closes the oldest one that has sent nothing (else the oldest):
// a real rank sends its hello within a round trip of the challenge, so a flood of idle
// or slow connections (strangers, port scanners) cannot keep the ranks out or exhaust
// descriptors and memory.
constexpr size_t kMaxPendingConnections = 256;
constexpr size_t kMaxPendingHelloBytes = size_t{32} << 20;
constexpr size_t kReadChunk = 64 * 1024;

using crypto::randomBytes;
using net::Cancelled;
using net::chooseListenAddress;
using net::Clock;
using net::connectWithRetry;
using net::Deadline;
using net::errnoString;
using net::Fd;
using net::listenOn;
using net::msSince;
using net::msUntil;
using net::numericSockAddr;
using net::recvAll;
using net::sendAll;
using net::SockAddr;

// ---------------------------------------------------------------------------------
// Root service
// ---------------------------------------------------------------------------------

using Bytes = std::vector<uint8_t>;

struct Conn {
  enum class State { ReadHeader, ReadBody, Joined, Writing };
  Fd fd;
  std::string peer;
  State state = State::ReadHeader;
  uint8_t header[kFrameHeaderBytes] = {0};
  size_t headerGot = 0;
  FrameHeader frame;
  Bytes body;
  Deadline helloDeadline;
  uint8_t challenge[kChallengeBytes] = {0};        // ours, sent at accept
  uint8_t clientChallenge[kChallengeBytes] = {0};  // from its hello, for our proofs
  // Joined
  int rank = -1;
  Deadline joinDeadline;
  uint32_t joinTimeoutMs = 0;
  Bytes blob;
  // Writing
  std::shared_ptr<const Bytes> out;
  size_t outOffset = 0;
  Bytes proof;  // our proof frame for `out`, sent after it
  Deadline writeDeadline;
  bool closed = false;
};

class RootService {
 public:
  RootService(Fd listenFd, const SockAddr& addr, const UniqueIdContents& contents, int timeoutMs,
              std::string origin)
      : listen_(std::move(listenFd)),
        addr_(addr),
        name_(addr.toString()),
        origin_(std::move(origin)),
        nonce_(contents.nonce),
        timeoutMs_(timeoutMs),
        creatorPid_(getpid()) {
    std::memcpy(secret_, contents.secret, 16);
  }
  ~RootService() {
    if (thread_.joinable()) {  // only reached after requestStop()
      requestStop();
      thread_.join();
    }
  }

  Status start() {
    wake_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wake_.valid()) return systemError("eventfd: " + errnoString(errno));
    try {
      thread_ = std::thread([this] { run(); });
    } catch (const std::exception& e) {
      return systemError(std::string("cannot start the bootstrap root thread: ") + e.what());
    }
    FTCCL_LOG(Info, Bootstrap, "bootstrap root listening on {} ({}, timeout {} ms)", name_, origin_,
              timeoutMs_);
    return Status::ok();
  }

  void requestStop() {
    stop_.store(true);
    uint64_t one = 1;
    ssize_t rc = write(wake_.get(), &one, sizeof(one));
    (void)rc;  // EAGAIN: a wake-up is already pending
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  bool finished() const { return finished_.load(); }
  pid_t creatorPid() const { return creatorPid_; }
  // After fork(), in the child: the thread does not exist there; drop our descriptors.
  void abandonAfterFork() {
    listen_.reset();
    wake_.reset();
  }

 private:
  void run() noexcept;
  void loop();
  void acceptAll(Clock::time_point now);
  void onReadable(Conn& c, Clock::time_point now);
  void onHello(Conn& c, Hello& hello, Clock::time_point now);
  void onWritable(Conn& c);
  void setReply(Conn& c, std::shared_ptr<const Bytes> frame, const std::array<uint8_t, 32>& digest);
  void drop(Conn& c);
  void replyError(Conn& c, ftcclResult_t code, const std::string& message, Clock::time_point now);
  void leaveRank(Conn& c);
  void complete(Clock::time_point now);
  void failAll(ftcclResult_t code, const std::string& message, Clock::time_point now);
  void notifyJoined(ftcclResult_t code, const std::string& message);
  Deadline collectDeadline(uint32_t* bindingTimeoutMs) const;
  std::vector<int> missingRanks() const;

  Fd listen_;
  Fd wake_;
  SockAddr addr_;
  std::string name_;
  std::string origin_;
  uint8_t secret_[16] = {0};
  uint64_t nonce_ = 0;
  int timeoutMs_ = 0;
  pid_t creatorPid_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> finished_{false};

  // Loop state (root thread only).
  enum class Phase { Collecting, Finishing } phase_ = Phase::Collecting;
  Clock::time_point start_;
  bool anyHello_ = false;
  Deadline firstHelloDeadline_;
  int nranks_ = 0;  // fixed by the first joined rank; 0 while nobody is joined
  int joined_ = 0;
  std::vector<Conn*> byRank_;
  std::list<Conn> conns_;
  Deadline acceptPausedUntil_;
  bool warnedFdLimit_ = false;
  // Connections closed without a hello (evicted, timed out, not ftccl): said in the error
  // when the rendezvous fails, so a flood is named as the cause.
  size_t droppedWithoutHello_ = 0;
  Deadline floodLoggedAt_;
  size_t evictedSinceLog_ = 0;
  bool evictOnePending(Clock::time_point now, bool holdingBytes = false);
  void boundPendingBytes(Clock::time_point now);
  std::string floodNote() const;
};

void RootService::run() noexcept {
  try {
    loop();
  } catch (const std::exception& e) {
    try {
      FTCCL_LOG(Error, Bootstrap, "bootstrap root {} failed: {}", name_, e.what());
      notifyJoined(ftcclInternalError, "bootstrap root " + name_ + " failed: " + e.what());
    } catch (...) {
    }
  } catch (...) {
  }
  try {
    conns_.clear();
    byRank_.clear();
  } catch (...) {
  }
  listen_.reset();
  finished_.store(true);
}

Deadline RootService::collectDeadline(uint32_t* bindingTimeoutMs) const {
  if (!anyHello_) {
    *bindingTimeoutMs = static_cast<uint32_t>(timeoutMs_);
    return start_ + std::chrono::milliseconds(timeoutMs_);
  }
  Deadline d = firstHelloDeadline_;
  *bindingTimeoutMs = static_cast<uint32_t>(timeoutMs_);
  for (const Conn& c : conns_) {
    if (c.state == Conn::State::Joined && c.joinDeadline < d) {
      d = c.joinDeadline;
      *bindingTimeoutMs = c.joinTimeoutMs;
    }
  }
  return d;
}

std::vector<int> RootService::missingRanks() const {
  std::vector<int> missing;
  for (int r = 0; r < static_cast<int>(byRank_.size()); ++r) {
    if (byRank_[r] == nullptr) missing.push_back(r);
  }
  return missing;
}

void RootService::loop() {
  start_ = Clock::now();
  std::vector<pollfd> fds;
  std::vector<Conn*> polled;
  for (;;) {
    if (stop_.load()) {
      notifyJoined(ftcclRemoteError, "bootstrap root " + name_ +
                                         " was stopped before the rendezvous completed (is "
                                         "its process exiting?)");
      FTCCL_LOG(Debug, Bootstrap, "bootstrap root {} stopped", name_);
      return;
    }
    auto now = Clock::now();

    // Deadlines.
    if (phase_ == Phase::Collecting) {
      uint32_t bindingMs = 0;
      Deadline d = collectDeadline(&bindingMs);
      if (now >= d) {
        if (joined_ == 0) {
          FTCCL_LOG(Warn, Bootstrap, "bootstrap root {} gives up: no rank joined within {} ms",
                    name_, bindingMs);
          failAll(ftcclTimeout, "no rank joined" + floodNote(), now);  // flushes error replies
          continue;
        }
        std::string msg = formatRankList(missingRanks()) + " of " + std::to_string(nranks_) +
                          " did not join within " + std::to_string(bindingMs) +
                          " ms (bootstrap root " + name_ + ")" + floodNote();
        // A process killed or stopped during init must not sink the others: with rank 0
        // and a strict majority, the table goes out with the missing entries empty and
        // the communicator replaces them (spares) or drops them (shrink), or fails.
        if (byRank_[0] != nullptr && 2 * joined_ > nranks_) {
          FTCCL_LOG(Warn, Bootstrap, "bootstrap rendezvous: {}; completing with the {} that did",
                    msg, joined_);
          complete(now);
          continue;
        }
        FTCCL_LOG(Warn, Bootstrap, "bootstrap rendezvous failed: {}", msg);
        failAll(ftcclTimeout, msg, now);
      }
    }
    for (Conn& c : conns_) {
      if ((c.state == Conn::State::ReadHeader || c.state == Conn::State::ReadBody) &&
          now >= c.helloDeadline) {
        FTCCL_LOG(Warn, Bootstrap,
                  "dropped bootstrap connection from {}: no complete hello within {} ms", c.peer,
                  std::min(timeoutMs_, kMaxHelloWaitMs));
        ++droppedWithoutHello_;
        drop(c);
      } else if (c.state == Conn::State::Writing && now >= c.writeDeadline) {
        FTCCL_LOG(Warn, Bootstrap,
                  "dropped bootstrap connection from {} (rank {}): the reply could not be "
                  "delivered in time",
                  c.peer, c.rank);
        drop(c);
      }
    }
    conns_.remove_if([](const Conn& c) { return c.closed; });
    if (phase_ == Phase::Finishing && conns_.empty()) return;

    // Poll.
    Deadline next = now + std::chrono::hours(24);
    if (phase_ == Phase::Collecting) {
      uint32_t unused = 0;
      next = std::min(next, collectDeadline(&unused));
    }
    fds.clear();
    polled.clear();
    fds.push_back({wake_.get(), POLLIN, 0});
    bool pollListen = listen_.valid() && now >= acceptPausedUntil_;
    if (listen_.valid() && !pollListen) next = std::min(next, acceptPausedUntil_);
    fds.push_back({pollListen ? listen_.get() : -1, POLLIN, 0});
    for (Conn& c : conns_) {
      short events = c.state == Conn::State::Writing ? POLLOUT : POLLIN;
      if (c.state == Conn::State::Writing) next = std::min(next, c.writeDeadline);
      if (c.state == Conn::State::ReadHeader || c.state == Conn::State::ReadBody) {
        next = std::min(next, c.helloDeadline);
      }
      fds.push_back({c.fd.get(), events, 0});
      polled.push_back(&c);
    }
    int rc = ::poll(fds.data(), fds.size(), msUntil(next));
    if (rc < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("poll: " + errnoString(errno));
    }
    now = Clock::now();
    if (fds[0].revents) {
      uint64_t value = 0;
      ssize_t n = read(wake_.get(), &value, sizeof(value));
      (void)n;
    }
    if (stop_.load()) continue;
    for (size_t i = 0; i < polled.size(); ++i) {
      short ev = fds[i + 2].revents;
      Conn& c = *polled[i];
      if (ev == 0 || c.closed) continue;
      if (c.state == Conn::State::Writing) {
        onWritable(c);
      } else {
        onReadable(c, now);
      }
    }
    if (fds[1].revents && listen_.valid()) acceptAll(now);
    conns_.remove_if([](const Conn& c) { return c.closed; });
    if (phase_ == Phase::Collecting && nranks_ > 0 && joined_ == nranks_) complete(now);
  }
}

void RootService::acceptAll(Clock::time_point now) {
  size_t pending = 0;
  for (const Conn& c : conns_) {
    if (c.state == Conn::State::ReadHeader || c.state == Conn::State::ReadBody) ++pending;
  }
  // Bounded per wake-up: a connect flood faster than this loop must not keep the root
  // from reading the hellos of the connections it has.
  for (int accepted = 0; accepted < 64; ++accepted) {
    SockAddr peer;
    peer.length = sizeof(peer.storage);
    int fd = accept4(listen_.get(), peer.sa(), &peer.length, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      int err = errno;
      if (err == EINTR || err == ECONNABORTED) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        if (!warnedFdLimit_) {
          FTCCL_LOG(Warn, Bootstrap, "bootstrap root {}: accept: {} (retrying)", name_,
                    errnoString(err));
          warnedFdLimit_ = true;
        }
        // A descriptor held by a connection that said nothing is the one to give back.
        if (!evictOnePending(now)) {
          acceptPausedUntil_ = now + std::chrono::milliseconds(50);
          return;
        }
        if (pending > 0) --pending;
        continue;
      }
      FTCCL_LOG(Warn, Bootstrap, "bootstrap root {}: accept: {}", name_, errnoString(err));
      acceptPausedUntil_ = now + std::chrono::milliseconds(50);
      return;
    }
    Fd owned(fd);
    if (pending >= kMaxPendingConnections && evictOnePending(now)) --pending;
    // Our challenge first: the client proves it holds the secret for it, so that a hello
    // recorded on another connection is worth nothing. A new socket's send buffer is
    // empty: the 36 bytes go at once, or the connection is not worth keeping.
    uint8_t challenge[kChallengeBytes];
    if (!randomBytes(challenge, sizeof(challenge)).isOk()) continue;
    Bytes frame = encodeChallenge(challenge);
    ssize_t sent = ::send(owned.get(), frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent != static_cast<ssize_t>(frame.size())) continue;
    Conn& c = conns_.emplace_back();
    c.fd = std::move(owned);
    c.peer = peer.toString();
    std::memcpy(c.challenge, challenge, sizeof(challenge));
    c.helloDeadline = now + std::chrono::milliseconds(std::min(timeoutMs_, kMaxHelloWaitMs));
    ++pending;
  }
}

// Closes the oldest connection without a hello that has sent nothing (else the oldest
// without a hello); with holdingBytes, the oldest whose hello is partly read. False if
// there is none.
bool RootService::evictOnePending(Clock::time_point now, bool holdingBytes) {
  Conn* victim = nullptr;
  for (Conn& c : conns_) {  // in accept order
    if (c.closed || (c.state != Conn::State::ReadHeader && c.state != Conn::State::ReadBody)) {
      continue;
    }
    if (holdingBytes && c.state != Conn::State::ReadBody) continue;
    if (holdingBytes || (c.state == Conn::State::ReadHeader && c.headerGot == 0)) {
      victim = &c;
      break;
    }
    if (victim == nullptr) victim = &c;
  }
  if (victim == nullptr) return false;
  ++droppedWithoutHello_;
  ++evictedSinceLog_;
  if (floodLoggedAt_ == Deadline{} || now - floodLoggedAt_ >= std::chrono::seconds(10)) {
    FTCCL_LOG(Warn, Bootstrap,
              "bootstrap root {}: closed {} connection(s) without a hello to make room (at most "
              "{} may wait for theirs, holding {} MiB): a flood of idle or slow connections?",
              name_, evictedSinceLog_, kMaxPendingConnections, kMaxPendingHelloBytes >> 20);
    floodLoggedAt_ = now;
    evictedSinceLog_ = 0;
  }
  drop(*victim);
  return true;
}

void RootService::boundPendingBytes(Clock::time_point now) {
  for (;;) {
    size_t held = 0;
    for (const Conn& c : conns_) {
      if (!c.closed && c.state == Conn::State::ReadBody) held += c.body.size();
    }
    if (held <= kMaxPendingHelloBytes || !evictOnePending(now, /*holdingBytes=*/true)) return;
  }
}

std::string RootService::floodNote() const {
  if (droppedWithoutHello_ == 0) return "";
  return "; meanwhile the root closed " + std::to_string(droppedWithoutHello_) +
         " connection(s) that sent no complete hello (idle, slow, or not ftccl: a flood of "
         "connections at its port?)";
}

void RootService::drop(Conn& c) {
  if (c.state == Conn::State::Joined) leaveRank(c);
  c.fd.reset();
  c.closed = true;
}

void RootService::leaveRank(Conn& c) {
  if (c.rank >= 0 && c.rank < static_cast<int>(byRank_.size()) && byRank_[c.rank] == &c) {
    byRank_[c.rank] = nullptr;
    --joined_;
    if (joined_ == 0) {
      nranks_ = 0;
      byRank_.clear();
    }
  }
}

void RootService::replyError(Conn& c, ftcclResult_t code, const std::string& message,
                             Clock::time_point now) {
  if (c.state == Conn::State::Joined) leaveRank(c);
  auto frame = std::make_shared<const Bytes>(encodeError(code, message));
  setReply(c, frame, replyDigest(*frame));
  c.writeDeadline = now + std::chrono::milliseconds(kErrorReplyWriteMs);
}

void RootService::onReadable(Conn& c, Clock::time_point now) {
  uint8_t buf[kReadChunk];
  for (;;) {
    size_t want = 0;
    uint8_t* dst = nullptr;
    if (c.state == Conn::State::ReadHeader) {
      want = kFrameHeaderBytes - c.headerGot;
      dst = c.header + c.headerGot;
    } else if (c.state == Conn::State::ReadBody) {
      want = std::min(kReadChunk, c.frame.length - c.body.size());
      dst = buf;
    } else {  // Joined: nothing more may arrive; detects a closed connection.
      want = 1;
      dst = buf;
    }
    ssize_t n = ::recv(c.fd.get(), dst, want, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    }
    if (n <= 0) {
      if (c.state == Conn::State::Joined) {
        FTCCL_LOG(Warn, Bootstrap,
                  "bootstrap root {}: rank {} ({}) disconnected before the rendezvous "
                  "completed",
                  name_, c.rank, c.peer);
      } else if (c.headerGot > 0) {
        FTCCL_LOG(Warn, Bootstrap,
                  "dropped bootstrap connection from {}: closed in the middle of its hello",
                  c.peer);
      }
      drop(c);
      return;
    }
    if (c.state == Conn::State::Joined) {
      FTCCL_LOG(Warn, Bootstrap,
                "dropped bootstrap connection from {} (rank {}): unexpected data after its "
                "hello",
                c.peer, c.rank);
      drop(c);
      return;
    }
    if (c.state == Conn::State::ReadHeader) {
      c.headerGot += static_cast<size_t>(n);
      if (c.headerGot < kFrameHeaderBytes) continue;
      Status st = parseFrameHeader(c.header, kFrameHeaderBytes, &c.frame);
      if (st.isOk() && c.frame.type != FrameType::Hello) {
        st = invalidArgument("expected a hello");
      }
      if (!st.isOk()) {
        FTCCL_LOG(Warn, Bootstrap, "dropped bootstrap connection from {}: {}", c.peer,
                  st.message());
        drop(c);
        return;
      }
      c.state = Conn::State::ReadBody;
    } else {
      c.body.insert(c.body.end(), buf, buf + n);
      boundPendingBytes(now);
      if (c.closed) return;
    }
    if (c.state == Conn::State::ReadBody && c.body.size() == c.frame.length) {
      Hello hello;
      Status st = checkFrameBody(c.frame, c.body.data(), c.body.size());
      if (st.isOk() && !helloProven(c.body.data(), c.body.size(), secret_, c.challenge)) {
        // Said plainly, without a reply: a process without the secret learns nothing.
        FTCCL_LOG(Warn, Bootstrap,
                  "rejected bootstrap connection from {}: wrong secret (its hello does not "
                  "prove this job's secret)",
                  c.peer);
        drop(c);
        return;
      }
      if (st.isOk()) st = decodeHelloBody(c.body.data(), c.body.size(), &hello);
      Bytes().swap(c.body);
      if (!st.isOk()) {
        FTCCL_LOG(Warn, Bootstrap, "dropped bootstrap connection from {}: {}", c.peer,
                  st.message());
        drop(c);
        return;
      }
      onHello(c, hello, now);
      return;
    }
  }
}

void RootService::onHello(Conn& c, Hello& hello, Clock::time_point now) {
  std::memcpy(c.clientChallenge, hello.challenge, kChallengeBytes);
  auto reject = [&](ftcclResult_t code, const std::string& why) {
    FTCCL_LOG(Warn, Bootstrap, "bootstrap root {}: rejected rank {} from {}: {}", name_, hello.rank,
              c.peer, why);
    replyError(c, code, why, now);
  };
  if (hello.nonce != nonce_) {
    reject(ftcclInvalidArgument,
           "unique id mismatch: this bootstrap root serves another rendezvous (stale unique "
           "id?)");
    return;
  }
  if (phase_ != Phase::Collecting) {
    reject(ftcclInvalidUsage, "the rendezvous is already over");
    return;
  }
  if (hello.nranks < 1 || hello.nranks > kMaxRanks) {
    reject(ftcclInvalidArgument, "nranks " + std::to_string(hello.nranks) + " is out of range 1.." +
                                     std::to_string(kMaxRanks));
    return;
  }
  if (joined_ > 0 && hello.nranks != nranks_) {
    reject(ftcclInvalidArgument,
           "rank " + std::to_string(hello.rank) + " says nranks " + std::to_string(hello.nranks) +
               " but the ranks already joined say " + std::to_string(nranks_));
    return;
  }
  if (hello.rank < 0 || hello.rank >= hello.nranks) {
    reject(ftcclInvalidArgument, "rank " + std::to_string(hello.rank) +
                                     " is out of range for nranks " + std::to_string(hello.nranks));
    return;
  }
  if (joined_ > 0 && byRank_[hello.rank] != nullptr) {
    reject(ftcclInvalidArgument, "rank " + std::to_string(hello.rank) + " already joined from " +
                                     byRank_[hello.rank]->peer);
    return;
  }
  if (joined_ == 0) {
    nranks_ = hello.nranks;
    byRank_.assign(static_cast<size_t>(nranks_), nullptr);
  }
  if (!anyHello_) {
    anyHello_ = true;
    firstHelloDeadline_ = now + std::chrono::milliseconds(timeoutMs_);
  }
  c.state = Conn::State::Joined;
  c.rank = hello.rank;
  c.joinTimeoutMs = hello.timeoutMs;
  c.joinDeadline = now + std::chrono::milliseconds(std::max<uint32_t>(hello.remainingMs, 1));
  c.blob = std::move(hello.blob);
  byRank_[c.rank] = &c;
  ++joined_;
  FTCCL_LOG(Debug, Bootstrap, "bootstrap root {}: rank {} of {} joined from {} ({}/{})", name_,
            c.rank, nranks_, c.peer, joined_, nranks_);
}

void RootService::setReply(Conn& c, std::shared_ptr<const Bytes> frame,
                           const std::array<uint8_t, 32>& digest) {
  c.out = std::move(frame);
  c.outOffset = 0;
  c.proof = encodeReplyProof(secret_, c.challenge, c.clientChallenge, digest);
  c.state = Conn::State::Writing;
}

void RootService::onWritable(Conn& c) {
  for (;;) {
    if (c.outOffset == c.out->size()) {
      if (c.proof.empty()) break;
      c.out = std::make_shared<const Bytes>(std::move(c.proof));
      c.proof.clear();
      c.outOffset = 0;
    }
    ssize_t n = ::send(c.fd.get(), c.out->data() + c.outOffset, c.out->size() - c.outOffset,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c.outOffset += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    FTCCL_LOG(Warn, Bootstrap, "bootstrap root {}: cannot send the reply to {} (rank {}): {}",
              name_, c.peer, c.rank, n < 0 ? errnoString(errno) : std::string("closed"));
    break;
  }
  c.fd.reset();  // all sent (or failed): the reply is followed by an orderly close
  c.closed = true;
}

void RootService::complete(Clock::time_point now) {
  size_t total = 12;
  for (const Conn* c : byRank_) total += 4 + (c != nullptr ? c->blob.size() : 0);
  if (total > kMaxTableBytes) {
    std::string msg = "the table of all ranks' blobs (" + std::to_string(total) +
                      " bytes) exceeds the limit of " + std::to_string(kMaxTableBytes);
    FTCCL_LOG(Warn, Bootstrap, "bootstrap root {}: {}", name_, msg);
    failAll(ftcclInvalidArgument, msg, now);
    return;
  }
  std::vector<Bytes> blobs(byRank_.size());  // a missing rank's stays empty
  for (size_t r = 0; r < byRank_.size(); ++r) {
    if (byRank_[r] != nullptr) blobs[r] = std::move(byRank_[r]->blob);
  }
  auto table = std::make_shared<const Bytes>(encodeTable(nonce_, blobs));
  const auto digest = replyDigest(*table);
  FTCCL_LOG(Info, Bootstrap, "bootstrap root {}: {} of {} ranks joined in {} ms", name_, joined_,
            nranks_, msSince(start_));
  phase_ = Phase::Finishing;
  listen_.reset();  // latecomers are refused
  const Deadline writeDeadline =
      now + std::chrono::milliseconds(std::max(timeoutMs_, kErrorReplyWriteMs));
  for (Conn& c : conns_) {
    if (c.state == Conn::State::Joined) {
      setReply(c, table, digest);
      c.writeDeadline = writeDeadline;
    } else if (c.state != Conn::State::Writing) {
      drop(c);
    }
  }
  byRank_.clear();
  joined_ = 0;
}

void RootService::failAll(ftcclResult_t code, const std::string& message, Clock::time_point now) {
  phase_ = Phase::Finishing;
  listen_.reset();
  auto frame = std::make_shared<const Bytes>(encodeError(code, message));
  const auto digest = replyDigest(*frame);
  for (Conn& c : conns_) {
    if (c.state == Conn::State::Joined) {
      setReply(c, frame, digest);
      c.writeDeadline = now + std::chrono::milliseconds(kErrorReplyWriteMs);
    } else if (c.state != Conn::State::Writing) {
      drop(c);
    }
  }
  byRank_.clear();
  joined_ = 0;
}

// Best effort, never blocking: joined ranks learn why the root went away.
void RootService::notifyJoined(ftcclResult_t code, const std::string& message) {
  Bytes frame = encodeError(code, message);
  const auto digest = replyDigest(frame);
  for (Conn& c : conns_) {
    if (c.state == Conn::State::Joined && c.fd.valid()) {
      Bytes proof = encodeReplyProof(secret_, c.challenge, c.clientChallenge, digest);
      ssize_t n = ::send(c.fd.get(), frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n == static_cast<ssize_t>(frame.size())) {
        n = ::send(c.fd.get(), proof.data(), proof.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      }
      (void)n;
    }
  }
}

// ---------------------------------------------------------------------------------
// Registry of the roots this process runs
// ---------------------------------------------------------------------------------

struct Registry {
  std::mutex mu;
  std::vector<std::unique_ptr<RootService>> roots;

  ~Registry() {
    try {
      stopAll();
    } catch (...) {
    }
  }

  void reapLocked() {
    for (auto it = roots.begin(); it != roots.end();) {
      if ((*it)->finished()) {
        (*it)->join();
        it = roots.erase(it);
      } else {
        ++it;
      }
    }
  }

  void stopAll() {
    std::vector<std::unique_ptr<RootService>> taken;
    {
      std::lock_guard<std::mutex> lock(mu);
      taken.swap(roots);
    }
    const pid_t self = getpid();
    for (auto& r : taken) {
      if (r->creatorPid() != self) {  // inherited through fork(): no thread here
        r->abandonAfterFork();
        (void)r.release();  // its std::thread names a thread of the parent: never touch it
        continue;
      }
      r->requestStop();
    }
    for (auto& r : taken) {
      if (r) r->join();
    }
  }
};

Registry& registry() {
  static Registry r;  // destroyed at exit: stops and joins every root thread
  return r;
}

Status startRoot(Fd listenFd, const SockAddr& addr, const UniqueIdContents& contents, int timeoutMs,
                 std::string origin) {
  auto root = std::make_unique<RootService>(std::move(listenFd), addr, contents, timeoutMs,
                                            std::move(origin));
  Registry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mu);
  reg.reapLocked();
  reg.roots.reserve(reg.roots.size() + 1);  // so that push_back below cannot throw
  FTCCL_CHECK(root->start());
  reg.roots.push_back(std::move(root));
  return Status::ok();
}

// Client side helpers --------------------------------------------------------------

int replyGraceMs(int timeoutMs) { return std::clamp(timeoutMs / 4, 100, 2000); }

Status validateRendezvousArgs(int rank, int nranks, const std::vector<uint8_t>& myBlob,
                              int timeoutMs, std::vector<std::vector<uint8_t>>* allBlobs) {
  if (allBlobs == nullptr) return invalidArgument("rendezvous: allBlobs is NULL");
  if (nranks < 1 || nranks > kMaxRanks) {
    return invalidArgument("nranks " + std::to_string(nranks) + " is out of range 1.." +
                           std::to_string(kMaxRanks));
  }
  if (rank < 0 || rank >= nranks) {
    return invalidArgument("rank " + std::to_string(rank) + " is out of range 0.." +
                           std::to_string(nranks - 1));
  }
  if (timeoutMs < 1 || timeoutMs > kMaxTimeoutMs) {
    return invalidArgument("bootstrap timeout " + std::to_string(timeoutMs) +
                           " ms is out of range 1.." + std::to_string(kMaxTimeoutMs));
  }
  if (myBlob.empty()) return invalidArgument("empty bootstrap blob (empty means absent)");
  if (myBlob.size() > kMaxBlobBytes) {
    return invalidArgument("bootstrap blob of " + std::to_string(myBlob.size()) +
                           " bytes exceeds the limit of " + std::to_string(kMaxBlobBytes));
  }
  return Status::ok();
}

Status rendezvousImpl(const UniqueIdContents& contents, int rank, int nranks,
                      const std::vector<uint8_t>& myBlob, int timeoutMs,
                      std::vector<std::vector<uint8_t>>* allBlobs, const Cancelled& cancelled) {
  const auto start = Clock::now();
  FTCCL_CHECK(validateRendezvousArgs(rank, nranks, myBlob, timeoutMs, allBlobs));
  SockAddr rootAddr;
  if (contents.rootPort == 0 ||
      !numericSockAddr(contents.rootHost, contents.rootPort, &rootAddr).isOk()) {
    return invalidArgument("the unique id names no valid root address ('" + contents.rootHost +
                           "', port " + std::to_string(contents.rootPort) + ")");
  }
  const std::string root = rootAddr.toString();
  const Deadline deadline = start + std::chrono::milliseconds(timeoutMs);
  const Deadline replyDeadline = deadline + std::chrono::milliseconds(replyGraceMs(timeoutMs));

  if (contents.rankZeroStartsRoot && rank == 0) {
    Fd listenFd;
    SockAddr bound;
    Status st = listenOn(rootAddr, /*reuseAddr=*/true, &listenFd, &bound);
    if (!st.isOk()) {
      return Status(st.code(), st.message() +
                                   " (FTCCL_COMM_ID: rank 0 starts the bootstrap root and "
                                   "must run on that host, with the port free)");
    }
    FTCCL_CHECK(startRoot(std::move(listenFd), bound, contents, timeoutMs,
                          "FTCCL_COMM_ID, started by rank 0"));
  }

  Fd fd;
  std::string lastError;
  auto connectToRoot = [&]() -> Status {
    Status connected = connectWithRetry(rootAddr, deadline, &fd, &lastError, cancelled);
    if (connected.code() == ftcclRemoteError) {
      return remoteError("bootstrap rendezvous given up: " + connected.message());
    }
    if (connected.code() == ftcclTimeout) {
      return systemError("cannot reach bootstrap root " + root + " within " +
                         std::to_string(timeoutMs) +
                         " ms (is the root process alive? stale unique id?): " + lastError);
    }
    return connected;
  };
  Status st = connectToRoot();
  if (!st.isOk()) return st;

  const std::string closedMsg =
      "bootstrap root " + root +
      " closed the connection without a reply: it rejected this rank (wrong secret: a unique "
      "id or FTCCL_COMM_SECRET from another job?), it was flooded by other connections, or "
      "it exited; see the root's log";
  auto noReply = [&](const Status& io) -> Status {
    if (io.code() == ftcclRemoteError) {
      return remoteError("bootstrap rendezvous with root " + root + " given up: " + io.message());
    }
    if (io.code() == ftcclTimeout) {
      return timeoutError("bootstrap rendezvous as rank " + std::to_string(rank) + " of " +
                          std::to_string(nranks) + " did not complete within " +
                          std::to_string(timeoutMs) + " ms: no reply from bootstrap root " + root +
                          " (it did not say which ranks are missing; is it alive?)");
    }
    return systemError(closedMsg + " [" + io.message() + "]");
  };
  auto badReply = [&](const std::string& why) {
    return remoteError("bad reply from bootstrap root " + root + ": " + why);
  };
  // One whole frame. The body grows as bytes arrive: a corrupted length costs no more
  // than what was sent.
  auto readFrame = [&](FrameHeader* header, Bytes* frame) -> Status {
    frame->assign(kFrameHeaderBytes, 0);
    size_t got = 0;
    Status io = recvAll(fd.get(), frame->data(), kFrameHeaderBytes, replyDeadline, &got, cancelled);
    if (!io.isOk()) return noReply(io);
    Status parsed = parseFrameHeader(frame->data(), kFrameHeaderBytes, header);
    if (!parsed.isOk()) return badReply(parsed.message());
    // Read before the root proved itself: no more than a table of nranks blobs.
    const size_t tableCap = 12 + static_cast<size_t>(nranks) * (4 + kMaxBlobBytes);
    if (header->type == FrameType::Table && header->length > tableCap) {
      return badReply("a table of " + std::to_string(header->length) + " bytes for " +
                      std::to_string(nranks) + " ranks");
    }
    while (frame->size() - kFrameHeaderBytes < header->length) {
      size_t chunk =
          std::min<size_t>(header->length - (frame->size() - kFrameHeaderBytes), size_t{1} << 20);
      size_t old = frame->size();
      frame->resize(old + chunk);
      io = recvAll(fd.get(), frame->data() + old, chunk, replyDeadline, &got, cancelled);
      if (!io.isOk()) return noReply(io);
    }
    Status body = checkFrameBody(*header, frame->data() + kFrameHeaderBytes, header->length);
    return body.isOk() ? body : badReply(body.message());
  };

  // The root's challenge, then our hello proving the secret for it. A root flooded with
  // connections may close ours before it sends the challenge (or never accept it): tried
  // again, with a growing pause, until the deadline.
  FrameHeader header;
  Bytes frame;
  for (int pauseMs = 20;; pauseMs = std::min(2 * pauseMs, 500)) {
    st = readFrame(&header, &frame);
    if (st.isOk() || st.code() != ftcclSystemError || msUntil(deadline) <= pauseMs) break;
    FTCCL_LOG(Info, Bootstrap,
              "bootstrap root {} closed the connection before its challenge: "
              "connecting again in {} ms",
              root, pauseMs);
    fd.reset();
    std::this_thread::sleep_for(std::chrono::milliseconds(pauseMs));
    st = connectToRoot();
    if (!st.isOk()) return st;
  }
  if (!st.isOk()) return st;
  uint8_t rootChallenge[kChallengeBytes];
  if (header.type != FrameType::Challenge ||
      !decodeChallengeBody(frame.data() + kFrameHeaderBytes, header.length, rootChallenge).isOk()) {
    return badReply("expected its challenge");
  }
  Hello hello;
  FTCCL_CHECK(randomBytes(hello.challenge, sizeof(hello.challenge)));
  hello.nonce = contents.nonce;
  hello.rank = rank;
  hello.nranks = nranks;
  hello.timeoutMs = static_cast<uint32_t>(timeoutMs);
  hello.remainingMs = static_cast<uint32_t>(std::max(1, msUntil(deadline)));
  hello.blob = myBlob;
  const Bytes helloFrame = encodeHello(hello, contents.secret, rootChallenge);
  st = sendAll(fd.get(), helloFrame.data(), helloFrame.size(), replyDeadline, cancelled);
  if (!st.isOk()) return noReply(st);

  // Its reply, then its proof that it holds the secret: a process listening at the
  // root's address without it (a stranger, a stale root of another job) is no root.
  st = readFrame(&header, &frame);
  if (!st.isOk()) return st;
  if (header.type != FrameType::Table && header.type != FrameType::Error) {
    return badReply(std::string("unexpected frame type ") +
                    std::to_string(static_cast<int>(header.type)));
  }
  const FrameHeader replyHeader = header;
  const Bytes reply = std::move(frame);
  st = readFrame(&header, &frame);
  if (!st.isOk()) return st;
  fd.reset();
  if (header.type != FrameType::Proof ||
      !replyProven(frame.data() + kFrameHeaderBytes, header.length, contents.secret, rootChallenge,
                   hello.challenge, replyDigest(reply))) {
    return remoteError("the process answering at bootstrap root " + root +
                       " did not prove that it holds this job's secret: it is not this job's "
                       "root (a stale root of another job, or a stranger at that address)");
  }
  const uint8_t* body = reply.data() + kFrameHeaderBytes;
  if (replyHeader.type == FrameType::Error) {
    ftcclResult_t code = ftcclRemoteError;
    std::string message;
    st = decodeErrorBody(body, replyHeader.length, &code, &message);
    if (!st.isOk()) return badReply(st.message());
    return Status(code, "bootstrap rendezvous failed (rank " + std::to_string(rank) + " of " +
                            std::to_string(nranks) + "): " + message);
  }
  uint64_t nonce = 0;
  std::vector<Bytes> blobs;
  st = decodeTableBody(body, replyHeader.length, &nonce, &blobs);
  if (!st.isOk()) return badReply(st.message());
  if (nonce != contents.nonce || blobs.size() != static_cast<size_t>(nranks) ||
      blobs[static_cast<size_t>(rank)] != myBlob) {
    return badReply("the table does not match this rendezvous (nranks " +
                    std::to_string(blobs.size()) + ", expected " + std::to_string(nranks) + ")");
  }
  *allBlobs = std::move(blobs);
  FTCCL_LOG(Info, Bootstrap, "rendezvous completed: rank {} of {} in {} ms (root {})", rank, nranks,
            msSince(start), root);
  return Status::ok();
}

}  // namespace
}  // namespace bootstrap

// ---------------------------------------------------------------------------------
// Public (internal API) entry points
// ---------------------------------------------------------------------------------

Status bootstrapTimeoutMs(int* timeoutMs) {
  if (timeoutMs == nullptr) return invalidArgument("bootstrapTimeoutMs: NULL");
  try {
    int64_t value = bootstrap::kDefaultTimeoutMs;
    FTCCL_CHECK(envInt("FTCCL_BOOTSTRAP_TIMEOUT_MS", 1, bootstrap::kMaxTimeoutMs, &value));
    *timeoutMs = static_cast<int>(value);
    return Status::ok();
  } catch (const std::exception&) {
    return systemError("out of memory while reading FTCCL_BOOTSTRAP_TIMEOUT_MS");
  }
}

Status createUniqueId(ftcclUniqueId* id) {
  using namespace bootstrap;
  if (id == nullptr) return invalidArgument("ftcclGetUniqueId: uniqueId is NULL");
  try {
    std::string commId = envString("FTCCL_COMM_ID");
    if (!commId.empty()) {
      UniqueIdContents contents;
      bool insecure = false;
      FTCCL_CHECK(commIdContents(commId, envString("FTCCL_COMM_SECRET"), &contents, &insecure));
      if (insecure) {
        FTCCL_LOG(Warn, Bootstrap,
                  "FTCCL_COMM_SECRET={}: any process that reaches {} can join the "
                  "rendezvous (set it to the same 32 hex digits on every rank)",
                  kInsecureSecret, commId);
      }
      encodeUniqueId(contents, id);
      return Status::ok();
    }
    return createListeningId(id);
  } catch (const std::bad_alloc&) {
    return systemError("out of memory while creating the unique id");
  } catch (const std::exception& e) {
    return internalError(std::string("createUniqueId: ") + e.what());
  }
}

Status createListeningId(ftcclUniqueId* id) {
  using namespace bootstrap;
  try {
    int timeoutMs = 0;
    FTCCL_CHECK(bootstrapTimeoutMs(&timeoutMs));
    SockAddr addr;
    std::string iface;
    FTCCL_CHECK(chooseListenAddress(&addr, &iface));
    Fd listenFd;
    SockAddr bound;
    FTCCL_CHECK(listenOn(addr, /*reuseAddr=*/false, &listenFd, &bound));
    UniqueIdContents contents;
    contents.rootHost = bound.host();
    contents.rootPort = bound.port();
    FTCCL_CHECK(randomBytes(contents.secret, sizeof(contents.secret)));
    FTCCL_CHECK(randomBytes(&contents.nonce, sizeof(contents.nonce)));
    FTCCL_CHECK(startRoot(std::move(listenFd), bound, contents, timeoutMs, "interface " + iface));
    encodeUniqueId(contents, id);
    return Status::ok();
  } catch (const std::bad_alloc&) {
    return systemError("out of memory while creating the unique id");
  } catch (const std::exception& e) {
    return internalError(std::string("createUniqueId: ") + e.what());
  }
}

Status rendezvous(const UniqueIdContents& contents, int rank, int nranks,
                  const std::vector<uint8_t>& myBlob, int timeoutMs,
                  std::vector<std::vector<uint8_t>>* allBlobs,
                  const std::function<bool()>& cancelled) {
  try {
    return bootstrap::rendezvousImpl(contents, rank, nranks, myBlob, timeoutMs, allBlobs,
                                     cancelled);
  } catch (const std::bad_alloc&) {
    return systemError("out of memory during the bootstrap rendezvous");
  } catch (const std::exception& e) {
    return internalError(std::string("bootstrap rendezvous: ") + e.what());
  }
}

void stopAllRoots() {
  try {
    bootstrap::registry().stopAll();
  } catch (...) {
  }
}

}  // namespace ftccl
