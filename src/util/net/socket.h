// Small TCP helpers (bootstrap, health, core): owned descriptors, numeric addresses, interface
// choice, and connect/send/receive bounded by deadlines (poll, never a blocking call).
// Every socket is created CLOEXEC and non-blocking.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "util/status.h"

namespace ftccl {
namespace net {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;
// Asked between waits of at most kCancelCheckMs: true ends the wait with ftcclRemoteError
// (a forming child communicator whose parent was revoked: its root may be dead).
using Cancelled = std::function<bool()>;
constexpr int kCancelCheckMs = 20;

// Milliseconds left until d (0 when past), rounded up, clamped to int.
int msUntil(Deadline d);
Deadline deadlineAfterMs(int64_t ms);
int64_t msSince(Clock::time_point start);

// An owned file descriptor: closed exactly once.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

struct SockAddr {
  sockaddr_storage storage{};
  socklen_t length = 0;

  int family() const { return storage.ss_family; }
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage); }
  sockaddr* sa() { return reinterpret_cast<sockaddr*>(&storage); }
  uint16_t port() const;
  void setPort(uint16_t port);
  // Numeric host only: "127.0.0.1", "::1".
  std::string host() const;
  // "127.0.0.1:5555" or "[::1]:5555".
  std::string toString() const;
  bool isLoopback() const;
};

// Numeric IPv4/IPv6 text (no name lookup) -> address.
Status numericSockAddr(const std::string& host, uint16_t port, SockAddr* out);
// A host name or numeric address -> the first address getaddrinfo returns (IPv4 first).
Status resolveSockAddr(const std::string& host, uint16_t port, SockAddr* out);

// The address to listen on: FTCCL_SOCKET_IFNAME (first IPv4 address of that interface,
// else a global IPv6 one); else, given `toward` (the job's bootstrap root), the local
// address this host reaches it from, so a job on loopback listens on loopback only; else
// the first UP non-loopback IPv4 interface, else 127.0.0.1. *ifaceName says which
// interface was used.
Status chooseListenAddress(SockAddr* out, std::string* ifaceName, const SockAddr* toward = nullptr);
// The local address (port 0) and its interface from which this host reaches `remote`:
// the kernel's route choice, read from a connected UDP socket (nothing is sent).
Status localAddressToward(const SockAddr& remote, SockAddr* local, std::string* ifaceName);

// A listening socket bound to addr (port 0: ephemeral). *bound gets the real address.
Status listenOn(const SockAddr& addr, bool reuseAddr, Fd* out, SockAddr* bound);

// Connects, retrying refused/unreachable attempts until the deadline.
// *lastError describes the last failure when the deadline passed.
Status connectWithRetry(const SockAddr& addr, Deadline deadline, Fd* out, std::string* lastError,
                        const Cancelled& cancelled = {});

// Sends all bytes before the deadline (ftcclTimeout otherwise).
Status sendAll(int fd, const uint8_t* data, size_t size, Deadline deadline,
               const Cancelled& cancelled = {});
// Receives exactly size bytes before the deadline. *received counts what arrived (an
// early end of stream is an ftcclSystemError with *received < size).
Status recvAll(int fd, uint8_t* data, size_t size, Deadline deadline, size_t* received,
               const Cancelled& cancelled = {});

// Puts the descriptor in non-blocking mode (accepted sockets inherit via accept4).
Status setNonBlocking(int fd);

std::string errnoString(int err);

}  // namespace net
}  // namespace ftccl
