#include "util/net/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "util/env.h"

namespace ftccl {
namespace net {

int msUntil(Deadline d) {
  auto left = d - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return ms > INT32_MAX ? INT32_MAX : static_cast<int>(ms);
}

Deadline deadlineAfterMs(int64_t ms) { return Clock::now() + std::chrono::milliseconds(ms); }

int64_t msSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

std::string errnoString(int err) {
  char buf[128];
  // GNU strerror_r returns a char* that may or may not point into buf.
  const char* text = strerror_r(err, buf, sizeof(buf));
  return text ? std::string(text) : std::string("errno ") + std::to_string(err);
}

void Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);  // never retried on EINTR: Linux always frees the descriptor
  fd_ = fd;
}

uint16_t SockAddr::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  }
  return 0;
}

void SockAddr::setPort(uint16_t port) {
  if (family() == AF_INET) reinterpret_cast<sockaddr_in*>(&storage)->sin_port = htons(port);
  if (family() == AF_INET6) reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port = htons(port);
}

std::string SockAddr::host() const {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, buf, sizeof(buf));
  } else if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, buf,
              sizeof(buf));
  } else {
    return "?";
  }
  return buf;
}

std::string SockAddr::toString() const {
  if (family() == AF_INET6) return "[" + host() + "]:" + std::to_string(port());
  return host() + ":" + std::to_string(port());
}

bool SockAddr::isLoopback() const {
  if (family() == AF_INET) {
    return (ntohl(reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr.s_addr) >> 24) == 127;
  }
  if (family() == AF_INET6) {
    return IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr);
  }
  return false;
}

Status numericSockAddr(const std::string& host, uint16_t port, SockAddr* out) {
  SockAddr addr;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr.storage);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    addr.length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    addr.length = sizeof(sockaddr_in6);
  } else {
    return invalidArgument("'" + host + "' is not a numeric IPv4 or IPv6 address");
  }
  *out = addr;
  return Status::ok();
}

Status resolveSockAddr(const std::string& host, uint16_t port, SockAddr* out) {
  if (numericSockAddr(host, port, out).isOk()) return Status::ok();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &result);
  if (rc != 0) {
    std::string why = rc == EAI_SYSTEM ? errnoString(errno) : std::string(gai_strerror(rc));
    return invalidArgument("cannot resolve host '" + host + "': " + why);
  }
  const addrinfo* chosen = nullptr;
  for (const addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET) {
      chosen = ai;
      break;
    }
    if (ai->ai_family == AF_INET6 && chosen == nullptr) chosen = ai;
  }
  Status st = Status::ok();
  if (chosen == nullptr || chosen->ai_addrlen > sizeof(sockaddr_storage)) {
    st = invalidArgument("host '" + host + "' has no IPv4 or IPv6 address");
  } else {
    SockAddr addr;
    std::memcpy(&addr.storage, chosen->ai_addr, chosen->ai_addrlen);
    addr.length = chosen->ai_addrlen;
    addr.setPort(port);
    *out = addr;
  }
  freeaddrinfo(result);
  return st;
}

namespace {

bool usableV6(const sockaddr_in6* a) {
  return !IN6_IS_ADDR_LINKLOCAL(&a->sin6_addr) && !IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) &&
         !IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr);
}

void fromIfaddr(const ifaddrs* ifa, SockAddr* out) {
  SockAddr addr;
  if (ifa->ifa_addr->sa_family == AF_INET) {
    std::memcpy(&addr.storage, ifa->ifa_addr, sizeof(sockaddr_in));
    addr.length = sizeof(sockaddr_in);
  } else {
    std::memcpy(&addr.storage, ifa->ifa_addr, sizeof(sockaddr_in6));
    addr.length = sizeof(sockaddr_in6);
  }
  addr.setPort(0);
  *out = addr;
}

bool skippedByDefault(const char* name) {
  // As NCCL: container bridges are rarely what the other hosts can reach.
  return std::strncmp(name, "docker", 6) == 0 || std::strncmp(name, "virbr", 5) == 0;
}

}  // namespace

