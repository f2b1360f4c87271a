#include "health/health_service.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>

#include "bootstrap/socket.h"
#include "health/health_messages.h"
#include "util/env.h"
#include "util/fault_injection.h"
#include "util/log.h"

namespace ftccl {
namespace {

using bootstrap::Fd;
using bootstrap::SockAddr;

int64_t steadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             HealthClock::now().time_since_epoch())
      .count();
}

std::string localHost() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return host;
}

}  // namespace

struct HealthService::Impl {
  struct Conn {
    Fd fd;
    ProcessKey key;           // known at once when outgoing, after kHello when incoming
    bool outgoing = false;    // we opened it to monitor `key`
    bool connecting = false;  // non-blocking connect in flight
    bool closeWhenFlushed = false;  // a transient connection that carried notices
    std::vector<uint8_t> in, out;
  };
  struct Registration {
    HealthRegistration info;
    std::set<int> reported;  // ranks already reported failed
    std::set<int> left;      // ranks that announced an orderly leave
  };
  struct RoundTrip {
    double lastMs = 0, maxMs = 0;
  };

  std::mutex mutex;  // everything below; the health thread holds it except in poll()
  std::condition_variable flushed;
  bool stopping = false;
  Fd listenFd;
  int wake[2] = {-1, -1};
  std::vector<std::unique_ptr<Conn>> conns;
  std::map<RegistrationId, Registration> registrations;
  RegistrationId nextId = 1;
  FailureDetector detector{std::chrono::milliseconds(1000)};
  std::set<ProcessKey> watched;
  bool watchDirty = false;
  std::chrono::milliseconds probeInterval{10};
  HealthTime nextProbe;
  uint64_t heartbeatSeq = 0;
  std::map<ProcessKey, RoundTrip> roundTrips;
  ProcessKey selfKey;
  std::string host = localHost();

  void wakeUp() {
    char byte = 1;
    ssize_t ignored = write(wake[1], &byte, 1);
    (void)ignored;
  }

  // --- connections -------------------------------------------------------------

  void queue(Conn& c, const HealthMessage& m) {
    if (faultDropAll()) return;  // a dropped process says nothing
    std::vector<uint8_t> frame = encodeHealthMessage(m);
    c.out.insert(c.out.end(), frame.begin(), frame.end());
    if (!c.connecting) flush(c);
  }

  HealthMessage hello() const {
    HealthMessage m;
    m.type = HealthType::kHello;
    m.senderKey = selfKey;
    m.host = host;
    m.pid = getpid();
    return m;
  }

