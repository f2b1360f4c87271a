// Single copy between the ranks of a node (issue 26): reads another local rank's private
// memory with process_vm_readv (cross-memory attach), so a large broadcast costs each
// receiver one copy straight from the root's buffer instead of two through a slot.
//
// A pid names a process only while it lives: once a peer exits, its pid may be given to
// another process, and a read would return that process's bytes. So each peer is held
// by a pidfd (pidfd_open), and a read is followed by a look at it: a peer that has not
// exited after the read is the one whose bytes were read. That look (a poll, ~140 ns in
// a VM, 4% of a 64 KiB broadcast) is skipped where the peer is known to have been alive
// less than kPidReuseWindowNs before the read ended: Linux hands out pids in a cycle
// (pid_max, at least 32768), so a dead peer's pid names another process only after
// tens of thousands of creations, and pid allocation, serialized in the kernel, cannot
// make those within a millisecond. No pidfd (an old kernel), no single copy. What a read may touch
// is bounded by the peer's own mappings: a wrong address is EFAULT, never another process.
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
  /// process has not exited, unless it was alive at `aliveAtNs` (nodeClockNs() of the
  /// peer, node_memory.h: a peer in another time namespace is off by its offset, and a
  /// time ahead of now or far behind is not fresh) and the read ended less than
  /// kPidReuseWindowNs after. Errors say which: refused (EPERM, no ptrace permission,
  /// or a seccomp filter), a bad range (EFAULT), or the peer gone (ESRCH, or the pidfd).
  Status read(int localRank, uint64_t address, void* out, size_t bytes,
              int64_t aliveAtNs = kAliveUnknown) const;

  static constexpr int64_t kAliveUnknown = -1;
  static constexpr int64_t kPidReuseWindowNs = 1000 * 1000;
  /// Whether a pid alive at `aliveAtNs` still names that process at `nowNs` if it names
  /// a process at all: the window above, and nothing from the future.
  static bool pidStillItsOwn(int64_t aliveAtNs, int64_t nowNs) {
    return aliveAtNs >= 0 && nowNs >= aliveAtNs && nowNs - aliveAtNs < kPidReuseWindowNs;
  }

 private:
  Status stillThere(int localRank) const;

  std::vector<pid_t> pids_;
  std::vector<net::Fd> pidfds_;
};

}  // namespace shm
}  // namespace ftccl
