// HealthService::Driver, connections: the network the protocol sees (HealthNetwork), the
// TCP connections that carry its ordered messages, and the loss of one, verified before
// it is taken for a crash.
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "health/health_service_driver.h"
#include "util/crypto.h"
#include "util/fault_injection.h"
#include "util/log.h"

namespace ftccl {

using net::SockAddr;

std::string HealthService::Driver::localHost() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return host;
}

std::string HealthService::Driver::freshNonce() {
  std::string nonce(kConnectionNonceBytes, '\0');
  if (!crypto::randomBytes(nonce.data(), nonce.size()).isOk()) std::abort();  // no entropy
  return nonce;
}

// "127.0.0.1:4242" or "[::1]:4242" -> address.
bool HealthService::Driver::parseKey(const ProcessKey& key, SockAddr* addr) {
  size_t colon = key.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = key.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  int port = std::atoi(key.c_str() + colon + 1);
  if (port <= 0 || port > 65535) return false;
  return net::numericSockAddr(host, static_cast<uint16_t>(port), addr).isOk();
}

HealthService::Driver::Driver(ProcessKey self) : protocol(self, localHost(), getpid(), this) {
  protocol.requireAuthentication();
}

void HealthService::Driver::send(const ProcessKey& to, const HealthMessage& message) {
  if (faultDropAll()) return;
  if (message.type() == HealthType::kFailed) {
    // On a connection of its own that closes once sent: it goes to every member, most
    // of which this process keeps no connection to.
    if (Conn* c = open(to, /*monitoring=*/false)) queue(*c, message);
    return;
  }
  if (message.type() == HealthType::kLeave) {
    // On every connection to the peer: whichever one it reads first, the leave comes
    // before the close that follows our exit, so no close is taken for a crash. And
    // on one we opened: a connection the peer opened names it only by its unsealed
    // hello, which anyone can claim.
    bool ours = false;
    for (auto& c : conns) {
      if (c->key == to && c->fd.valid()) {
        queue(*c, message);
        ours = ours || !c->accepted;
      }
    }
    if (!ours) {
      if (Conn* c = open(to, /*monitoring=*/false)) queue(*c, message);
    }
    return;
  }
  if (!message.auth.key) return;  // the protocol found no key for it: not sent
  if (isProbe(message)) {
    queueProbe(to, message);
    return;
  }
  // Agreement messages keep their order on our connection to the peer.
  Conn* c = find(to);
  if (c == nullptr) c = open(to, /*monitoring=*/false);
  if (c != nullptr) queue(*c, message);
}

void HealthService::Driver::monitor(const ProcessKey& peer) {
  for (auto& c : conns) {
    if (c->key == peer && c->monitoring && c->fd.valid()) return;
  }
  open(peer, /*monitoring=*/true);
}

void HealthService::Driver::unmonitor(const ProcessKey& peer) {
  for (auto& c : conns) {
    if (c->key == peer && c->monitoring) {
      c->monitoring = false;
      c->closeWhenFlushed = true;
    }
  }
}

// Only connections we opened: one the peer opened may be a notice carrier it is
// closing right now, and whatever we write into it would be lost. Our monitoring
// connection first, else a carrier of ours that is still open.
HealthService::Driver::Conn* HealthService::Driver::find(const ProcessKey& key) {
  for (auto& c : conns) {
    if (c->key == key && c->fd.valid() && c->monitoring && !c->accepted) return c.get();
  }
  for (auto& c : conns) {
    if (c->key == key && c->fd.valid() && !c->accepted) return c.get();
  }
  return nullptr;
}

HealthService::Driver::Conn* HealthService::Driver::open(const ProcessKey& key, bool monitoring,
                                                         bool verifying) {
  SockAddr addr;
  if (!parseKey(key, &addr)) {
    FTCCL_LOG(Error, Health, "cannot parse the health address '{}'", key);
    return nullptr;
  }
  int fd = socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return nullptr;
  auto c = newConn(fd);
  c->key = key;
  c->monitoring = monitoring;
  c->closeWhenFlushed = !monitoring;
  c->verifying = verifying;
  c->out = helloFrame(*c);
  int rc = connect(fd, addr.sa(), addr.length);
  int err = rc != 0 ? errno : 0;
  bool failed = rc != 0 && err != EINPROGRESS;
  c->connecting = rc != 0 && !failed;
  c->established = rc == 0;
  conns.push_back(std::move(c));
  Conn* added = conns.back().get();
  if (failed) connectFailed(*added, err);
  return added;
}