  // Returns false when the connection broke.
  bool flush(Conn& c) {
    while (!c.out.empty()) {
      ssize_t n = send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        c.out.erase(c.out.begin(), c.out.begin() + n);
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return true;
      } else {
        return false;
      }
    }
    return true;
  }

  Conn* openTo(const ProcessKey& key, bool monitor) {
    size_t colon = key.rfind(':');
    SockAddr addr;
    std::string hostPart = key.substr(0, colon);
    if (!hostPart.empty() && hostPart.front() == '[') hostPart = hostPart.substr(1, hostPart.size() - 2);
    if (colon == std::string::npos ||
        !bootstrap::numericSockAddr(hostPart, static_cast<uint16_t>(std::atoi(key.c_str() + colon + 1)), &addr)
             .isOk()) {
      FTCCL_LOG(Error, Health, "cannot parse the health address '{}'", key);
      return nullptr;
    }
    int fd = socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return nullptr;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto c = std::make_unique<Conn>();
    c->fd.reset(fd);
    c->key = key;
    c->outgoing = monitor;
    c->closeWhenFlushed = !monitor;  // a notice carrier: gone once it has said its piece
    std::vector<uint8_t> frame = encodeHealthMessage(hello());
    c->out.insert(c->out.end(), frame.begin(), frame.end());
    int rc = connect(fd, addr.sa(), addr.length);
    bool refused = rc != 0 && errno != EINPROGRESS;
    c->connecting = rc != 0 && !refused;
    conns.push_back(std::move(c));
    Conn* added = conns.back().get();
    if (refused) lost(*added, HealthClock::now());  // nobody listens: the process is gone
    return added;
  }

  Conn* connTo(const ProcessKey& key) {
    for (auto& c : conns) {
      if (c->key == key && c->fd.valid() && !c->closeWhenFlushed) return c.get();
    }
    return nullptr;
  }

  // The connection broke: a crash if we were monitoring that process.
  void lost(Conn& c, HealthTime now) {
    c.fd.reset();
    if (!c.outgoing || !watched.count(c.key)) return;
    Suspicion s;
    if (detector.connectionLost(c.key, now, &s)) suspect(s);
  }

  // --- what we watch -----------------------------------------------------------

  void syncWatched(HealthTime now) {
    if (!watchDirty) return;
    watchDirty = false;
    std::set<ProcessKey> want;
    std::chrono::milliseconds timeout(3600000), probe(60000);
    for (auto& [id, r] : registrations) {
      timeout = std::min(timeout, std::chrono::milliseconds(r.info.failureTimeoutMs));
      probe = std::min(probe, std::chrono::milliseconds(r.info.probeIntervalMs));
      for (int rank : r.info.monitored) {
        if (r.left.count(rank) || r.reported.count(rank)) continue;
        const ProcessKey& key = r.info.members[rank].key;
        if (key != selfKey) want.insert(key);
      }
    }
    detector.setFailureTimeout(timeout);
    if (probe != probeInterval) {
      probeInterval = probe;
      nextProbe = now;
    }
    for (const ProcessKey& key : watched) {
      if (want.count(key)) continue;
      detector.unwatch(key);
      for (auto& c : conns) {
        if (c->outgoing && c->key == key) c->closeWhenFlushed = true;
      }
    }
    for (const ProcessKey& key : want) {
      if (watched.count(key)) continue;
      detector.watch(key, now);
      bool have = false;
      for (auto& c : conns) have = have || (c->outgoing && c->key == key && c->fd.valid());
      watched.insert(key);
      if (!have) openTo(key, /*monitor=*/true);
    }
    watched = want;
  }

  // --- failures ------------------------------------------------------------------

  // This process detected `s`: revoke every communicator containing it, tell the others.
  void suspect(const Suspicion& s) {
    for (auto& [id, r] : registrations) {
      for (const MemberInfo& m : r.info.members) {
        if (m.key != s.peer || r.reported.count(m.rank) || r.left.count(m.rank)) continue;
        FailureReport report{m.rank, m.host, m.pid, s.cause, s.silentMs, r.info.myRank, true};
        deliver(r, report);
        HealthMessage notice;
        notice.type = HealthType::kFailed;
        notice.commKey = r.info.commKey;
        notice.epoch = r.info.epoch;
        notice.rank = m.rank;
        notice.failedKey = m.key;
        notice.cause = static_cast<uint8_t>(s.cause);
        notice.afterMs = s.silentMs;
        notice.reporterRank = r.info.myRank;
        for (const MemberInfo& other : r.info.members) {
          if (other.key == selfKey || other.key == s.peer || r.left.count(other.rank)) continue;
          Conn* c = connTo(other.key);
          if (c == nullptr) c = openTo(other.key, /*monitor=*/false);
          if (c != nullptr) queue(*c, notice);
        }
      }
    }
    watchDirty = true;
  }

  void deliver(Registration& r, const FailureReport& report) {
    if (!r.reported.insert(report.rank).second) return;
    FTCCL_LOG(Error, Health,
              "rank {}: rank {} (host {}, pid {}) failed: {} {} {:.1f} ms after its last sign of life ({})",
              r.info.myRank, report.rank, report.host, report.pid,
              report.direct ? "detected here through" : "reported by rank " +
                                                            std::to_string(report.detectedBy) +
                                                            " who saw",
              detectionCauseName(report.cause), report.afterMs,
              report.direct ? "direct" : "notice");
    if (r.info.listener) r.info.listener->onMemberFailed(report);
  }

  void onNotice(const HealthMessage& m) {
    for (auto& [id, r] : registrations) {
      // Every communicator containing the failed process is revoked, not only m.commKey.
      bool sameComm = r.info.commKey == m.commKey && r.info.epoch == m.epoch;
      for (const MemberInfo& member : r.info.members) {
        bool match = member.key == m.failedKey && (!sameComm || member.rank == m.rank);
        if (!match) continue;
        FailureReport report{member.rank, member.host, member.pid,
                             static_cast<DetectionCause>(m.cause), m.afterMs, m.reporterRank,
                             false};
        deliver(r, report);
      }
    }
    watchDirty = true;
  }

  void onLeave(const HealthMessage& m) {
    for (auto& [id, r] : registrations) {
      if (r.info.commKey == m.commKey && r.info.epoch == m.epoch) r.left.insert(m.rank);
    }
    watchDirty = true;
  }

  // --- the loop ----------------------------------------------------------------

  void handle(Conn& c, const HealthMessage& m, HealthTime now) {
    if (m.type == HealthType::kHello) {
      if (c.key.empty()) c.key = m.senderKey;
      return;
    }
    if (c.key.empty()) return;  // speak only after saying who you are
    detector.heard(c.key, now);
    switch (m.type) {
      case HealthType::kHeartbeat: {
        HealthMessage ack;
        ack.type = HealthType::kAck;
        ack.seq = m.seq;
        ack.sentNs = m.sentNs;
        queue(c, ack);
        break;
      }
      case HealthType::kAck: {
        RoundTrip& rt = roundTrips[c.key];
        rt.lastMs = (steadyNs() - m.sentNs) / 1e6;
        rt.maxMs = std::max(rt.maxMs, rt.lastMs);
        break;
      }
      case HealthType::kFailed: onNotice(m); break;
      case HealthType::kLeave: onLeave(m); break;
      default: break;
    }
  }

  void readFrom(Conn& c, HealthTime now) {
    uint8_t buffer[4096];
    for (;;) {
      ssize_t n = recv(c.fd.get(), buffer, sizeof(buffer), MSG_DONTWAIT);
      if (n > 0) {
        if (faultDropAll()) continue;  // heard nothing
        c.in.insert(c.in.end(), buffer, buffer + n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n < 0 && errno == EINTR) continue;
      lost(c, now);  // closed or failed
      return;
    }
    size_t at = 0;
    for (;;) {
      HealthMessage m;
      size_t used = 0;
      int got = decodeHealthMessage(c.in.data() + at, c.in.size() - at, &m, &used);
      if (got == 0) break;
      if (got < 0) {
        FTCCL_LOG(Warn, Health, "corrupt health frame from '{}': connection dropped", c.key);
        lost(c, now);
        return;
      }
      at += used;
      handle(c, m, now);
      if (!c.fd.valid()) return;
    }
    c.in.erase(c.in.begin(), c.in.begin() + at);
  }

  void acceptAll() {
    for (;;) {
      int fd = accept4(listenFd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      auto c = std::make_unique<Conn>();
      c->fd.reset(fd);
      conns.push_back(std::move(c));
    }
  }

  void probe(HealthTime now) {
    if (now < nextProbe) return;
    nextProbe = now + probeInterval;
    HealthMessage hb;
    hb.type = HealthType::kHeartbeat;
    hb.seq = ++heartbeatSeq;
    hb.sentNs = steadyNs();
    for (auto& c : conns) {
      if (c->outgoing && c->fd.valid() && !c->connecting) queue(*c, hb);
    }
  }

  void reap() {
    conns.erase(std::remove_if(conns.begin(), conns.end(),
                               [](const std::unique_ptr<Conn>& c) {
                                 return !c->fd.valid() ||
                                        (c->closeWhenFlushed && !c->connecting && c->out.empty());
                               }),
                conns.end());
    flushed.notify_all();
  }
};

Status HealthService::acquire(std::shared_ptr<HealthService>* out) {
  static std::mutex mutex;
  static std::weak_ptr<HealthService> current;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto existing = current.lock()) {
    *out = existing;
    return Status::ok();
  }
  std::shared_ptr<HealthService> service(new HealthService());
  FTCCL_CHECK(service->start());
  current = service;
  *out = service;
  return Status::ok();
}

