// HealthService (health_service.h): starting and stopping the process's service, its
// API (each call under the driver's mutex), and the health thread's poll loop. The
// socket side, HealthService::Driver, is declared in health_service_driver.h.
#include "health/health_service.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

#include "health/health_service_driver.h"
#include "util/crypto.h"
#include "util/fault_injection.h"
#include "util/log.h"

namespace ftccl {
namespace {

using net::Fd;
using net::SockAddr;

// The kernel stamps what arrives (SO_TIMESTAMPNS), so a round trip can leave out how
// long heartbeats and acks sat unread until a tick: without it the measured round trip
// was the tick (about 11 ms on a link of 50 us), and a slower link could not be seen.
// (waitedSince, health_service_probes.cc, reads the stamps.)
void stampArrivals(int fd) {
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
}

}  // namespace

Status HealthService::create(std::shared_ptr<HealthService>* out, const std::string& rootHost,
                             uint16_t rootPort) {
  std::shared_ptr<HealthService> service(new HealthService());
  FTCCL_CHECK(service->start(rootHost, rootPort));
  *out = std::move(service);
  return Status::ok();
}

void HealthService::injectCrash() {
  {
    std::lock_guard<std::mutex> lock(driver_->mutex);
    driver_->crashed = true;
  }
  driver_->wakeUp();
}

Status HealthService::acquire(std::shared_ptr<HealthService>* out, const std::string& rootHost,
                              uint16_t rootPort) {
  static std::mutex mutex;
  static std::weak_ptr<HealthService> current;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto existing = current.lock()) {
    *out = existing;
    return Status::ok();
  }
  std::shared_ptr<HealthService> service(new HealthService());
  FTCCL_CHECK(service->start(rootHost, rootPort));
  current = service;
  *out = service;
  return Status::ok();
}

