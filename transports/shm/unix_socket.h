// Unix stream sockets in the Linux abstract namespace, for the shm hand-off: the peer's
// pid from the kernel (SO_PEERCRED), fixed-size reads bounded by a deadline that take any
// descriptors sent along, and a send with one descriptor attached. Nothing of the
// hand-off's protocol; every socket is close-on-exec and non-blocking once connected.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "util/net/socket.h"
#include "util/status.h"

namespace ftccl {
namespace shm {

/// Listens at the abstract address "\0" + name (no file: nothing is left if the process
/// is killed). *taken: the name was in use (EADDRINUSE), so the caller may draw another.
Status listenAbstract(const std::string& name, net::Fd* out, bool* taken);

/// Connects to "\0" + name, then makes the socket non-blocking. A full backlog is waited
/// out in the kernel until the deadline; nothing listening is an ftcclRemoteError at once.
Status connectAbstract(const std::string& name, net::Deadline deadline, net::Fd* out);

/// The pid of the process at the other end when it connected (or listened), as this pid
/// namespace sees it; 0 when it is outside it.
pid_t peerPid(int sock);

/// The descriptors that came with a message: the first kept, every other closed at once.
struct ReceivedFds {
  net::Fd first;
  int count = 0;
  bool truncated = false;  ///< MSG_CTRUNC: more came than fit (the kernel closed those)

  void take(msghdr* msg);
};

/// Reads exactly `size` bytes before the deadline (poll, never a blocking call). With
/// `fds`, descriptors sent along are taken, close-on-exec; without, the kernel drops them,
/// so a peer cannot fill this process's descriptor table. `what` names the message in
/// errors; `closedEarly` says what a close before its first byte means.
Status readMessage(int sock, uint8_t* data, size_t size, net::Deadline deadline,
                   const std::string& what, const std::string& closedEarly,
                   ReceivedFds* fds = nullptr);

/// Sends `size` bytes with `fd` attached in one sendmsg, at once: for a short message on a
/// socket that holds little else (a full socket is an error, not a wait).
Status sendWithFd(int sock, const uint8_t* data, size_t size, int fd);

}  // namespace shm
}  // namespace ftccl
