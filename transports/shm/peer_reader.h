// Single copy between the ranks of a node (issue 26): reads another local rank's private
// memory with process_vm_readv (cross-memory attach), so a large broadcast costs each
// receiver one copy straight from the root's buffer instead of two through a slot.
//
// A pid names a process only while it lives: once a peer exits, its pid may be given to
// another process, and a read would return that process's bytes. So each peer is held
// by a pidfd (pidfd_open), and every read is followed by a look at it: a peer that has
// not exited after the read is the one whose bytes were read. No pidfd (an old kernel),
// no single copy. What a read may touch is bounded by the peer's own mappings: a wrong
// address is EFAULT, never another process.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "util/net/socket.h"
#include "util/status.h"

namespace ftccl {
namespace shm {

class PeerReader {
 public:
  /// Holds a pidfd for each of `pids` (the local ranks' processes, this one included, in
  /// local rank order). Fails when the kernel has no pidfd_open or a process is gone.
  Status open(const std::vector<pid_t>& pids);
  bool isOpen() const { return !pids_.empty(); }

  /// Copies `bytes` at `address` in `localRank`'s process into `out`, then checks the
  /// process has not exited. Errors say which: refused (EPERM, no ptrace permission, or a
  /// seccomp filter), a bad range (EFAULT), or the peer gone (ESRCH, or the pidfd).
  Status read(int localRank, uint64_t address, void* out, size_t bytes) const;

 private:
  Status stillThere(int localRank) const;

  std::vector<pid_t> pids_;
  std::vector<net::Fd> pidfds_;
};

}  // namespace shm
}  // namespace ftccl