Status HealthService::start() {
  installFaultHooks();
  impl_ = std::make_unique<Impl>();
  SockAddr where, bound;
  std::string iface;
  FTCCL_CHECK(bootstrap::chooseListenAddress(&where, &iface));
  where.setPort(0);
  FTCCL_CHECK(bootstrap::listenOn(where, /*reuseAddr=*/false, &impl_->listenFd, &bound));
  if (pipe2(impl_->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    return systemError(std::string("pipe2: ") + strerror(errno));
  }
  selfKey_ = bound.toString();
  impl_->selfKey = selfKey_;
  impl_->nextProbe = HealthClock::now();
  thread_ = std::thread([this] { run(); });
  FTCCL_LOG(Info, Health, "health service of pid {} listening on {} ({})", getpid(), selfKey_,
            iface);
  return Status::ok();
}

HealthService::~HealthService() {
  if (impl_) {
    {
      std::lock_guard<std::mutex> lock(impl_->mutex);
      impl_->stopping = true;
    }
    impl_->wakeUp();
    if (thread_.joinable()) thread_.join();
    close(impl_->wake[0]);
    close(impl_->wake[1]);
  }
}

HealthService::RegistrationId HealthService::add(HealthRegistration registration) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  RegistrationId id = impl_->nextId++;
  impl_->registrations[id].info = std::move(registration);
  impl_->watchDirty = true;
  impl_->wakeUp();
  return id;
}

