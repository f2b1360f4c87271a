#include "transports/shm/unix_socket.h"

#include <poll.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ftccl {
namespace shm {
namespace {

// Room for a few descriptors so that a message carrying several is seen as such (and
// each closed); the kernel drops what does not fit and says so (MSG_CTRUNC).
constexpr size_t kMaxFds = 4;

socklen_t abstractAddress(const std::string& name, sockaddr_un* addr) {
  *addr = {};
  addr->sun_family = AF_UNIX;
  std::memcpy(addr->sun_path + 1, name.data(), name.size());  // sun_path[0] = 0: abstract
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
}

}  // namespace

Status listenAbstract(const std::string& name, net::Fd* out, bool* taken) {
  *taken = false;
  if (name.empty() || name.size() >= sizeof(sockaddr_un::sun_path)) {
    return invalidArgument("abstract socket name of " + std::to_string(name.size()) + " bytes");
  }
  net::Fd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!sock.valid()) return systemError("socket: " + net::errnoString(errno));
  sockaddr_un addr;
  socklen_t length = abstractAddress(name, &addr);
  if (::bind(sock.get(), reinterpret_cast<const sockaddr*>(&addr), length) != 0) {
    *taken = errno == EADDRINUSE;
    return systemError("bind: " + net::errnoString(errno));
  }
  if (::listen(sock.get(), SOMAXCONN) != 0) {
    return systemError("listen: " + net::errnoString(errno));
  }
  *out = std::move(sock);
  return Status::ok();
}

// Nothing listening is final: a name is published only once it listens, so its owner has
// closed it or died. A full backlog is waited out in the kernel (a blocking connect bounded
// by SO_SNDTIMEO), in turn with every other connecting process: retrying a non-blocking
// connect would lose each freed slot to strangers already waiting there.
Status connectAbstract(const std::string& name, net::Deadline deadline, net::Fd* out) {
  if (name.empty() || name.size() >= sizeof(sockaddr_un::sun_path)) {
    return invalidArgument("abstract socket name of " + std::to_string(name.size()) + " bytes");
  }
  sockaddr_un addr;
  socklen_t length = abstractAddress(name, &addr);
  for (;;) {
    int left = net::msUntil(deadline);
    if (left <= 0) return timeoutError("the listener's backlog stayed full until the deadline");
    net::Fd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!sock.valid()) return systemError("socket: " + net::errnoString(errno));
    timeval wait{left / 1000, (left % 1000) * 1000};
    if (::setsockopt(sock.get(), SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof(wait)) != 0) {
      return systemError("setsockopt(SO_SNDTIMEO): " + net::errnoString(errno));
    }
    if (::connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), length) == 0) {
      FTCCL_CHECK(net::setNonBlocking(sock.get()));
      *out = std::move(sock);
      return Status::ok();
    }
    int err = errno;
    if (err == ECONNREFUSED || err == ENOENT) {
      return remoteError("nothing listens at the name (its owner closed it, or died)");
    }
    if (err != EAGAIN && err != EINTR) return systemError("connect: " + net::errnoString(err));
  }
}

pid_t peerPid(int sock) {
  ucred cred{};
  socklen_t length = sizeof(cred);
  if (::getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0) return 0;
  return cred.pid;
}

void ReceivedFds::take(msghdr* msg) {
  if (msg->msg_flags & MSG_CTRUNC) truncated = true;
  for (cmsghdr* c = CMSG_FIRSTHDR(msg); c != nullptr; c = CMSG_NXTHDR(msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (count++ == 0) {
        first.reset(fd);
      } else {
        ::close(fd);
      }
    }
  }
}

Status readMessage(int sock, uint8_t* data, size_t size, net::Deadline deadline,
                   const std::string& what, const std::string& closedEarly, ReceivedFds* fds) {
  size_t got = 0;
  auto partial = [&] { return std::to_string(got) + " of " + std::to_string(size) + " bytes"; };
  while (got < size) {
    iovec iov{data + got, size - got};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    if (fds != nullptr) {
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
    }
    ssize_t n = ::recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n >= 0 && fds != nullptr) fds->take(&msg);
    if (n > 0) {
      got += static_cast<size_t>(n);
      continue;
    }
    if (n == 0 || errno == ECONNRESET) {
      if (got == 0) return remoteError(closedEarly);
      return remoteError(what + " truncated: the connection closed after " + partial());
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return systemError(what + ": recvmsg: " + net::errnoString(errno));
    }
    pollfd p{sock, POLLIN, 0};
    int rc = ::poll(&p, 1, net::msUntil(deadline));
    if (rc < 0 && errno != EINTR) return systemError("poll: " + net::errnoString(errno));
    if (rc == 0 && net::msUntil(deadline) <= 0) {
      return timeoutError(what + ": " + partial() + " before the deadline");
    }
  }
  return Status::ok();
}

Status sendWithFd(int sock, const uint8_t* data, size_t size, int fd) {
  iovec iov{const_cast<uint8_t*>(data), size};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  ssize_t n;
  do {
    n = ::sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(size)) return Status::ok();
  return remoteError("sendmsg: " + (n < 0 ? net::errnoString(errno) : std::string("partial")));
}

}  // namespace shm
}  // namespace ftccl
