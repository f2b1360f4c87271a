// HealthService::Driver, admission: accepting connections, and bounds on what those that
// proved no key may make this process hold (descriptors, bytes, time); closed
// connections are reaped.
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "health/health_service_driver.h"
#include "util/log.h"

namespace ftccl {

using net::SockAddr;

size_t HealthService::Driver::unprovenAccepted() const {
  size_t n = 0;
  for (const auto& c : conns) n += c->fd.valid() && c->accepted && !c->proven;
  return n;
}

// Closes the oldest accepted connection that proved no key and was accepted at least
// `grace` ago (false: there is none).
bool HealthService::Driver::evictOldestUnproven(HealthTime now, std::chrono::milliseconds grace) {
  for (auto& c : conns) {  // in accept order
    if (c->fd.valid() && c->accepted && !c->proven && now - c->openedAt >= grace) {
      c->fd.reset();
      ++evicted;
      return true;
    }
  }
  return false;
}

// While the unproven connections hold more than kMaxUnprovenBytes, the one holding
// most is closed.
void HealthService::Driver::boundUnprovenBytes() {
  for (;;) {
    size_t held = 0;
    Conn* largest = nullptr;
    for (auto& c : conns) {
      if (!c->fd.valid() || c->proven) continue;
      held += c->in.size();
      if (largest == nullptr || c->in.size() > largest->in.size()) largest = c.get();
    }
    if (held <= kMaxUnprovenBytes || largest == nullptr) return;
    largest->fd.reset();
    ++evicted;
  }
}

void HealthService::Driver::logFlood(HealthTime now) {
  if (evicted == 0 && acceptFailures == 0) return;
  if (now - floodLoggedAt < kFloodLogEvery && floodLoggedAt != HealthTime{}) return;
  floodLoggedAt = now;
  FTCCL_LOG(Warn, Health,
            "health listener {}: closed {} connection(s) that proved no key of ours (over "
            "{} at once, {} MiB held, or none within {} s), and accept failed {} time(s){}{}: "
            "strangers flooding this port?",
            protocol.self(), evicted, kMaxUnproven, kMaxUnprovenBytes >> 20,
            std::chrono::duration_cast<std::chrono::seconds>(kProofLimit).count(), acceptFailures,
            acceptFailures ? " (last: " : "",
            acceptFailures ? std::string(std::strerror(lastAcceptErrno)) + ")" : "");
  evicted = 0;
  acceptFailures = 0;
}

void HealthService::Driver::acceptAll(HealthTime now) {
  size_t unproven = unprovenAccepted();
  for (int accepted = 0; accepted < kAcceptsPerWake; ++accepted) {
    int fd = accept4(listenFd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      if (err == EINTR || err == ECONNABORTED) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        acceptPause = std::chrono::milliseconds(0);
        return;
      }
      // Out of descriptors or memory: make room from the strangers and pause, not spin.
      ++acceptFailures;
      lastAcceptErrno = err;
      acceptPause = std::clamp(acceptPause * 2, std::chrono::milliseconds(kAcceptPauseMin),
                               std::chrono::milliseconds(kAcceptPauseMax));
      acceptPausedUntil = now + acceptPause;
      evictOldestUnproven(now, std::chrono::milliseconds(0));
      logFlood(now);
      return;
    }
    auto c = newConn(fd);
    c->accepted = true;
    c->established = true;
    c->out = helloFrame(*c);  // the peer seals what it sends for our nonce
    Conn& added = *c;
    conns.push_back(std::move(c));
    if (!flush(added)) lost(added);
    if (++unproven > kMaxUnproven && evictOldestUnproven(now, kProofGrace)) --unproven;
  }
}

void HealthService::Driver::reap(HealthTime now) {
  for (auto& c : conns) {
    if (c->fd.valid() && c->accepted && !c->proven && now - c->openedAt > kProofLimit) {
      c->fd.reset();
      ++evicted;
      continue;
    }
    if (c->fd.valid() && !c->accepted && !c->helloHeard && !c->connecting &&
        now - c->openedAt > kHelloLimit) {
      FTCCL_LOG(Info, Health, "health connection {} ({}): no hello in {} s: closed",
                c->key.empty() ? "from an unknown peer" : "to " + c->key, peerAddress(*c),
                std::chrono::duration_cast<std::chrono::seconds>(kHelloLimit).count());
      lost(*c);
    }
  }
  logFlood(now);
  conns.erase(std::remove_if(conns.begin(), conns.end(),
                             [](const std::unique_ptr<Conn>& c) {
                               return !c->fd.valid() || (c->closeWhenFlushed && !c->connecting &&
                                                         c->out.empty() && c->waiting.empty());
                             }),
              conns.end());
}

std::string HealthService::Driver::peerAddress(const Conn& c) {
  SockAddr peer;
  peer.length = sizeof(peer.storage);
  if (!c.fd.valid() || getpeername(c.fd.get(), peer.sa(), &peer.length) != 0) return "?";
  return peer.toString();
}

}  // namespace ftccl
