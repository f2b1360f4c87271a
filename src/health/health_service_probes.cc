// HealthService::Driver, probes: heartbeats and acks as UDP datagrams, sent together and
// read in batches at each tick (see kMaxProbeBytes in health_service_driver.h).
#include <errno.h>
#include <sys/socket.h>
#include <time.h>

#include <cstring>

#include "health/health_service_driver.h"
#include "util/fault_injection.h"
#include "util/log.h"

namespace ftccl {
namespace {

// How long before `tick` (the time the protocol is told it is) the data of this read
// arrived, from its kernel stamp; negative if it came after; 0 if there is no stamp.
int64_t waitedSince(const msghdr& header, HealthTime tick) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&header); c != nullptr;
       c = CMSG_NXTHDR(const_cast<msghdr*>(&header), c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS) continue;
    if (c->cmsg_len < CMSG_LEN(sizeof(timespec)) || (header.msg_flags & MSG_CTRUNC)) return 0;
    timespec stamp, real;
    std::memcpy(&stamp, CMSG_DATA(c), sizeof(stamp));
    clock_gettime(CLOCK_REALTIME, &real);  // the kernel stamps in real time
    HealthTime steady = HealthClock::now();
    int64_t age = (real.tv_sec - stamp.tv_sec) * 1000000000LL + (real.tv_nsec - stamp.tv_nsec);
    if (age < 0 || age > 60 * 1000000000LL) return 0;  // a clock step is no measurement
    return age - std::chrono::duration_cast<std::chrono::nanoseconds>(steady - tick).count();
  }
  return 0;
}

}  // namespace

using net::Fd;
using net::SockAddr;

// Queued during an event, sent together by flushProbes() before the thread sleeps.
void HealthService::Driver::queueProbe(const ProcessKey& to, const HealthMessage& message) {
  auto known = probeAddresses.find(to);
  if (known == probeAddresses.end()) {
    SockAddr addr;
    if (!parseKey(to, &addr)) return;
    known = probeAddresses.emplace(to, addr).first;
  }
  probesOut.push_back({known->second, encodeSealedProbe(probeHello, message, to)});
}

// Our bound socket for our address family; for a peer of another (an IPv6-only host
// among IPv4 ones) an unbound one of its family: the sender's key is in the datagram.
int HealthService::Driver::probeSocketFor(int family) {
  if (family == probeFamily) return probeFd.get();
  Fd& fd = probeFdByFamily[family];
  if (!fd.valid()) fd.reset(socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  return fd.get();
}

// Consecutive probes of one address family go out in one sendmmsg call.
void HealthService::Driver::flushProbes() {
  for (size_t at = 0; at < probesOut.size();) {
    int family = probesOut[at].to.family();
    mmsghdr batch[kProbeBatch];
    iovec chunks[kProbeBatch];
    size_t n = 0;
    for (; n < kProbeBatch && at + n < probesOut.size(); ++n) {
      OutgoingProbe& p = probesOut[at + n];
      if (p.to.family() != family) break;
      chunks[n] = {p.datagram.data(), p.datagram.size()};
      batch[n] = {};
      batch[n].msg_hdr.msg_name = p.to.sa();
      batch[n].msg_hdr.msg_namelen = p.to.length;
      batch[n].msg_hdr.msg_iov = &chunks[n];
      batch[n].msg_hdr.msg_iovlen = 1;
    }
    int fd = probeSocketFor(family);
    int sent = fd < 0 ? -1 : sendmmsg(fd, batch, static_cast<unsigned>(n), MSG_DONTWAIT);
    if (sent > 0) {
      at += static_cast<size_t>(sent);
    } else if (sent < 0 && errno == EINTR) {
      continue;
    } else if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      break;  // the send buffer is full: the rest are skipped, as if lost
    } else {
      ++at;  // this one cannot go (no route, no socket): the others still do
    }
  }
  probesOut.clear();
}

// At each tick: every probe that arrived since the last one, in batches.
void HealthService::Driver::drainProbes(HealthTime now) {
  probesDrainedAt = now;
  for (int batches = 0; batches < kProbeBatchesPerWake; ++batches) {
    mmsghdr batch[kProbeBatch];
    iovec chunks[kProbeBatch];
    alignas(cmsghdr) char control[kProbeBatch][CMSG_SPACE(sizeof(timespec))];
    for (int i = 0; i < kProbeBatch; ++i) {
      chunks[i] = {probeBuffers[i], kMaxProbeBytes};
      batch[i] = {};
      batch[i].msg_hdr.msg_iov = &chunks[i];
      batch[i].msg_hdr.msg_iovlen = 1;
      batch[i].msg_hdr.msg_control = control[i];
      batch[i].msg_hdr.msg_controllen = sizeof(control[i]);
    }
    int got = recvmmsg(probeFd.get(), batch, kProbeBatch, MSG_DONTWAIT, nullptr);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return;
    bool flood = got == kProbeBatch;
    for (int i = 0; i < got; ++i) {
      const bool taken = !(batch[i].msg_hdr.msg_flags & MSG_TRUNC) &&
                         onProbe(probeBuffers[i], batch[i].msg_len, batch[i].msg_hdr, now);
      flood = flood || !taken;
    }
    if (flood) probeFloodUntil = now + kProbeFloodWatch;
    if (got < kProbeBatch) return;
  }
}

// A heartbeat or an ack; any other datagram is dropped (false).
bool HealthService::Driver::onProbe(const uint8_t* data, size_t size, const msghdr& header,
                                    HealthTime now) {
  if (faultDropAll()) return true;
  std::string from;
  HealthMessage probe;
  const HealthKeys& keys = protocol.keys();
  if (!decodeSealedProbe(
          data, size, protocol.self(), &from, &probe,
          [&](uint64_t comm, uint32_t epoch) { return keys.epochKey(comm, epoch); })) {
    return false;  // not a probe of ours (a stranger's, a stale process's of an old key)
  }
  probe.waitedNs = waitedSince(header, now);
  if (!probesFrom.count(from)) {  // state only for the peers we monitor; looked up once
    for (const auto& c : conns) {
      if (c->monitoring && c->key == from) {
        probesFrom.insert(from);
        break;
      }
    }
  }
  protocol.onMessage(from, probe, now);
  return true;
}

// A monitored peer whose TCP connection is up but from which no probe ever came:
// most likely a firewall that passes TCP and drops UDP, and the peer will be declared
// failed by silence. Said once per peer, before that happens.
void HealthService::Driver::warnIfNoProbes(HealthTime now) {
  for (auto& c : conns) {
    if (!c->monitoring || c->connecting || !c->fd.valid() || probesFrom.count(c->key)) continue;
    if (now - c->openedAt < kNoProbeWarning || !noProbeWarned.insert(c->key).second) continue;
    FTCCL_LOG(Warn, Health,
              "no health probe (UDP) has come from {} in {} ms although its TCP connection "
              "is up: is UDP to that port filtered, or is the process hung?",
              c->key,
              std::chrono::duration_cast<std::chrono::milliseconds>(now - c->openedAt).count());
  }
}

}  // namespace ftccl