// Refused: nobody listens there, the process is gone. Any other error (a reset or an
// unreachable route while a network namespace's link comes up) is not proof of a
// crash on a first connect: it is tried again once, as a closed connection is (chaos
// seed 8668: a healthy rank was expelled during init by a first connect that failed).
void HealthService::Driver::connectFailed(Conn& c, int err) {
  if (err == ECONNREFUSED || c.verifying) {
    lost(c, err == ECONNREFUSED ? "was refused" : "failed");
    return;
  }
  FTCCL_LOG(Info, Health, "health connection to {} failed to open ({}): trying again", c.key,
            std::strerror(err));
  c.established = true;  // as if it had opened and closed: verifyLosses reopens it
  lost(c);
}

std::unique_ptr<HealthService::Driver::Conn> HealthService::Driver::newConn(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  auto c = std::make_unique<Conn>();
  c->fd.reset(fd);
  c->openedAt = HealthClock::now();
  return c;
}

std::vector<uint8_t> HealthService::Driver::helloFrame(const Conn& c) {
  HealthHello hello;
  hello.senderKey = protocol.self();
  hello.host = localHost();
  hello.pid = getpid();
  hello.nonce = c.myNonce;
  return encodeHealthMessage(hello);
}

// Sealed for the peer's nonce, so it waits for the peer's hello.
void HealthService::Driver::queue(Conn& c, const HealthMessage& m) {
  if (!c.helloHeard) {
    c.waiting.push_back(m);
    return;
  }
  const size_t start = c.out.size();
  std::vector<uint8_t> frame = encodeHealthMessage(m);
  c.out.insert(c.out.end(), frame.begin(), frame.end());
  SealContext context;
  context.sender = protocol.self();
  context.receiver = c.key;
  context.senderNonce = c.myNonce;
  context.receiverNonce = c.peerNonce;
  context.counter = c.sent++;
  appendSeal(&c.out, start, m.auth, context);
  if (!c.connecting && !flush(c)) lost(c);
}

bool HealthService::Driver::flush(Conn& c) {
  while (!c.out.empty()) {
    ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c.out.erase(c.out.begin(), c.out.begin() + n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      return true;
    } else {
      return false;
    }
  }
  flushed.notify_all();
  return true;
}

// The connection broke; the protocol hears of it after the current event, not inside
// one of its own calls. An established monitoring connection that closes is not yet
// proof of a crash: it is reopened first (verifyLosses), and a refusal (nobody listens:
// the process is gone), no answer in kVerifyLimit, or a close within it (a dying
// process's listener may still accept) counts. A live peer whose
// connection closed for a reason of its own (seen in chaos runs over TCP between
// network namespaces, before any fault: both monitoring connections of one healthy
// process closed within 3 ms) is thus not expelled.
void HealthService::Driver::lost(Conn& c, const char* how) {
  c.fd.reset();
  flushed.notify_all();
  if (!c.monitoring) return;
  if (c.established && !c.verifying) {
    toVerify.push_back(c.key);
    return;
  }
  if (c.verifying) {
    FTCCL_LOG(Info, Health,
              "health connection to {} closed, and the reconnect {}: taken for "
              "a crash",
              c.key, how);
  }
  lostKeys.push_back(c.key);
}

void HealthService::Driver::verifyLosses(HealthTime now) {
  std::vector<ProcessKey> keys;
  keys.swap(toVerify);
  for (const ProcessKey& key : keys) {
    bool stillMonitored = false;
    for (auto& c : conns) stillMonitored = stillMonitored || (c->key == key && c->monitoring);
    if (!stillMonitored) continue;  // unmonitored meanwhile
    FTCCL_LOG(Debug, Health,
              "health connection to {} closed: reconnecting to tell a crash "
              "from a closed connection",
              key);
    if (Conn* again = open(key, /*monitoring=*/true, /*verifying=*/true)) again->openedAt = now;
  }
  for (auto& c : conns) {
    if (!c->verifying || !c->fd.valid() || now - c->openedAt <= kVerifyLimit) continue;
    if (c->connecting) {
      lost(*c, "got no answer in 100 ms");  // the host is gone too
      continue;
    }
    c->verifying = false;
    FTCCL_LOG(Info, Health,
              "health connection to {} closed, but it accepted a new one and "
              "kept it: not taken for a crash",
              c->key);
  }
}

void HealthService::Driver::reportLosses(HealthTime now) {
  verifyLosses(now);
  while (!lostKeys.empty()) {
    ProcessKey key = lostKeys.back();
    lostKeys.pop_back();
    protocol.onConnectionLost(key, now);
  }
}

void HealthService::Driver::wakeUp() {
  char byte = 1;
  ssize_t ignored = write(wake[1], &byte, 1);
  (void)ignored;
}

}  // namespace ftccl