Status localAddressToward(const SockAddr& remote, SockAddr* local, std::string* ifaceName) {
  Fd fd(::socket(remote.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return systemError("socket: " + errnoString(errno));
  if (::connect(fd.get(), remote.sa(), remote.length) != 0) {
    return systemError("no route to " + remote.toString() + ": " + errnoString(errno));
  }
  SockAddr mine;
  mine.length = sizeof(mine.storage);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&mine.storage), &mine.length) != 0) {
    return systemError("getsockname: " + errnoString(errno));
  }
  mine.setPort(0);
  *ifaceName = "?";
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) == 0) {
    for (const ifaddrs* ifa = list; ifa != nullptr; ifa = ifa->ifa_next) {
      if (ifa->ifa_addr == nullptr || ifa->ifa_name == nullptr) continue;
      if (ifa->ifa_addr->sa_family != mine.family()) continue;
      SockAddr candidate;
      fromIfaddr(ifa, &candidate);
      if (candidate.host() == mine.host()) {
        *ifaceName = ifa->ifa_name;
        break;
      }
    }
    freeifaddrs(list);
  }
  *local = mine;
  return Status::ok();
}

Status chooseListenAddress(SockAddr* out, std::string* ifaceName, const SockAddr* toward) {
  std::string wanted = envString("FTCCL_SOCKET_IFNAME");
  if (wanted.empty() && toward != nullptr && localAddressToward(*toward, out, ifaceName).isOk() &&
      *ifaceName != "?") {
    *ifaceName += " (the route to the bootstrap root " + toward->host() + ")";
    return Status::ok();
  }
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) {
    int err = errno;
    if (!wanted.empty()) return systemError("getifaddrs: " + errnoString(err));
    list = nullptr;  // fall back to loopback below
  }
  const ifaddrs* v4 = nullptr;
  const ifaddrs* v6 = nullptr;
  for (const ifaddrs* ifa = list; ifa != nullptr; ifa = ifa->ifa_next) {
    if (ifa->ifa_addr == nullptr || ifa->ifa_name == nullptr) continue;
    int family = ifa->ifa_addr->sa_family;
    if (family != AF_INET && family != AF_INET6) continue;
    if (!(ifa->ifa_flags & IFF_UP)) continue;
    if (!wanted.empty()) {
      if (wanted != ifa->ifa_name) continue;
      if (family == AF_INET && v4 == nullptr) v4 = ifa;
      if (family == AF_INET6 && v6 == nullptr &&
          (usableV6(reinterpret_cast<const sockaddr_in6*>(ifa->ifa_addr)) ||
           (ifa->ifa_flags & IFF_LOOPBACK))) {
        v6 = ifa;
      }
    } else {
      if ((ifa->ifa_flags & IFF_LOOPBACK) || skippedByDefault(ifa->ifa_name)) continue;
      if (family == AF_INET && v4 == nullptr) v4 = ifa;
    }
  }
  Status st = Status::ok();
  const ifaddrs* chosen = v4 ? v4 : v6;
  if (chosen != nullptr) {
    fromIfaddr(chosen, out);
    *ifaceName = chosen->ifa_name;
  } else if (!wanted.empty()) {
    st = invalidArgument("FTCCL_SOCKET_IFNAME=" + wanted +
                         ": no such interface that is up with an IPv4 or global IPv6 address");
  } else {
    st = numericSockAddr("127.0.0.1", 0, out);
    *ifaceName = "lo (no other interface is up)";
  }
  if (list) freeifaddrs(list);
  return st;
}

Status setNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    return systemError("fcntl(O_NONBLOCK): " + errnoString(errno));
  }
  return Status::ok();
}

