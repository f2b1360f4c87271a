#include "transports/shm/peer_reader.h"

#include <poll.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "transports/node_memory.h"

namespace ftccl {
namespace shm {
namespace {

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434  // the same number on every architecture
#endif

std::string errnoText(int err) { return std::string(std::strerror(err)); }

}  // namespace

Status PeerReader::open(const std::vector<pid_t>& pids) {
  pids_.clear();
  pidfds_.clear();
  std::vector<net::Fd> fds;
  for (pid_t pid : pids) {
    if (pid <= 0) return invalidArgument("single copy: no pid for a local rank");
    int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    if (fd < 0) {
      return systemError("single copy: pidfd_open(" + std::to_string(pid) +
                         "): " + errnoText(errno));
    }
    fds.emplace_back(fd);
  }
  pids_ = pids;
  pidfds_ = std::move(fds);
  return Status::ok();
}

Status PeerReader::stillThere(int localRank) const {
  // A pidfd is readable once its process has exited (it may be a zombie: its pid is then
  // still taken, but its memory is gone and the read above failed or came before).
  pollfd p{pidfds_[static_cast<size_t>(localRank)].get(), POLLIN, 0};
  int ready = poll(&p, 1, 0);
  if (ready == 0) return Status::ok();
  if (ready < 0) return systemError("single copy: poll on a pidfd: " + errnoText(errno));
  return remoteError("single copy: local rank " + std::to_string(localRank) + " (pid " +
                     std::to_string(pids_[static_cast<size_t>(localRank)]) +
                     ") exited during the read");
}

Status PeerReader::read(int localRank, uint64_t address, void* out, size_t bytes,
                        int64_t aliveAtNs) const {
  if (localRank < 0 || static_cast<size_t>(localRank) >= pids_.size()) {
    return invalidArgument("single copy: no local rank " + std::to_string(localRank));
  }
  const pid_t pid = pids_[static_cast<size_t>(localRank)];
  auto* to = static_cast<uint8_t*>(out);
  size_t done = 0;
  while (done < bytes) {
    iovec local{to + done, bytes - done};
    iovec remote{reinterpret_cast<void*>(static_cast<uintptr_t>(address + done)), bytes - done};
    ssize_t got = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (got > 0) {
      done += static_cast<size_t>(got);
      continue;
    }
    if (got < 0 && errno == EINTR) continue;
    const int err = got < 0 ? errno : EFAULT;  // 0 bytes: the range ended
    std::string what = "single copy: reading " + std::to_string(bytes) + " bytes of local rank " +
                       std::to_string(localRank) + " (pid " + std::to_string(pid) +
                       ") failed after " + std::to_string(done) + ": " + errnoText(err);
    // A peer that exited may have left its pid to a process this one may not read (EPERM).
    Status there = stillThere(localRank);
    if (err == ESRCH || !there.isOk()) return remoteError(what + " (the peer is gone)");
    return systemError(what + " (FTCCL_SHM_SINGLE_COPY=0 keeps every op in the slots)");
  }
  // Not exited, or exited so recently that its pid cannot name another process yet (a
  // zombie's or dead process's read fails above: no memory to read).
  if (pidStillItsOwn(aliveAtNs, nodeClockNs())) return Status::ok();
  return stillThere(localRank);
}

}  // namespace shm
}  // namespace ftccl