// The TCP listener on a free port, and the UDP probe socket on the same address and
// port number (so a process's key names both); another port if that one is taken for UDP.
static Status listenForHealth(Fd* listenFd, Fd* probeFd, SockAddr* bound, std::string* iface,
                              const SockAddr* toward) {
  SockAddr where;
  FTCCL_CHECK(net::chooseListenAddress(&where, iface, toward));
  where.setPort(0);
  for (int attempt = 0;; ++attempt) {
    FTCCL_CHECK(net::listenOn(where, /*reuseAddr=*/false, listenFd, bound));
    int fd = socket(bound->family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return systemError(std::string("health probe socket: ") + strerror(errno));
    probeFd->reset(fd);
    if (bind(fd, bound->sa(), bound->length) == 0) break;
    if (errno != EADDRINUSE || attempt == 16) {
      return systemError("cannot bind the health probe socket to " + bound->toString() + ": " +
                         strerror(errno));
    }
  }
  stampArrivals(probeFd->get());
  setsockopt(probeFd->get(), SOL_SOCKET, SO_RCVBUF, &kProbeReceiveBuffer,
             sizeof(kProbeReceiveBuffer));
  return Status::ok();
}

// Every frame is sealed: without working HMAC every peer would be declared failed, so
// a broken libcrypto is an error at init, said plainly.
static Status checkCrypto() {
  const crypto::Key zero{};
  crypto::MacKey key(zero);
  crypto::Tag a = key.tag({{"ftccl", 5}});
  crypto::Tag b = key.tag({{"ftccl", 5}});
  if (!key.valid() || a == crypto::Tag{} || a != b || !key.verify({{"ftccl", 5}}, a.data())) {
    return systemError(
        "OpenSSL's HMAC-SHA-256 does not work here: the health channel cannot "
        "seal its frames (is libcrypto 3 installed and its default provider "
        "available?)");
  }
  return Status::ok();
}

Status HealthService::start(const std::string& rootHost, uint16_t rootPort) {
  installFaultHooks();
  FTCCL_CHECK(checkCrypto());
  SockAddr bound, root;
  const bool rootKnown =
      !rootHost.empty() && net::numericSockAddr(rootHost, rootPort, &root).isOk();
  std::string iface;
  Fd listenFd, probeFd;
  FTCCL_CHECK(listenForHealth(&listenFd, &probeFd, &bound, &iface, rootKnown ? &root : nullptr));
  selfKey_ = bound.toString();
  driver_ = std::make_unique<Driver>(selfKey_);
  driver_->listenFd = std::move(listenFd);
  driver_->probeFd = std::move(probeFd);
  driver_->probeFamily = bound.family();
  HealthHello hello;
  hello.senderKey = selfKey_;
  hello.pid = getpid();  // the host travels in the TCP hello only: probes stay small
  driver_->probeHello = encodeHealthMessage(hello);
  if (pipe2(driver_->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    return systemError(std::string("pipe2: ") + strerror(errno));
  }
  thread_ = std::thread([this] { run(); });
  FTCCL_LOG(Info, Health, "health service of pid {} listening on {} ({})", getpid(), selfKey_,
            iface);
  return Status::ok();
}

HealthService::~HealthService() {
  if (!driver_) return;
  {
    std::lock_guard<std::mutex> lock(driver_->mutex);
    driver_->stopping = true;
  }
  driver_->wakeUp();
  if (thread_.joinable()) thread_.join();
  if (driver_->wake[0] >= 0) close(driver_->wake[0]);
  if (driver_->wake[1] >= 0) close(driver_->wake[1]);
}

HealthService::RegistrationId HealthService::add(HealthRegistration registration) {
  std::lock_guard<std::mutex> lock(driver_->mutex);
  RegistrationId id = driver_->protocol.add(std::move(registration), HealthClock::now());
  driver_->wakeUp();
  return id;
}

void HealthService::allowJoin(RegistrationId id, std::vector<uint8_t> secret) {
  std::lock_guard<std::mutex> lock(driver_->mutex);
  driver_->protocol.allowJoin(id, std::move(secret));
}

void HealthService::sendRecovery(const ProcessKey& to, uint64_t commKey,
                                 const RecoveryMessage& message) {
  std::lock_guard<std::mutex> lock(driver_->mutex);
  driver_->protocol.sendRecovery(to, commKey, message);
  driver_->wakeUp();
}

void HealthService::requestProgress(RegistrationId id) {
  std::lock_guard<std::mutex> lock(driver_->mutex);
  driver_->protocol.requestProgress(id);
  driver_->wakeUp();
}

std::vector<MemberProgress> HealthService::progressOf(RegistrationId id) {
  std::lock_guard<std::mutex> lock(driver_->mutex);
  return driver_->protocol.progressOf(id, HealthClock::now());
}

std::vector<PeerHealth> HealthService::peerHealth(RegistrationId id) {
  std::lock_guard<std::mutex> lock(driver_->mutex);
  return driver_->protocol.peerHealth(id);
}

HealthProtocol::AgreementView HealthService::agreementView(RegistrationId id) {
  std::lock_guard<std::mutex> lock(driver_->mutex);
  return driver_->protocol.agreementView(id);
}

void HealthService::remove(RegistrationId id, bool orderly, int flushWaitMs) {
  Driver& d = *driver_;
  std::unique_lock<std::mutex> lock(d.mutex);
  HealthTime now = HealthClock::now();
  if (orderly) {
    // Learn who is behind connections whose hello is still unread, so that the leave
    // goes on every connection of each member (the one it sees close first included).
    for (size_t i = 0; i < d.conns.size(); ++i) {
      Driver::Conn& c = *d.conns[i];
      if (c.key.empty() && c.fd.valid()) d.readFrom(c, now);
    }
  }
  d.protocol.remove(id, orderly, now);
  d.wakeUp();
  if (orderly) {
    // Bounded: a dead peer's full socket must not stall destroy. A connection still
    // being set up counts too: it may carry the only LEAVE a waiting spare gets from
    // this rank (spares hear only from the rank they monitor; over real links the
    // connect takes longer than this process takes to exit, and a spare then waited
    // forever).
    d.flushed.wait_for(lock, std::chrono::milliseconds(flushWaitMs), [&] {
      for (auto& c : d.conns) {
        if (c->fd.valid() && (!c->out.empty() || !c->waiting.empty())) return false;
      }
      return true;
    });
  }
}

void HealthService::run() {
  pthread_setname_np(pthread_self(), "ftccl-health");  // for top, /proc and debuggers
  // Heartbeats must not wait behind busy ranks on an oversubscribed host: ask for a
  // higher priority for this (nearly always sleeping) thread. Without the privilege
  // it stays at the default, which is also fine.
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), -10) != 0) {
    FTCCL_LOG(Debug, Health, "health thread keeps the default priority: {}", strerror(errno));
  }
  Driver& d = *driver_;
  std::vector<pollfd> fds;
  std::vector<Driver::Conn*> polled;
  std::unique_lock<std::mutex> lock(d.mutex);
  HealthTime nextTick = HealthClock::now();
  while (!d.stopping) {
    if (d.crashed) {  // as a process that died: its sockets close, its thread is gone
      d.conns.clear();
      d.listenFd = Fd();
      d.probeFd = Fd();
      return;
    }
    HealthTime now = HealthClock::now();
    d.protocol.setDropAll(faultDropAll());
    if (now >= nextTick) {
      d.drainProbes(now);
      d.warnIfNoProbes(now);
      nextTick = d.protocol.onTick(now);
    }
    d.reportLosses(now);
    d.reap(now);
    d.flushProbes();
    const bool acceptNow = now >= d.acceptPausedUntil;
    const bool probeFlood = now < d.probeFloodUntil;
    if (probeFlood && now - d.probesDrainedAt >= kFloodDrainEvery) d.drainProbes(now);
    fds.assign({{d.wake[0], POLLIN, 0}, {acceptNow ? d.listenFd.get() : -1, POLLIN, 0}});
    polled.clear();
    for (auto& c : d.conns) {
      short events = POLLIN;
      if (c->connecting || !c->out.empty()) events |= POLLOUT;
      fds.push_back({c->fd.get(), events, 0});
      polled.push_back(c.get());
    }
    constexpr size_t kFixedFds = 2;
    int timeoutMs = static_cast<int>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(nextTick - now).count() + 1));
    if (probeFlood) timeoutMs = std::min(timeoutMs, 1);
    lock.unlock();
    int ready = poll(fds.data(), fds.size(), timeoutMs);
    lock.lock();
    if (d.stopping || ready <= 0) continue;
    now = HealthClock::now();
    if (fds[0].revents) {
      char drain[64];
      while (read(d.wake[0], drain, sizeof(drain)) > 0) {
      }
      nextTick = now;  // a registration changed: the probe interval may have too
    }
    if (fds[1].revents & POLLIN) d.acceptAll(now);
    for (size_t i = 0; i < polled.size(); ++i) {
      Driver::Conn& c = *polled[i];
      short ev = fds[i + kFixedFds].revents;
      if (!ev || !c.fd.valid()) continue;
      if (c.connecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          d.connectFailed(c, err);
          continue;
        }
        if (!(ev & POLLOUT)) continue;
        c.connecting = false;
        c.established = true;
      }
      if (ev & (POLLIN | POLLHUP | POLLERR)) d.readFrom(c, now);
      if (c.fd.valid() && !d.flush(c)) d.lost(c);
      // Probes before the rest: a coordinator reading a burst of agreement frames
      // from thousands of connections still reads and sends its heartbeats on time,
      // or its members would take it for hung (issue 27, ftccl_sim's model too).
      if (HealthClock::now() >= nextTick) {
        now = HealthClock::now();
        d.drainProbes(now);
        nextTick = d.protocol.onTick(now);
        d.flushProbes();
      }
    }
    d.reportLosses(now);
  }
  d.conns.clear();
}

}  // namespace ftccl