void HealthService::remove(RegistrationId id, bool orderly) {
  std::unique_lock<std::mutex> lock(impl_->mutex);
  auto it = impl_->registrations.find(id);
  if (it == impl_->registrations.end()) return;
  if (orderly) {
    const HealthRegistration& r = it->second.info;
    HealthMessage leave;
    leave.type = HealthType::kLeave;
    leave.commKey = r.commKey;
    leave.epoch = r.epoch;
    leave.rank = r.myRank;
    std::set<ProcessKey> members;
    for (const MemberInfo& m : r.members) members.insert(m.key);
    for (auto& c : impl_->conns) {
      if (c->fd.valid() && members.count(c->key)) impl_->queue(*c, leave);
    }
    // Bounded: a dead peer's full socket must not stall destroy.
    impl_->flushed.wait_for(lock, std::chrono::milliseconds(500), [&] {
      for (auto& c : impl_->conns) {
        if (c->fd.valid() && members.count(c->key) && !c->out.empty()) return false;
      }
      return true;
    });
  }
  impl_->registrations.erase(id);
  impl_->watchDirty = true;
  impl_->wakeUp();
}

bool HealthService::roundTrip(const ProcessKey& peer, double* lastMs, double* maxMs) const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  auto it = impl_->roundTrips.find(peer);
  if (it == impl_->roundTrips.end()) return false;
  *lastMs = it->second.lastMs;
  *maxMs = it->second.maxMs;
  return true;
}

void HealthService::run() {
  Impl& s = *impl_;
  std::vector<pollfd> fds;
  std::vector<Impl::Conn*> polled;
  std::unique_lock<std::mutex> lock(s.mutex);
  while (!s.stopping) {
    HealthTime now = HealthClock::now();
    s.syncWatched(now);
    fds.assign({{s.wake[0], POLLIN, 0}, {s.listenFd.get(), POLLIN, 0}});
    polled.clear();
    for (auto& c : s.conns) {
      if (!c->fd.valid()) continue;
      short events = POLLIN;
      if (c->connecting || !c->out.empty()) events |= POLLOUT;
      fds.push_back({c->fd.get(), events, 0});
      polled.push_back(c.get());
    }
    int timeoutMs = static_cast<int>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(s.nextProbe - now).count()));
    lock.unlock();
    int ready = poll(fds.data(), fds.size(), timeoutMs);
    lock.lock();
    if (s.stopping) break;
    now = HealthClock::now();
    if (ready > 0) {
      if (fds[0].revents) {
        char drain[64];
        while (read(s.wake[0], drain, sizeof(drain)) > 0) {
        }
      }
      if (fds[1].revents & POLLIN) s.acceptAll();
      for (size_t i = 0; i < polled.size(); ++i) {
        Impl::Conn& c = *polled[i];
        short ev = fds[i + 2].revents;
        if (!ev || !c.fd.valid()) continue;
        if (c.connecting && (ev & (POLLOUT | POLLERR | POLLHUP))) {
          int err = 0;
          socklen_t len = sizeof(err);
          getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
          if (err != 0) {
            s.lost(c, now);
            continue;
          }
          c.connecting = false;
        }
        if (ev & (POLLIN | POLLHUP | POLLERR)) s.readFrom(c, now);
        if (c.fd.valid() && !c.connecting && !s.flush(c)) s.lost(c, now);
      }
    }
    s.probe(now);
    for (const Suspicion& suspicion : s.detector.tick(now)) s.suspect(suspicion);
    s.reap();
  }
  s.conns.clear();
}

}  // namespace ftccl
