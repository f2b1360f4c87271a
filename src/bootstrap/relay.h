// The table's relay (issue 27): the root sent every rank the whole table, N copies of
// N blobs, O(N^2) bytes from one process (6.65 TB and 532 s at 100,000 processes on a
// 100 GbE link). Now the root sends it to its first `fanout` ranks only, and every rank
// a Role (wire.h) naming its parent; each rank fetches the table from its parent's relay
// listener, checks it against the digest its Role carries (the Role is proven by the
// root, so a table from a parent is as authentic as the root's), and answers its own
// children's fetches. The root sends fanout + failures copies, each rank at most fanout,
// and the table reaches every rank in O(log N) hops.
//
// Faults: a parent that is dead (refused), stopped or slow or lying (a table whose
// digest is not the Role's) costs its children a fetch from the root, on the connection
// that brought their Role, which the root keeps until they close it. A rank at depth d
// waits d x kRelayHopMs for its table: a parent whose own parent is stopped gives up on
// it first, fetches from the root and still serves its children in time, so one stopped
// rank sends its children, not its whole subtree, to the root. Strangers at a
// relay listener get nothing: a fetch proves the job's secret for the listener's fresh
// challenge.
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bootstrap/wire.h"
#include "util/net/socket.h"
#include "util/status.h"

namespace ftccl {
namespace bootstrap {

constexpr int kDefaultRelayFanout = 8;
constexpr int kMaxRelayFanout = 1 << 16;
// How long a rank waits for its table from its parent before it asks the root instead,
// per level of depth (from its Role on: every Role leaves the root at once). A stalled
// parent's children ask the root after their wait, and their children, whose wait is one
// level longer, get it from them: a stall costs one subtree this much, not its whole
// depth, and the subtree must not lag the others by a failure timeout (1 s by default):
// they watch it from their own init on. A hop of a healthy tree takes a table's transfer
// time per sibling (8 x 5 ms for 100,000 processes at 12.5 GB/s).
// Plus the time the parent's sends to its siblings may take: the table times the fanout
// at an assumed 2.5 GB/s (the root computes it, the Role carries it).
constexpr int kRelayHopMs = 150;
uint32_t relayHopMs(size_t tableBytes, int fanout);
// A parent's listener exists from before its hello: refused means dead (a few retries).
constexpr int kRelayConnectMs = 50;
// A parent's challenge: sent at accept by a live parent, with or without its table yet.
// Short, since the subtree of a stopped parent finishes init this much after the others,
// who watch it from their own init on (a skew near the failure timeout got healthy
// children evicted: tests/mp/run_init_relay_faults.sh).
constexpr int kRelayChallengeMs = 200;
// A child's fetch, once its parent's challenge is out; the table to a child at no less
// than 50 MB/s plus this.
constexpr int kRelayFetchReadMs = 200;

// FTCCL_BOOTSTRAP_FANOUT: how many ranks the root and each rank send the table to
// (default 8); 0 makes the root send it to every rank itself, as before the relay.
Status relayFanout(int* fanout);

// The tree over the joined ranks, by their index in rank order: index i's parent is
// i / fanout - 1 (-1: the root), else the nearest ancestor that serves (one without a
// listener does not); a rank whose parent has `fanout` children already, or that would
// be deeper than kMaxRelayDepth, gets the table from the root.
class RelayTree {
 public:
  RelayTree(const std::vector<bool>& serves, int fanout);
  int parentOf(size_t index) const { return parent_[index]; }
  uint32_t childrenOf(size_t index) const { return children_[index]; }
  uint32_t depthOf(size_t index) const { return depth_[index]; }  // 0: the root's child

 private:
  std::vector<int> parent_;
  std::vector<uint32_t> children_, depth_;
};

// A rank's relay listener, opened before its hello on the address it reaches the root
// from, so that its children reach it the same way.
class RelayServer {
 public:
  // Listens on `local` (its port ignored: an ephemeral one).
  Status open(net::SockAddr local);
  bool isOpen() const { return listen_.valid(); }
  const std::string& address() const { return address_; }
  // Answers fetches of this rendezvous with the table (the whole Table frame, null until
  // this rank has it: its children are challenged and admitted meanwhile) until
  // `children` were answered, the deadline passes or `cancelled`; then closes the
  // listener. Returns how many were answered.
  using TableSource = std::function<std::shared_ptr<const std::vector<uint8_t>>()>;
  // A fetch proves the secret and the table's digest (wire.h).
  uint32_t serve(const TableSource& table, uint32_t children, uint64_t nonce,
                 const std::array<uint8_t, 32>& digest, const uint8_t secret[16],
                 net::Deadline until, const net::Cancelled& cancelled);

 private:
  bool admit(int fd, uint64_t nonce, const std::array<uint8_t, 32>& digest,
             const uint8_t secret[16], net::Deadline until, const net::Cancelled& cancelled);
  bool sendTable(int fd, const std::vector<uint8_t>& table, net::Deadline until,
                 const net::Cancelled& cancelled);
  net::Fd listen_;
  std::string address_;
};

// A rank's relay in a thread of its own, from its Role on: it challenges its children at
// once (so they can tell it from a dead or stopped one within kRelayFetchReadMs), sends
// them the table once `provide` gives it, and rendezvous() returns as soon as the rank
// has it. A rank that stayed in rendezvous() until its children came (or gave up on it)
// had not registered its communicator with health, and peers already watching it
// declared it dead (tests/mp/run_init_relay_faults.sh).
class RelayService {
 public:
  RelayService(RelayServer server, const Role& role, const uint8_t secret[16], net::Deadline until);
  ~RelayService();
  Status start();
  void provide(std::shared_ptr<const std::vector<uint8_t>> table);
  void requestStop() { stop_.store(true); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  bool finished() const { return finished_.load(); }
  pid_t creatorPid() const { return creatorPid_; }
  // After fork(), in the child: the thread does not exist there; drop the listener.
  void abandonAfterFork() { server_ = RelayServer(); }

 private:
  RelayServer server_;
  std::mutex mu_;
  std::shared_ptr<const std::vector<uint8_t>> table_;  // null until provided
  uint32_t children_;
  uint64_t nonce_;
  std::array<uint8_t, 32> digest_;
  uint8_t secret_[16];
  net::Deadline until_;
  pid_t creatorPid_;
  std::thread thread_;
  std::atomic<bool> stop_{false}, finished_{false};
};

// Runs a RelayService; the process's registry (bootstrap.cc) keeps it until it finishes
// or stopAllRoots().
Status startRelay(std::shared_ptr<RelayService> relay);

// Reads one whole frame of at most maxBodyBytes(type) and `cap` body bytes.
Status readOneFrame(int fd, size_t cap, net::Deadline deadline, const net::Cancelled& cancelled,
                    FrameHeader* header, std::vector<uint8_t>* frame);
// Whether `frame` is the table the Role names (its size and SHA-256).
bool isRolesTable(const Role& role, const std::vector<uint8_t>& frame);

// When a rank stops waiting for its table from its parent; when it stops serving its
// children (their wait is one hop longer).
net::Deadline relayWaitEnd(net::Clock::time_point roleAt, const Role& role);
net::Deadline relayServeEnd(net::Clock::time_point roleAt, const Role& role);

// Fetches the table frame from the Role's parent as `rank`, checked against the Role.
Status fetchFromParent(const Role& role, int rank, const uint8_t secret[16], net::Deadline until,
                       const net::Cancelled& cancelled, std::vector<uint8_t>* table);

}  // namespace bootstrap
}  // namespace ftccl
