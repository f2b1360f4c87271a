// Bootstrap root service: one poll-driven thread per rendezvous that collects the
// ranks' hellos and sends every rank the table (or why there is none). See bootstrap.h
// for the protocol and wire.h for the format. Internal to src/bootstrap.
//
// Deadlines. A client sends, with its hello, its whole timeout and what is left of it.
// The root gives up at the earliest of (first hello + its own timeout) and, for every
// joined rank, (arrival + that rank's remaining time): once any rank would give up the
// rendezvous cannot complete, so the root tells every joined rank which ranks are
// missing. A client waits for the root's reply a short grace past its own deadline, so
// that it normally receives that message instead of timing out blind.
//
// The service is split along its seams: root_service.cc holds its life cycle, its loop
// and its protocol decisions (who may join, when the rendezvous completes or fails, what
// every rank is told); root_connections.cc the connections themselves (accepting,
// reading hellos, writing replies, and the bounds that keep a flood of connections from
// keeping the ranks out). The registry of the roots a process runs is in bootstrap.cc.
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bootstrap/bootstrap.h"
#include "bootstrap/wire.h"
#include "util/net/socket.h"
#include "util/status.h"

namespace ftccl {
namespace bootstrap {

constexpr int kMaxHelloWaitMs = 10000;    // a connection must deliver its hello by then
constexpr int kErrorReplyWriteMs = 5000;  // time to flush an error reply
// Connections that have not said hello, and the hello bytes they may make the root hold.
// Past either cap the root closes the oldest one that has sent nothing (else the oldest):
// a real rank sends its hello within a round trip of the challenge, so a flood of idle
// or slow connections (strangers, port scanners) cannot keep the ranks out or exhaust
// descriptors and memory.
constexpr size_t kMaxPendingConnections = 256;
constexpr size_t kMaxPendingHelloBytes = size_t{32} << 20;
constexpr size_t kReadChunk = 64 * 1024;

using Bytes = std::vector<uint8_t>;

// One connection to the root, from accept to its orderly close.
struct Conn {
  enum class State { ReadHeader, ReadBody, Joined, Writing };
  net::Fd fd;
  std::string peer;
  State state = State::ReadHeader;
  uint8_t header[kFrameHeaderBytes] = {0};
  size_t headerGot = 0;
  FrameHeader frame;
  Bytes body;
  FrameType expect = FrameType::Hello;             // Fetch: a joined rank's fallback (relay.h)
  net::Deadline helloDeadline;                     // for its hello, or for its Fetch or close
  uint8_t challenge[kChallengeBytes] = {0};        // ours, sent at accept
  uint8_t clientChallenge[kChallengeBytes] = {0};  // from its hello, for our proofs
  // Joined
  int rank = -1;
  net::Deadline joinDeadline;
  uint32_t joinTimeoutMs = 0;
  Bytes blob;
  std::string relay;  // where it serves the table to its children
  // Writing
  std::shared_ptr<const Bytes> out;
  size_t outOffset = 0;
  Bytes proof;                        // our proof frame for `out`, sent after it
  std::shared_ptr<const Bytes> then;  // sent after the proof: the table, to a root child
  bool mayFetch = false;              // told to fetch from a parent: kept open for a fallback Fetch
  net::Deadline writeDeadline;
  bool closed = false;
};

class RootService {
 public:
  RootService(net::Fd listenFd, const net::SockAddr& addr, const UniqueIdContents& contents,
              int timeoutMs, int fanout, std::string origin);
  ~RootService();

  Status start();
  void requestStop();
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  bool finished() const { return finished_.load(); }
  pid_t creatorPid() const { return creatorPid_; }
  // After fork(), in the child: the thread does not exist there; drop our descriptors.
  void abandonAfterFork();

 private:
  using Clock = net::Clock;
  using Deadline = net::Deadline;

  // root_service.cc: the loop and the protocol's decisions.
  void run() noexcept;
  void loop();
  void onHello(Conn& c, Hello& hello, Clock::time_point now);
  void onFetch(Conn& c, Clock::time_point now);
  void replyError(Conn& c, ftcclResult_t code, const std::string& message, Clock::time_point now);
  void leaveRank(Conn& c);
  void complete(Clock::time_point now);
  void failAll(ftcclResult_t code, const std::string& message, Clock::time_point now);
  void notifyJoined(ftcclResult_t code, const std::string& message);
  Deadline collectDeadline(uint32_t* bindingTimeoutMs) const;
  std::vector<int> missingRanks() const;

  // root_connections.cc: accepting, reading, writing, and the flood bounds.
  void acceptAll(Clock::time_point now);
  void onReadable(Conn& c, Clock::time_point now);
  void onWritable(Conn& c);
  void setReply(Conn& c, std::shared_ptr<const Bytes> frame, const std::array<uint8_t, 32>& digest);
  void drop(Conn& c);
  bool evictOnePending(Clock::time_point now, bool holdingBytes = false);
  void boundPendingBytes(Clock::time_point now);
  std::string floodNote() const;

  net::Fd listen_;
  net::Fd wake_;
  net::SockAddr addr_;
  std::string name_;
  std::string origin_;
  uint8_t secret_[16] = {0};
  uint64_t nonce_ = 0;
  int timeoutMs_ = 0;
  int fanout_ = 0;  // relay.h
  pid_t creatorPid_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> finished_{false};

  // Loop state (root thread only).
  enum class Phase { Collecting, Finishing } phase_ = Phase::Collecting;
  Clock::time_point start_;
  bool anyHello_ = false;
  Deadline firstHelloDeadline_;
  int nranks_ = 0;  // fixed by the first joined rank; 0 while nobody is joined
  int joined_ = 0;
  std::vector<Conn*> byRank_;
  std::list<Conn> conns_;
  Deadline acceptPausedUntil_;
  bool warnedFdLimit_ = false;
  // The table, from complete() on: a rank whose parent failed fetches it here.
  std::shared_ptr<const Bytes> table_;
  std::array<uint8_t, 32> tableDigest_{};
  size_t tablesSent_ = 0, fallbacks_ = 0;
  // Connections closed without a hello (evicted, timed out, not ftccl): said in the error
  // when the rendezvous fails, so a flood is named as the cause.
  size_t droppedWithoutHello_ = 0;
  Deadline floodLoggedAt_;
  size_t evictedSinceLog_ = 0;
};

// Runs a RootService on listenFd (bound to addr) for the rendezvous of `contents`, its
// fanout from FTCCL_BOOTSTRAP_FANOUT; the process's registry (bootstrap.cc) keeps it
// until it finishes or stopAllRoots().
Status startRoot(net::Fd listenFd, const net::SockAddr& addr, const UniqueIdContents& contents,
                 int timeoutMs, std::string origin);

}  // namespace bootstrap
}  // namespace ftccl