Status listenOn(const SockAddr& addr, bool reuseAddr, Fd* out, SockAddr* bound) {
  Fd fd(::socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return systemError("socket: " + errnoString(errno));
  if (reuseAddr) {
    int one = 1;
    if (setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
      return systemError("setsockopt(SO_REUSEADDR): " + errnoString(errno));
    }
  }
  if (::bind(fd.get(), addr.sa(), addr.length) != 0) {
    int err = errno;
    std::string hint;
    if (err == EADDRINUSE) hint = " (another process or rendezvous uses this port)";
    if (err == EADDRNOTAVAIL) hint = " (the address is not one of this host's)";
    return systemError("cannot bind bootstrap root to " + addr.toString() + ": " +
                       errnoString(err) + hint);
  }
  if (::listen(fd.get(), SOMAXCONN) != 0) {
    return systemError("listen on " + addr.toString() + ": " + errnoString(errno));
  }
  SockAddr real;
  real.length = sizeof(real.storage);
  if (getsockname(fd.get(), real.sa(), &real.length) != 0) {
    return systemError("getsockname: " + errnoString(errno));
  }
  *bound = real;
  *out = std::move(fd);
  return Status::ok();
}

namespace {

bool retryableConnectError(int err) {
  switch (err) {
    case ECONNREFUSED:
    case ECONNRESET:
    case ECONNABORTED:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EHOSTDOWN:
    case ENETDOWN:
    case EAGAIN:
    case EINTR:
    case EADDRNOTAVAIL:  // ephemeral ports exhausted for a moment
      return true;
    default:
      return false;
  }
}

// A loopback connect to a closed port in the ephemeral range can connect the socket to
// itself (TCP simultaneous open). That is no root: treat it as refused.
bool connectedToSelf(int fd) {
  SockAddr local, peer;
  local.length = peer.length = sizeof(sockaddr_storage);
  if (getsockname(fd, local.sa(), &local.length) != 0) return false;
  if (getpeername(fd, peer.sa(), &peer.length) != 0) return false;
  return local.length == peer.length &&
         std::memcmp(&local.storage, &peer.storage, local.length) == 0;
}

// One attempt; returns 0 on success or the errno of the failure.
int connectOnce(const SockAddr& addr, Deadline deadline, Fd* out) {
  Fd fd(::socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return errno;
  if (::connect(fd.get(), addr.sa(), addr.length) != 0) {
    int err = errno;
    if (err != EINPROGRESS && err != EINTR) return err;
    for (;;) {
      pollfd p{fd.get(), POLLOUT, 0};
      int rc = ::poll(&p, 1, msUntil(deadline));
      if (rc < 0 && errno == EINTR) continue;
      if (rc < 0) return errno;
      if (rc == 0) return ETIMEDOUT;
      break;
    }
    int soError = 0;
    socklen_t len = sizeof(soError);
    if (getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &soError, &len) != 0) return errno;
    if (soError != 0) return soError;
  }
  if (connectedToSelf(fd.get())) return ECONNREFUSED;
  int one = 1;
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  *out = std::move(fd);
  return 0;
}

}  // namespace

namespace {

// The next wait's length: the time left, in slices when the wait can be cancelled.
int waitSliceMs(Deadline deadline, const Cancelled& cancelled) {
  int left = std::max(0, msUntil(deadline));
  return cancelled ? std::min(left, kCancelCheckMs) : left;
}

Status cancelledError() { return remoteError("cancelled: the waiting side gave up"); }

}  // namespace

Status connectWithRetry(const SockAddr& addr, Deadline deadline, Fd* out, std::string* lastError,
                        const Cancelled& cancelled) {
  int backoffMs = 5;
  for (;;) {
    if (cancelled && cancelled()) return cancelledError();
    int err = connectOnce(addr, deadline, out);
    if (err == 0) return Status::ok();
    *lastError = errnoString(err);
    if (!retryableConnectError(err)) {
      return systemError("cannot connect to bootstrap root " + addr.toString() + ": " + *lastError);
    }
    int left = msUntil(deadline);
    if (left <= 0) return timeoutError("connect to " + addr.toString() + ": " + *lastError);
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(backoffMs, left)));
    backoffMs = std::min(backoffMs * 2, cancelled ? kCancelCheckMs : 100);
  }
}

Status sendAll(int fd, const uint8_t* data, size_t size, Deadline deadline,
               const Cancelled& cancelled) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::send(fd, data + done, size - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      return systemError("send: " + errnoString(errno));
    }
    pollfd p{fd, POLLOUT, 0};
    int rc = ::poll(&p, 1, waitSliceMs(deadline, cancelled));
    if (rc < 0 && errno != EINTR) return systemError("poll: " + errnoString(errno));
    if (rc == 0 && msUntil(deadline) <= 0) {
      return timeoutError("send did not finish before the deadline");
    }
    if (rc == 0 && cancelled && cancelled()) return cancelledError();
  }
  return Status::ok();
}

Status recvAll(int fd, uint8_t* data, size_t size, Deadline deadline, size_t* received,
               const Cancelled& cancelled) {
  size_t done = 0;
  *received = 0;
  while (done < size) {
    ssize_t n = ::recv(fd, data + done, size - done, MSG_DONTWAIT);
    if (n > 0) {
      done += static_cast<size_t>(n);
      *received = done;
      continue;
    }
    if (n == 0) return systemError("connection closed by the peer");
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return systemError("recv: " + errnoString(errno));
    }
    pollfd p{fd, POLLIN, 0};
    int rc = ::poll(&p, 1, waitSliceMs(deadline, cancelled));
    if (rc < 0 && errno != EINTR) return systemError("poll: " + errnoString(errno));
    if (rc == 0 && msUntil(deadline) <= 0) return timeoutError("no data before the deadline");
    if (rc == 0 && cancelled && cancelled()) return cancelledError();
  }
  return Status::ok();
}

}  // namespace net
}  // namespace ftccl
