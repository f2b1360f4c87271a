// The health service's socket side (health_service.h), private to the files that define
// it: HealthService::Driver is the network the protocol sees (HealthNetwork: TCP
// connections and UDP probes), and the service's thread runs its poll loop.
//   health_service.cc              the service: start, stop, its API, the thread's loop
//   health_service_connections.cc  the network the protocol sees, and lost connections
//   health_service_frames.cc       what a connection reads: frame limits, seals, dispatch
//   health_service_admission.cc    accepting connections, bounds on the unproven ones
//   health_service_probes.cc       heartbeats and acks over UDP
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "health/health_protocol.h"
#include "health/health_service.h"
#include "util/net/socket.h"

namespace ftccl {

// Heartbeats and acks are probes: UDP datagrams from and to the port number of each
// process's TCP listener, read in one batch at each tick and never waking the thread
// in between. On TCP each heartbeat cost a send and a read that sent a TCP ack back
// through the loopback stack: the thread used 1.2% of a core per process here, and
// ranks sharing cores paid for its wakeups. A lost probe costs nothing (a silence
// must last a failure timeout, 100 probes); the TCP connections stay, idle, for what
// they do best: their close is a crash, seen at once (once a reconnect is refused:
// verifyLosses), and they carry the few ordered messages (FAILED, LEAVE, agreement),
// each of which wakes the receiver.
constexpr size_t kMaxProbeBytes = 1024;  // a hello with the sender's key, and a probe
constexpr int kProbeBatch = 32;          // datagrams per recvmmsg / sendmmsg call
constexpr auto kNoProbeWarning = std::chrono::milliseconds(500);
// A reconnect to a live process is answered by its kernel, busy or not: within a round
// trip. Longer means the host is gone too.
constexpr auto kVerifyLimit = std::chrono::milliseconds(100);
// A connection we opened whose peer has not said hello by then is closed: it can carry
// nothing (every frame is sealed for the peer's nonce), and it must not hold a descriptor.
constexpr auto kHelloLimit = std::chrono::seconds(10);
// Bounded whatever arrives. A connection is "proven" once a frame on it verified: a key
// holder is behind it (every connection we open starts with a kAttest). Until then what
// it may make us hold is small: a hello of kMaxHelloFrame, then frames of
// kMaxUnprovenFrame, kMaxUnprovenBytes over all such connections (the one holding most
// goes), and kProofLimit to prove itself. Past kMaxUnproven of them the oldest goes, once
// it had kProofGrace: a real peer proves itself within a round trip of its accept, and
// when thousands report to a coordinator at once none of them is lost for the cap. Out
// of descriptors (EMFILE), the oldest goes at once.
constexpr size_t kMaxHelloFrame = 1024;
constexpr size_t kMaxUnprovenFrame = size_t{64} << 10;
constexpr size_t kMaxUnprovenBytes = size_t{8} << 20;
constexpr size_t kMaxUnproven = 64;
constexpr auto kProofGrace = std::chrono::milliseconds(1000);
constexpr auto kProofLimit = std::chrono::seconds(5);
// accept() failing for want of descriptors or memory (EMFILE...) pauses accepting, for
// twice as long each time in a row up to a second, instead of spinning on a listener
// that stays readable.
constexpr auto kAcceptPauseMin = std::chrono::milliseconds(10);
constexpr auto kAcceptPauseMax = std::chrono::milliseconds(1000);
// Resource warnings (evictions, accept failures) are said at most this often, with
// counts: a flood must not also flood the log.
constexpr auto kFloodLogEvery = std::chrono::seconds(10);
// Datagrams that are not probes of ours (or a full batch at a tick) mean a flood: the
// probe socket is then read every kFloodDrainEvery, not only at ticks, for this long,
// so the flood cannot fill the socket's buffer and push our peers' probes out. Not on
// every arrival: at 50,000 forged datagrams a second, one wake-up each took the health
// threads from 5% of a core to 37%; the buffer holds far more than 1 ms of such a flood.
constexpr auto kProbeFloodWatch = std::chrono::seconds(1);
constexpr auto kFloodDrainEvery = std::chrono::milliseconds(1);
constexpr int kProbeReceiveBuffer = 1 << 20;  // asked for; the kernel caps it (rmem_max)
// Work per wake-up on one socket is bounded too: a sender faster than the thread (a
// connect or datagram flood) must not keep it from its ticks, whose heartbeats are the
// rank's sign of life (hostile_peer: an accept loop that never met EAGAIN silenced a
// rank for 1 s).
constexpr int kAcceptsPerWake = 64;
constexpr int kProbeBatchesPerWake = 32;

// The socket side: implements HealthNetwork for the protocol and runs the poll loop.
// Every member is guarded by `mutex`, which the thread holds except inside poll().
class HealthService::Driver final : public HealthNetwork {
 public:
  struct Conn {
    net::Fd fd;
    ProcessKey key;                 // known at once when we opened it, after kHello if not
    bool monitoring = false;        // opened by monitor(): its loss is a suspicion
    bool connecting = false;        // non-blocking connect in flight
    bool closeWhenFlushed = false;  // a notice carrier, or no longer monitored
    bool accepted = false;          // the peer opened it (it may close it at any time)
    HealthTime openedAt{};          // monitoring: for the warning about missing probes
    bool established = false;       // our connect completed (or the peer opened it)
    bool verifying = false;         // reopened after a close, less than kVerifyLimit ago
    bool proven = false;            // a frame on it verified: a key holder is behind it
    std::vector<uint8_t> in, out;
    // Authentication (health_auth.h): our nonce (in our hello), the peer's (from its
    // hello: until then what we send waits), and each direction's frame count.
    std::string myNonce = freshNonce(), peerNonce;
    bool helloHeard = false;
    uint64_t sent = 0, received = 0;
    std::vector<HealthMessage> waiting;
  };

