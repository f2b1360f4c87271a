// Bootstrap root service, its connections: accepting (our challenge first), reading a
// hello without blocking, writing a reply and its proof, and the bounds on connections
// that have not said hello, so that a flood of idle or slow strangers cannot keep the
// ranks out. The decisions these feed are in root_service.cc.
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "bootstrap/root_service.h"
#include "util/crypto.h"
#include "util/log.h"

namespace ftccl {
namespace bootstrap {

using crypto::randomBytes;
using net::Clock;
using net::Deadline;
using net::errnoString;
using net::Fd;
using net::SockAddr;

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
      if (st.isOk() && c.frame.type != c.expect) {
        st = invalidArgument(c.expect == FrameType::Hello ? "expected a hello"
                                                          : "expected a fetch or its close");
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
      // A fetch is 28 bytes, and once they come the listener is closed: no flood to bound
      // (the scan is O(connections), O(N^2) had every rank fallen back).
      if (c.expect == FrameType::Hello) boundPendingBytes(now);
      if (c.closed) return;
    }
    if (c.state == Conn::State::ReadBody && c.body.size() == c.frame.length &&
        c.expect == FrameType::Fetch) {
      if (!checkFrameBody(c.frame, c.body.data(), c.body.size()).isOk()) {
        drop(c);
        return;
      }
      onFetch(c, now);
      return;
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
      if (!c.proof.empty()) {
        c.out = std::make_shared<const Bytes>(std::move(c.proof));
        c.proof.clear();
      } else if (c.then) {
        c.out = std::move(c.then);
        c.then.reset();
      } else if (c.mayFetch) {
        // Its Role is out: kept until it closes (it has the table from its parent) or
        // fetches it here, within the rendezvous timeout.
        c.state = Conn::State::ReadHeader;
        c.expect = FrameType::Fetch;
        c.headerGot = 0;
        c.helloDeadline = c.writeDeadline;
        return;
      } else {
        break;
      }
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

}  // namespace bootstrap
}  // namespace ftccl
