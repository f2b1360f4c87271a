// Hands a node's shared-memory segment (a memfd) from the node leader to the other ranks
// of the node: a Unix stream socket in the abstract namespace (nothing left on disk if
// every process is killed), SO_PEERCRED on both ends, a challenge-response both ways
// under the communicator's key, and the descriptor with the leader's proof in one
// SCM_RIGHTS message.
//
// The name is not a secret: abstract sockets are listed in /proc/net/unix, and any
// process of the network namespace can connect. What keeps a stranger out is the pid
// check (a leader accepts each expected member pid once, a member talks only to the
// expected leader pid) and, against a recycled pid, the proofs. Both ends must be in one
// pid namespace (the pids are those the ranks exchanged at bootstrap).
//
// Wire format (version 1; host byte order, one host):
//   header (8 B)  = "FTSH" | version 1 | type | 0 | 0
//   challenge, leader -> member (24 B) = header(type 1) | leader nonce (16)
//   answer, member -> leader (40 B)    = header(type 2) | member nonce (16) | member tag (16)
//   reply, leader -> member (24 B)     = header(type 3) | leader tag (16), + SCM_RIGHTS(fd)
//   k          = HMAC-SHA-256(key, "ftccl-shm-handoff" | 0 | context)
//   member tag = HMAC(k, "ftccl-shm-member" | leader nonce | member nonce | pids (m, l))
//   leader tag = HMAC(k, "ftccl-shm-leader" | member nonce | leader nonce | pids (l, m))
// tags truncated to 128 bits; pids (x, y) = x's pid then y's, int32 each; the context is
// 8 bytes. Each proof covers the verifier's fresh nonce, so it is good on one connection.
//
// A refusal is the connection closed without a word: before the challenge (the pid is not
// expected, or was served) or after the answer (the proof failed).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "util/crypto.h"
#include "util/net/socket.h"
#include "util/status.h"

namespace ftccl {
namespace shm {

/// Bounds on what one connection can cost the leader.
struct HandoffLimits {
  /// From accept to the reply. One connection is served at a time, so a member stopped
  /// mid-handshake delays the others by this much (and no more).
  int handshakeMs = 3000;
  /// Failed handshakes an expected pid may have before it is refused for good.
  int attemptsPerPid = 2;
};

/// The leader's side: listens on a fresh abstract name and gives one descriptor to each
/// expected member pid, once. Not thread-safe; movable.
class HandoffServer {
 public:
  HandoffServer() = default;

  /// Listens on "\0" + name(). `allowedPids`: the members (not the leader), distinct and
  /// positive. `key` and `context` (the communicator's epoch, say) must be the members'.
  Status start(const crypto::Key& key, uint64_t context, const std::vector<pid_t>& allowedPids,
               HandoffLimits limits = {});

  /// "ftccl-shm-" and 32 hex digits (128 random bits): printable, to be published to the
  /// members; the socket's address is this name after a NUL byte (the abstract namespace).
  const std::string& name() const { return name_; }

  /// Serves connections one at a time until every member has `fd` or is refused for good
  /// (then the listener is closed), or until the deadline, or until `stopped` (asked
  /// between connections, at least every 50 ms; a handshake under way keeps its own
  /// bound). Ok when every member has it; otherwise the error names each member left and
  /// why. May be called again after a timeout, to go on.
  Status serve(int fd, net::Deadline deadline, const std::function<bool()>& stopped = {});

  /// Whether no member is left that could still be served.
  bool finished() const;
  std::vector<pid_t> servedPids() const;
  /// Connections refused at once because their pid was not expected (or already served).
  uint64_t refusedConnections() const { return refused_; }

  /// Stops listening: the name disappears, and connections not yet accepted are reset.
  void close() { listener_.reset(); }

 private:
  struct Member {
    pid_t pid = 0;
    bool served = false;
    int failures = 0;
    std::string why;  // the last failure, for the error of serve()
  };

  Member* admit(int conn);
  Status handshake(int conn, pid_t memberPid, int fd, net::Deadline deadline) const;
  Status summary(bool timedOut) const;

  net::Fd listener_;
  std::string name_;
  crypto::MacKey mac_;
  std::vector<Member> members_;
  HandoffLimits limits_;
  uint64_t refused_ = 0;
};

/// The member's side: connects to the leader's `name`, checks that the socket is the
/// leader's (`leaderPid`), proves itself, checks the leader's proof, and takes exactly one
/// descriptor (close-on-exec) into *fd. Every error says what failed: another pid at the
/// name, a refusal, a wrong proof, a truncated message, the deadline. The leader serves
/// one member at a time: the deadline should allow for the others first.
Status receiveFd(const std::string& name, const crypto::Key& key, uint64_t context, pid_t leaderPid,
                 net::Deadline deadline, net::Fd* fd);

}  // namespace shm
}  // namespace ftccl