  Driver(ProcessKey self);

  // --- HealthNetwork (health_service_connections.cc) ---------------------------------
  void send(const ProcessKey& to, const HealthMessage& message) override;
  void monitor(const ProcessKey& peer) override;
  void unmonitor(const ProcessKey& peer) override;

  // --- connections (health_service_connections.cc) -----------------------------------
  Conn* find(const ProcessKey& key);
  Conn* open(const ProcessKey& key, bool monitoring, bool verifying = false);
  void connectFailed(Conn& c, int err);
  std::vector<uint8_t> helloFrame(const Conn& c);
  // A connection on a fresh socket (either end), Nagle off: frames are small and urgent.
  static std::unique_ptr<Conn> newConn(int fd);
  void queue(Conn& c, const HealthMessage& m);
  bool flush(Conn& c);
  void lost(Conn& c, const char* how = "was closed at once");
  void verifyLosses(HealthTime now);
  void reportLosses(HealthTime now);
  void wakeUp();
  static std::string localHost();
  static std::string freshNonce();
  static bool parseKey(const ProcessKey& key, net::SockAddr* addr);

  // --- reading frames (health_service_frames.cc) -------------------------------------
  // Checks a received frame's seal. kSealed: *key is the key that made it. kNoKey: this
  // process holds no key of the communicator and epoch it names (a newcomer before its
  // answer, a member not yet in that epoch): the frame is skipped, not believed.
  // kForged: a key of ours is named and the tag is wrong.
  enum class Seal { kSealed, kNoKey, kForged };
  Seal checkSeal(const HealthAuth& auth, const uint8_t* frame, size_t frameBytes,
                 const uint8_t* seal, const Conn& c, std::shared_ptr<const crypto::MacKey>* key);
  size_t frameLimit(const Conn& c) const;
  void readFrom(Conn& c, HealthTime now);
  void attest(Conn& c);

  // --- accepting, and bounds on unproven connections (health_service_admission.cc) --
  size_t unprovenAccepted() const;
  bool evictOldestUnproven(HealthTime now, std::chrono::milliseconds grace);
  void boundUnprovenBytes();
  void logFlood(HealthTime now);
  void acceptAll(HealthTime now);
  void reap(HealthTime now);
  static std::string peerAddress(const Conn& c);

  // --- probes (health_service_probes.cc) ---------------------------------------------
  void queueProbe(const ProcessKey& to, const HealthMessage& message);
  int probeSocketFor(int family);
  void flushProbes();
  void drainProbes(HealthTime now);
  bool onProbe(const uint8_t* data, size_t size, const msghdr& header, HealthTime now);
  void warnIfNoProbes(HealthTime now);

  struct OutgoingProbe {
    net::SockAddr to;
    std::vector<uint8_t> datagram;
  };

  std::mutex mutex;
  std::condition_variable flushed;
  bool stopping = false;
  bool crashed = false;  // injectCrash(): nothing is sent or heard any more
  net::Fd listenFd;
  net::Fd probeFd;  // UDP, on the listener's address and port
  int probeFamily = AF_INET;
  std::vector<uint8_t> probeHello;  // our hello: the first frame of every probe
  std::map<ProcessKey, net::SockAddr> probeAddresses;
  std::vector<OutgoingProbe> probesOut;
  std::set<ProcessKey> probesFrom, noProbeWarned;
  std::map<int, net::Fd> probeFdByFamily;  // unbound, for peers of another address family
  uint8_t probeBuffers[kProbeBatch][kMaxProbeBytes];
  int wake[2] = {-1, -1};
  std::vector<std::unique_ptr<Conn>> conns;
  std::vector<ProcessKey> lostKeys;
  std::vector<ProcessKey> toVerify;  // lost established monitoring connections
  // Bounded resources under a flood (see kMaxUnproven and kProbeFloodWatch).
  HealthTime acceptPausedUntil{}, probeFloodUntil{}, probesDrainedAt{}, floodLoggedAt{};
  std::chrono::milliseconds acceptPause{0};
  size_t evicted = 0, acceptFailures = 0;
  int lastAcceptErrno = 0;
  HealthProtocol protocol;
};

}  // namespace ftccl
