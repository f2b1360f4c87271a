#include "health/health_service.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <vector>

#include "util/crypto.h"
#include "util/fault_injection.h"
#include "util/log.h"
#include "util/net/socket.h"

namespace ftccl {
namespace {

using net::Fd;
using net::SockAddr;

std::string localHost() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return host;
}

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

std::string freshNonce() {
  std::string nonce(kConnectionNonceBytes, '\0');
  if (!crypto::randomBytes(nonce.data(), nonce.size()).isOk()) std::abort();  // no entropy
  return nonce;
}

// The kernel stamps what arrives (SO_TIMESTAMPNS), so a round trip can leave out how
// long heartbeats and acks sat unread until a tick: without it the measured round trip
// was the tick (about 11 ms on a link of 50 us), and a slower link could not be seen.
void stampArrivals(int fd) {
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
}

// How long before `tick` (the time the protocol is told it is) the data of this read
// arrived, from its kernel stamp; negative if it came after; 0 if there is no stamp.
int64_t waitedSince(const msghdr& header, HealthTime tick) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&header); c != nullptr;
       c = CMSG_NXTHDR(const_cast<msghdr*>(&header), c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS) continue;
    if (c->cmsg_len < CMSG_LEN(sizeof(timespec)) || (header.msg_flags & MSG_CTRUNC)) return 0;
    timespec stamp, real;
    std::memcpy(&stamp, CMSG_DATA(c), sizeof(stamp));
    clock_gettime(CLOCK_REALTIME, &real);  // the kernel stamps in real time
    HealthTime steady = HealthClock::now();
    int64_t age = (real.tv_sec - stamp.tv_sec) * 1000000000LL + (real.tv_nsec - stamp.tv_nsec);
    if (age < 0 || age > 60 * 1000000000LL) return 0;  // a clock step is no measurement
    return age - std::chrono::duration_cast<std::chrono::nanoseconds>(steady - tick).count();
  }
  return 0;
}

// "127.0.0.1:4242" or "[::1]:4242" -> address.
bool parseKey(const ProcessKey& key, SockAddr* addr) {
  size_t colon = key.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = key.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  int port = std::atoi(key.c_str() + colon + 1);
  if (port <= 0 || port > 65535) return false;
  return net::numericSockAddr(host, static_cast<uint16_t>(port), addr).isOk();
}

}  // namespace

// The socket side: implements HealthNetwork for the protocol and runs the poll loop.
// Every member is guarded by `mutex`, which the thread holds except inside poll().
class HealthService::Driver final : public HealthNetwork {
 public:
  struct Conn {
    Fd fd;
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

  Driver(ProcessKey self) : protocol(self, localHost(), getpid(), this) {
    protocol.requireAuthentication();
  }

  // --- HealthNetwork ---------------------------------------------------------------
  void send(const ProcessKey& to, const HealthMessage& message) override {
    if (faultDropAll()) return;
    if (message.type() == HealthType::kFailed) {
      // On a connection of its own that closes once sent: it goes to every member, most
      // of which this process keeps no connection to.
      if (Conn* c = open(to, /*monitoring=*/false)) queue(*c, message);
      return;
    }
    if (message.type() == HealthType::kLeave) {
      // On every connection to the peer: whichever one it reads first, the leave comes
      // before the close that follows our exit, so no close is taken for a crash. And
      // on one we opened: a connection the peer opened names it only by its unsealed
      // hello, which anyone can claim.
      bool ours = false;
      for (auto& c : conns) {
        if (c->key == to && c->fd.valid()) {
          queue(*c, message);
          ours = ours || !c->accepted;
        }
      }
      if (!ours) {
        if (Conn* c = open(to, /*monitoring=*/false)) queue(*c, message);
      }
      return;
    }
    if (!message.auth.key) return;  // the protocol found no key for it: not sent
    if (isProbe(message)) {
      queueProbe(to, message);
      return;
    }
    // Agreement messages keep their order on our connection to the peer.
    Conn* c = find(to);
    if (c == nullptr) c = open(to, /*monitoring=*/false);
    if (c != nullptr) queue(*c, message);
  }
  void monitor(const ProcessKey& peer) override {
    for (auto& c : conns) {
      if (c->key == peer && c->monitoring && c->fd.valid()) return;
    }
    open(peer, /*monitoring=*/true);
  }
  void unmonitor(const ProcessKey& peer) override {
    for (auto& c : conns) {
      if (c->key == peer && c->monitoring) {
        c->monitoring = false;
        c->closeWhenFlushed = true;
      }
    }
  }

  // --- connections -------------------------------------------------------------------
  // Only connections we opened: one the peer opened may be a notice carrier it is
  // closing right now, and whatever we write into it would be lost. Our monitoring
  // connection first, else a carrier of ours that is still open.
  Conn* find(const ProcessKey& key) {
    for (auto& c : conns) {
      if (c->key == key && c->fd.valid() && c->monitoring && !c->accepted) return c.get();
    }
    for (auto& c : conns) {
      if (c->key == key && c->fd.valid() && !c->accepted) return c.get();
    }
    return nullptr;
  }

  Conn* open(const ProcessKey& key, bool monitoring, bool verifying = false) {
    SockAddr addr;
    if (!parseKey(key, &addr)) {
      FTCCL_LOG(Error, Health, "cannot parse the health address '{}'", key);
      return nullptr;
    }
    int fd = socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return nullptr;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto c = std::make_unique<Conn>();
    c->fd.reset(fd);
    c->key = key;
    c->monitoring = monitoring;
    c->openedAt = HealthClock::now();
    c->closeWhenFlushed = !monitoring;
    c->verifying = verifying;
    c->out = helloFrame(*c);
    int rc = connect(fd, addr.sa(), addr.length);
    int err = rc != 0 ? errno : 0;
    bool failed = rc != 0 && err != EINPROGRESS;
    c->connecting = rc != 0 && !failed;
    c->established = rc == 0;
    conns.push_back(std::move(c));
    Conn* added = conns.back().get();
    if (failed) connectFailed(*added, err);
    return added;
  }

  // Refused: nobody listens there, the process is gone. Any other error (a reset or an
  // unreachable route while a network namespace's link comes up) is not proof of a
  // crash on a first connect: it is tried again once, as a closed connection is (chaos
  // seed 8668: a healthy rank was expelled during init by a first connect that failed).
  void connectFailed(Conn& c, int err) {
    if (err == ECONNREFUSED || c.verifying) {
      lost(c, err == ECONNREFUSED ? "was refused" : "failed");
      return;
    }
    FTCCL_LOG(Info, Health, "health connection to {} failed to open ({}): trying again", c.key,
              std::strerror(err));
    c.established = true;  // as if it had opened and closed: verifyLosses reopens it
    lost(c);
  }

  std::vector<uint8_t> helloFrame(const Conn& c) {
    HealthHello hello;
    hello.senderKey = protocol.self();
    hello.host = localHost();
    hello.pid = getpid();
    hello.nonce = c.myNonce;
    return encodeHealthMessage(hello);
  }

  // Sealed for the peer's nonce, so it waits for the peer's hello.
  void queue(Conn& c, const HealthMessage& m) {
    if (!c.helloHeard) {
      c.waiting.push_back(m);
      return;
    }
    const size_t start = c.out.size();
    std::vector<uint8_t> frame = encodeHealthMessage(m);
    c.out.insert(c.out.end(), frame.begin(), frame.end());
    SealContext context;
    context.sender = protocol.self();
    context.receiver = c.key;
    context.senderNonce = c.myNonce;
    context.receiverNonce = c.peerNonce;
    context.counter = c.sent++;
    appendSeal(&c.out, start, m.auth, context);
    if (!c.connecting && !flush(c)) lost(c);
  }

  // Checks a received frame's seal. kSealed: *key is the key that made it. kNoKey: this
  // process holds no key of the communicator and epoch it names (a newcomer before its
  // answer, a member not yet in that epoch): the frame is skipped, not believed.
  // kForged: a key of ours is named and the tag is wrong.
  enum class Seal { kSealed, kNoKey, kForged };
  Seal checkSeal(const HealthAuth& auth, const uint8_t* frame, size_t frameBytes,
                 const uint8_t* seal, const Conn& c, std::shared_ptr<const crypto::MacKey>* key) {
    std::vector<std::shared_ptr<const crypto::MacKey>> candidates;
    if (auth.kind == KeyKind::kEpoch) {
      if (auto k = protocol.keys().epochKey(auth.comm, auth.epoch)) candidates.push_back(k);
    } else if (auth.kind == KeyKind::kAttest) {
      if (auto k = protocol.keys().attestKey(auth.comm)) candidates.push_back(k);
    } else {
      for (const auto& [k, secret] : protocol.keys().joinKeys(auth.comm)) candidates.push_back(k);
    }
    if (candidates.empty()) return Seal::kNoKey;
    SealContext context;
    context.sender = c.key;
    context.receiver = protocol.self();
    context.senderNonce = c.peerNonce;
    context.receiverNonce = c.myNonce;
    context.counter = c.received;
    for (auto& k : candidates) {
      if (sealValid(*k, frame, frameBytes, seal, context)) {
        *key = std::move(k);
        return Seal::kSealed;
      }
    }
    return Seal::kForged;
  }

  bool flush(Conn& c) {
    while (!c.out.empty()) {
      ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        c.out.erase(c.out.begin(), c.out.begin() + n);
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return true;
      } else {
        return false;
      }
    }
    flushed.notify_all();
    return true;
  }

  // The connection broke; the protocol hears of it after the current event, not inside
  // one of its own calls. An established monitoring connection that closes is not yet
  // proof of a crash: it is reopened first (verifyLosses), and a refusal (nobody listens:
  // the process is gone), no answer in kVerifyLimit, or a close within it (a dying
  // process's listener may still accept) counts. A live peer whose
  // connection closed for a reason of its own (seen in chaos runs over TCP between
  // network namespaces, before any fault: both monitoring connections of one healthy
  // process closed within 3 ms) is thus not expelled.
  void lost(Conn& c, const char* how = "was closed at once") {
    c.fd.reset();
    flushed.notify_all();
    if (!c.monitoring) return;
    if (c.established && !c.verifying) {
      toVerify.push_back(c.key);
      return;
    }
    if (c.verifying) {
      FTCCL_LOG(Info, Health,
                "health connection to {} closed, and the reconnect {}: taken for "
                "a crash",
                c.key, how);
    }
    lostKeys.push_back(c.key);
  }

  void verifyLosses(HealthTime now) {
    std::vector<ProcessKey> keys;
    keys.swap(toVerify);
    for (const ProcessKey& key : keys) {
      bool stillMonitored = false;
      for (auto& c : conns) stillMonitored = stillMonitored || (c->key == key && c->monitoring);
      if (!stillMonitored) continue;  // unmonitored meanwhile
      FTCCL_LOG(Debug, Health,
                "health connection to {} closed: reconnecting to tell a crash "
                "from a closed connection",
                key);
      if (Conn* again = open(key, /*monitoring=*/true, /*verifying=*/true)) again->openedAt = now;
    }
    for (auto& c : conns) {
      if (!c->verifying || !c->fd.valid() || now - c->openedAt <= kVerifyLimit) continue;
      if (c->connecting) {
        lost(*c, "got no answer in 100 ms");  // the host is gone too
        continue;
      }
      c->verifying = false;
      FTCCL_LOG(Info, Health,
                "health connection to {} closed, but it accepted a new one and "
                "kept it: not taken for a crash",
                c->key);
    }
  }

  // The largest frame (seal included) this connection may send now.
  size_t frameLimit(const Conn& c) const {
    if (!c.helloHeard) return kMaxHelloFrame;
    const bool large = c.proven || protocol.joining();
    return (large ? size_t{kMaxHealthFrame} + 5 : kMaxUnprovenFrame) + kSealBytes;
  }

  void readFrom(Conn& c, HealthTime now) {
    uint8_t buffer[4096];
    bool closed = false;
    // Never more than one frame's worth held: what a fast sender has sent beyond it
    // waits in its socket until the frames before it are handled (the next poll).
    const size_t cap = frameLimit(c);
    while (c.in.size() < cap) {
      const size_t want = std::min(sizeof(buffer), cap - c.in.size());
      ssize_t n = recv(c.fd.get(), buffer, want, MSG_DONTWAIT);
      if (n > 0) {
        if (!faultDropAll()) c.in.insert(c.in.end(), buffer, buffer + n);
        if (static_cast<size_t>(n) < want) break;  // drained: skip the EAGAIN call
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n < 0 && errno == EINTR) continue;
      closed = true;  // by the peer, or failed: but first read what it said (a leave)
      break;
    }
    if (!c.proven) {
      boundUnprovenBytes();
      if (!c.fd.valid()) return;
    }
    size_t at = 0;
    for (;;) {
      HealthMessage m;
      size_t used = 0;
      int got = healthFrameBytes(c.in.data() + at, c.in.size() - at, &used);
      uint32_t claimed = 0;
      if (c.in.size() - at >= sizeof(claimed))
        std::memcpy(&claimed, c.in.data() + at, sizeof(claimed));
      if (c.in.size() - at >= sizeof(claimed) && claimed + size_t{5} > frameLimit(c)) {
        FTCCL_LOG(Warn, Health,
                  "health frame from {} ({}): {} bytes, over the {} allowed {}: "
                  "connection dropped",
                  c.key.empty() ? "an unknown peer" : c.key, peerAddress(c), claimed + size_t{5},
                  frameLimit(c),
                  !c.helloHeard ? "for a hello"
                  : c.proven    ? ""
                                : "before it proved a key");
        lost(c);
        return;
      }
      if (got == 0) break;
      const uint8_t* frame = c.in.data() + at;
      // The first frame is the peer's hello, unsealed; every later one is sealed, and is
      // decoded only once its seal verified.
      const bool hello = !c.helloHeard;
      if (got > 0 && !hello && c.in.size() - at - used < kSealBytes) break;  // seal to come
      std::shared_ptr<const crypto::MacKey> key;
      Seal seal = Seal::kForged;
      HealthAuth auth;
      if (got > 0 && !hello && readSeal(frame + used, &auth)) {
        seal = checkSeal(auth, frame, used, frame + used, c, &key);
      }
      size_t decoded = 0;
      if (got > 0 && (hello || seal == Seal::kSealed)) {
        got = decodeHealthMessage(frame, used, &m, &decoded);
      }
      m.auth = auth;
      const HealthHello* peerHello = m.as<HealthHello>();
      const char* why =
          got < 0 ? "corrupt"
          : hello ? (peerHello == nullptr || peerHello->nonce.size() != kConnectionNonceBytes ||
                             peerHello->nonce == c.myNonce
                         ? "not a hello"
                         : nullptr)
          : seal == Seal::kForged ? "not authentic (its seal does not verify)"
          : seal == Seal::kSealed &&
                  (m.type() == HealthType::kHello || isProbe(m) ||
                   (auth.kind == KeyKind::kAttest) != (m.type() == HealthType::kAttest))
              ? "out of place"
              : nullptr;
      if (why != nullptr) {
        FTCCL_LOG(Warn, Health, "health frame from {} ({}): {}: connection dropped",
                  c.key.empty() ? "an unknown peer" : c.key, peerAddress(c), why);
        lost(c);
        return;
      }
      at += used + (hello ? 0 : kSealBytes);
      if (hello) {
        if (c.key.empty()) c.key = peerHello->senderKey;
        c.peerNonce = peerHello->nonce;
        c.helloHeard = true;
        if (!c.accepted) attest(c);
        std::vector<HealthMessage> waiting;
        waiting.swap(c.waiting);
        for (const HealthMessage& w : waiting) {
          if (c.fd.valid()) queue(c, w);  // a failed flush lost the connection: stop
        }
      } else if (seal == Seal::kNoKey) {
        ++c.received;
        FTCCL_LOG(Debug, Health,
                  "skipped a frame from {} under a key this process lacks "
                  "(communicator {:016x}, epoch {})",
                  c.key, crypto::oneWayId(m.auth.comm), m.auth.epoch);
      } else {
        ++c.received;
        c.proven = true;
        m.auth.key = std::move(key);
        if (m.type() != HealthType::kAttest) protocol.onMessage(c.key, m, now);
      }
      if (!c.fd.valid()) return;
    }
    c.in.erase(c.in.begin(), c.in.begin() + at);
    if (closed) lost(c);
  }

  // The first frame on every connection we open: it proves us to the peer at once (a
  // monitoring connection may carry nothing else for a long time; a join answer is
  // larger than what an unproven connection may send).
  void attest(Conn& c) {
    HealthMessage m = HealthAttest{};
    m.auth = protocol.attestFor(c.key);
    if (!m.auth.key) {
      FTCCL_LOG(Debug, Health, "no attestation key for {}: its end may close this connection",
                c.key);
      return;
    }
    queue(c, m);
  }

  size_t unprovenAccepted() const {
    size_t n = 0;
    for (const auto& c : conns) n += c->fd.valid() && c->accepted && !c->proven;
    return n;
  }

  // Closes the oldest accepted connection that proved no key and was accepted at least
  // `grace` ago (false: there is none).
  bool evictOldestUnproven(HealthTime now, std::chrono::milliseconds grace) {
    for (auto& c : conns) {  // in accept order
      if (c->fd.valid() && c->accepted && !c->proven && now - c->openedAt >= grace) {
        c->fd.reset();
        ++evicted;
        return true;
      }
    }
    return false;
  }

  // While the unproven connections hold more than kMaxUnprovenBytes, the one holding
  // most is closed.
  void boundUnprovenBytes() {
    for (;;) {
      size_t held = 0;
      Conn* largest = nullptr;
      for (auto& c : conns) {
        if (!c->fd.valid() || c->proven) continue;
        held += c->in.size();
        if (largest == nullptr || c->in.size() > largest->in.size()) largest = c.get();
      }
      if (held <= kMaxUnprovenBytes || largest == nullptr) return;
      largest->fd.reset();
      ++evicted;
    }
  }

  void logFlood(HealthTime now) {
    if (evicted == 0 && acceptFailures == 0) return;
    if (now - floodLoggedAt < kFloodLogEvery && floodLoggedAt != HealthTime{}) return;
    floodLoggedAt = now;
    FTCCL_LOG(Warn, Health,
              "health listener {}: closed {} connection(s) that proved no key of ours (over "
              "{} at once, {} MiB held, or none within {} s), and accept failed {} time(s){}{}: "
              "strangers flooding this port?",
              protocol.self(), evicted, kMaxUnproven, kMaxUnprovenBytes >> 20,
              std::chrono::duration_cast<std::chrono::seconds>(kProofLimit).count(), acceptFailures,
              acceptFailures ? " (last: " : "",
              acceptFailures ? std::string(std::strerror(lastAcceptErrno)) + ")" : "");
    evicted = 0;
    acceptFailures = 0;
  }

  void acceptAll(HealthTime now) {
    size_t unproven = unprovenAccepted();
    for (int accepted = 0; accepted < kAcceptsPerWake; ++accepted) {
      int fd = accept4(listenFd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        const int err = errno;
        if (err == EINTR || err == ECONNABORTED) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) {
          acceptPause = std::chrono::milliseconds(0);
          return;
        }
        // Out of descriptors or memory: make room from the strangers and pause, not spin.
        ++acceptFailures;
        lastAcceptErrno = err;
        acceptPause = std::clamp(acceptPause * 2, std::chrono::milliseconds(kAcceptPauseMin),
                                 std::chrono::milliseconds(kAcceptPauseMax));
        acceptPausedUntil = now + acceptPause;
        evictOldestUnproven(now, std::chrono::milliseconds(0));
        logFlood(now);
        return;
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      auto c = std::make_unique<Conn>();
      c->fd.reset(fd);
      c->accepted = true;
      c->established = true;
      c->openedAt = HealthClock::now();
      c->out = helloFrame(*c);  // the peer seals what it sends for our nonce
      Conn& added = *c;
      conns.push_back(std::move(c));
      if (!flush(added)) lost(added);
      if (++unproven > kMaxUnproven && evictOldestUnproven(now, kProofGrace)) --unproven;
    }
  }

  static std::string peerAddress(const Conn& c) {
    SockAddr peer;
    peer.length = sizeof(peer.storage);
    if (!c.fd.valid() || getpeername(c.fd.get(), peer.sa(), &peer.length) != 0) return "?";
    return peer.toString();
  }

  // --- probes --------------------------------------------------------------------------
  // Queued during an event, sent together by flushProbes() before the thread sleeps.
  void queueProbe(const ProcessKey& to, const HealthMessage& message) {
    auto known = probeAddresses.find(to);
    if (known == probeAddresses.end()) {
      SockAddr addr;
      if (!parseKey(to, &addr)) return;
      known = probeAddresses.emplace(to, addr).first;
    }
    probesOut.push_back({known->second, encodeSealedProbe(probeHello, message, to)});
  }

  // Our bound socket for our address family; for a peer of another (an IPv6-only host
  // among IPv4 ones) an unbound one of its family: the sender's key is in the datagram.
  int probeSocketFor(int family) {
    if (family == probeFamily) return probeFd.get();
    Fd& fd = probeFdByFamily[family];
    if (!fd.valid()) fd.reset(socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    return fd.get();
  }

  // Consecutive probes of one address family go out in one sendmmsg call.
  void flushProbes() {
    for (size_t at = 0; at < probesOut.size();) {
      int family = probesOut[at].to.family();
      mmsghdr batch[kProbeBatch];
      iovec chunks[kProbeBatch];
      size_t n = 0;
      for (; n < kProbeBatch && at + n < probesOut.size(); ++n) {
        OutgoingProbe& p = probesOut[at + n];
        if (p.to.family() != family) break;
        chunks[n] = {p.datagram.data(), p.datagram.size()};
        batch[n] = {};
        batch[n].msg_hdr.msg_name = p.to.sa();
        batch[n].msg_hdr.msg_namelen = p.to.length;
        batch[n].msg_hdr.msg_iov = &chunks[n];
        batch[n].msg_hdr.msg_iovlen = 1;
      }
      int fd = probeSocketFor(family);
      int sent = fd < 0 ? -1 : sendmmsg(fd, batch, static_cast<unsigned>(n), MSG_DONTWAIT);
      if (sent > 0) {
        at += static_cast<size_t>(sent);
      } else if (sent < 0 && errno == EINTR) {
        continue;
      } else if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        break;  // the send buffer is full: the rest are skipped, as if lost
      } else {
        ++at;  // this one cannot go (no route, no socket): the others still do
      }
    }
    probesOut.clear();
  }

  // At each tick: every probe that arrived since the last one, in batches.
  void drainProbes(HealthTime now) {
    probesDrainedAt = now;
    for (int batches = 0; batches < kProbeBatchesPerWake; ++batches) {
      mmsghdr batch[kProbeBatch];
      iovec chunks[kProbeBatch];
      alignas(cmsghdr) char control[kProbeBatch][CMSG_SPACE(sizeof(timespec))];
      for (int i = 0; i < kProbeBatch; ++i) {
        chunks[i] = {probeBuffers[i], kMaxProbeBytes};
        batch[i] = {};
        batch[i].msg_hdr.msg_iov = &chunks[i];
        batch[i].msg_hdr.msg_iovlen = 1;
        batch[i].msg_hdr.msg_control = control[i];
        batch[i].msg_hdr.msg_controllen = sizeof(control[i]);
      }
      int got = recvmmsg(probeFd.get(), batch, kProbeBatch, MSG_DONTWAIT, nullptr);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return;
      bool flood = got == kProbeBatch;
      for (int i = 0; i < got; ++i) {
        const bool taken = !(batch[i].msg_hdr.msg_flags & MSG_TRUNC) &&
                           onProbe(probeBuffers[i], batch[i].msg_len, batch[i].msg_hdr, now);
        flood = flood || !taken;
      }
      if (flood) probeFloodUntil = now + kProbeFloodWatch;
      if (got < kProbeBatch) return;
    }
  }

  // A heartbeat or an ack; any other datagram is dropped (false).
  bool onProbe(const uint8_t* data, size_t size, const msghdr& header, HealthTime now) {
    if (faultDropAll()) return true;
    std::string from;
    HealthMessage probe;
    const HealthKeys& keys = protocol.keys();
    if (!decodeSealedProbe(
            data, size, protocol.self(), &from, &probe,
            [&](uint64_t comm, uint32_t epoch) { return keys.epochKey(comm, epoch); })) {
      return false;  // not a probe of ours (a stranger's, a stale process's of an old key)
    }
    probe.waitedNs = waitedSince(header, now);
    if (!probesFrom.count(from)) {  // state only for the peers we monitor; looked up once
      for (const auto& c : conns) {
        if (c->monitoring && c->key == from) {
          probesFrom.insert(from);
          break;
        }
      }
    }
    protocol.onMessage(from, probe, now);
    return true;
  }

  // A monitored peer whose TCP connection is up but from which no probe ever came:
  // most likely a firewall that passes TCP and drops UDP, and the peer will be declared
  // failed by silence. Said once per peer, before that happens.
  void warnIfNoProbes(HealthTime now) {
    for (auto& c : conns) {
      if (!c->monitoring || c->connecting || !c->fd.valid() || probesFrom.count(c->key)) continue;
      if (now - c->openedAt < kNoProbeWarning || !noProbeWarned.insert(c->key).second) continue;
      FTCCL_LOG(Warn, Health,
                "no health probe (UDP) has come from {} in {} ms although its TCP connection "
                "is up: is UDP to that port filtered, or is the process hung?",
                c->key,
                std::chrono::duration_cast<std::chrono::milliseconds>(now - c->openedAt).count());
    }
  }

  void reportLosses(HealthTime now) {
    verifyLosses(now);
    while (!lostKeys.empty()) {
      ProcessKey key = lostKeys.back();
      lostKeys.pop_back();
      protocol.onConnectionLost(key, now);
    }
  }

  void reap(HealthTime now) {
    for (auto& c : conns) {
      if (c->fd.valid() && c->accepted && !c->proven && now - c->openedAt > kProofLimit) {
        c->fd.reset();
        ++evicted;
        continue;
      }
      if (c->fd.valid() && !c->accepted && !c->helloHeard && !c->connecting &&
          now - c->openedAt > kHelloLimit) {
        FTCCL_LOG(Info, Health, "health connection {} ({}): no hello in {} s: closed",
                  c->key.empty() ? "from an unknown peer" : "to " + c->key, peerAddress(*c),
                  std::chrono::duration_cast<std::chrono::seconds>(kHelloLimit).count());
        lost(*c);
      }
    }
    logFlood(now);
    conns.erase(std::remove_if(conns.begin(), conns.end(),
                               [](const std::unique_ptr<Conn>& c) {
                                 return !c->fd.valid() || (c->closeWhenFlushed && !c->connecting &&
                                                           c->out.empty() && c->waiting.empty());
                               }),
                conns.end());
  }

  void wakeUp() {
    char byte = 1;
    ssize_t ignored = write(wake[1], &byte, 1);
    (void)ignored;
  }

  struct OutgoingProbe {
    SockAddr to;
    std::vector<uint8_t> datagram;
  };

  std::mutex mutex;
  std::condition_variable flushed;
  bool stopping = false;
  bool crashed = false;  // injectCrash(): nothing is sent or heard any more
  Fd listenFd;
  Fd probeFd;  // UDP, on the listener's address and port
  int probeFamily = AF_INET;
  std::vector<uint8_t> probeHello;  // our hello: the first frame of every probe
  std::map<ProcessKey, SockAddr> probeAddresses;
  std::vector<OutgoingProbe> probesOut;
  std::set<ProcessKey> probesFrom, noProbeWarned;
  std::map<int, Fd> probeFdByFamily;  // unbound, for peers of another address family
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

Status HealthService::create(std::shared_ptr<HealthService>* out, const std::string& rootHost,
                             uint16_t rootPort) {
  std::shared_ptr<HealthService> service(new HealthService());
  FTCCL_CHECK(service->start(rootHost, rootPort));
  *out = std::move(service);
  return Status::ok();
}

void HealthService::injectCrash() {
  {
    std::lock_guard<std::mutex> lock(driver_->mutex);
    driver_->crashed = true;
  }
  driver_->wakeUp();
}

Status HealthService::acquire(std::shared_ptr<HealthService>* out, const std::string& rootHost,
                              uint16_t rootPort) {
  static std::mutex mutex;
  static std::weak_ptr<HealthService> current;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto existing = current.lock()) {
    *out = existing;
    return Status::ok();
  }
  std::shared_ptr<HealthService> service(new HealthService());
  FTCCL_CHECK(service->start(rootHost, rootPort));
  current = service;
  *out = service;
  return Status::ok();
}

// The TCP listener on a free port, and the UDP probe socket on the same address and
// port number (so a process's key names both); another port if that one is taken for UDP.
static Status listenForHealth(Fd* listenFd, Fd* probeFd, SockAddr* bound, std::string* iface,
                              const SockAddr* toward) {
  SockAddr where;
  FTCCL_CHECK(net::chooseListenAddress(&where, iface, toward));
  where.setPort(0);
  for (int attempt = 0;; ++attempt) {
    FTCCL_CHECK(net::listenOn(where, /*reuseAddr=*/false, listenFd, bound));
    int fd = socket(bound->family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return systemError(std::string("health probe socket: ") + strerror(errno));
    probeFd->reset(fd);
    if (bind(fd, bound->sa(), bound->length) == 0) break;
    if (errno != EADDRINUSE || attempt == 16) {
      return systemError("cannot bind the health probe socket to " + bound->toString() + ": " +
                         strerror(errno));
    }
  }
  stampArrivals(probeFd->get());
  setsockopt(probeFd->get(), SOL_SOCKET, SO_RCVBUF, &kProbeReceiveBuffer,
             sizeof(kProbeReceiveBuffer));
  return Status::ok();
}

// Every frame is sealed: without working HMAC every peer would be declared failed, so
// a broken libcrypto is an error at init, said plainly.
static Status checkCrypto() {
  const crypto::Key zero{};
  crypto::MacKey key(zero);
  crypto::Tag a = key.tag({{"ftccl", 5}});
  crypto::Tag b = key.tag({{"ftccl", 5}});
  if (!key.valid() || a == crypto::Tag{} || a != b || !key.verify({{"ftccl", 5}}, a.data())) {
    return systemError(
        "OpenSSL's HMAC-SHA-256 does not work here: the health channel cannot "
        "seal its frames (is libcrypto 3 installed and its default provider "
        "available?)");
  }
  return Status::ok();
}

Status HealthService::start(const std::string& rootHost, uint16_t rootPort) {
  installFaultHooks();
  FTCCL_CHECK(checkCrypto());
  SockAddr bound, root;
  const bool rootKnown =
      !rootHost.empty() && net::numericSockAddr(rootHost, rootPort, &root).isOk();
  std::string iface;
  Fd listenFd, probeFd;
  FTCCL_CHECK(listenForHealth(&listenFd, &probeFd, &bound, &iface, rootKnown ? &root : nullptr));
  selfKey_ = bound.toString();
  driver_ = std::make_unique<Driver>(selfKey_);
  driver_->listenFd = std::move(listenFd);
  driver_->probeFd = std::move(probeFd);
  driver_->probeFamily = bound.family();
  HealthHello hello;
  hello.senderKey = selfKey_;
  hello.pid = getpid();  // the host travels in the TCP hello only: probes stay small
  driver_->probeHello = encodeHealthMessage(hello);
  if (pipe2(driver_->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    return systemError(std::string("pipe2: ") + strerror(errno));
  }
  thread_ = std::thread([this] { run(); });
  FTCCL_LOG(Info, Health, "health service of pid {} listening on {} ({})", getpid(), selfKey_,
            iface);
  return Status::ok();
}

HealthService::~HealthService() {
  if (!driver_) return;
  {
    std::lock_guard<std::mutex> lock(driver_->mutex);
    driver_->stopping = true;
  }
  driver_->wakeUp();
  if (thread_.joinable()) thread_.join();
  if (driver_->wake[0] >= 0) close(driver_->wake[0]);
  if (driver_->wake[1] >= 0) close(driver_->wake[1]);
}

HealthService::RegistrationId HealthService::add(HealthRegistration registration) {
  std::lock_guard<std::mutex> lock(driver_->mutex);
  RegistrationId id = driver_->protocol.add(std::move(registration), HealthClock::now());
  driver_->wakeUp();
  return id;
}

void HealthService::allowJoin(RegistrationId id, std::vector<uint8_t> secret) {
  std::lock_guard<std::mutex> lock(driver_->mutex);
  driver_->protocol.allowJoin(id, std::move(secret));
}

void HealthService::sendRecovery(const ProcessKey& to, uint64_t commKey,
                                 const RecoveryMessage& message) {
  std::lock_guard<std::mutex> lock(driver_->mutex);
  driver_->protocol.sendRecovery(to, commKey, message);
  driver_->wakeUp();
}

void HealthService::requestProgress(RegistrationId id) {
  std::lock_guard<std::mutex> lock(driver_->mutex);
  driver_->protocol.requestProgress(id);
  driver_->wakeUp();
}

std::vector<MemberProgress> HealthService::progressOf(RegistrationId id) {
  std::lock_guard<std::mutex> lock(driver_->mutex);
  return driver_->protocol.progressOf(id, HealthClock::now());
}

std::vector<PeerHealth> HealthService::peerHealth(RegistrationId id) {
  std::lock_guard<std::mutex> lock(driver_->mutex);
  return driver_->protocol.peerHealth(id);
}

HealthProtocol::AgreementView HealthService::agreementView(RegistrationId id) {
  std::lock_guard<std::mutex> lock(driver_->mutex);
  return driver_->protocol.agreementView(id);
}

void HealthService::remove(RegistrationId id, bool orderly, int flushWaitMs) {
  Driver& d = *driver_;
  std::unique_lock<std::mutex> lock(d.mutex);
  HealthTime now = HealthClock::now();
  if (orderly) {
    // Learn who is behind connections whose hello is still unread, so that the leave
    // goes on every connection of each member (the one it sees close first included).
    for (size_t i = 0; i < d.conns.size(); ++i) {
      Driver::Conn& c = *d.conns[i];
      if (c.key.empty() && c.fd.valid()) d.readFrom(c, now);
    }
  }
  d.protocol.remove(id, orderly, now);
  d.wakeUp();
  if (orderly) {
    // Bounded: a dead peer's full socket must not stall destroy. A connection still
    // being set up counts too: it may carry the only LEAVE a waiting spare gets from
    // this rank (spares hear only from the rank they monitor; over real links the
    // connect takes longer than this process takes to exit, and a spare then waited
    // forever).
    d.flushed.wait_for(lock, std::chrono::milliseconds(flushWaitMs), [&] {
      for (auto& c : d.conns) {
        if (c->fd.valid() && (!c->out.empty() || !c->waiting.empty())) return false;
      }
      return true;
    });
  }
}

void HealthService::run() {
  pthread_setname_np(pthread_self(), "ftccl-health");  // for top, /proc and debuggers
  // Heartbeats must not wait behind busy ranks on an oversubscribed host: ask for a
  // higher priority for this (nearly always sleeping) thread. Without the privilege
  // it stays at the default, which is also fine.
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), -10) != 0) {
    FTCCL_LOG(Debug, Health, "health thread keeps the default priority: {}", strerror(errno));
  }
  Driver& d = *driver_;
  std::vector<pollfd> fds;
  std::vector<Driver::Conn*> polled;
  std::unique_lock<std::mutex> lock(d.mutex);
  HealthTime nextTick = HealthClock::now();
  while (!d.stopping) {
    if (d.crashed) {  // as a process that died: its sockets close, its thread is gone
      d.conns.clear();
      d.listenFd = Fd();
      d.probeFd = Fd();
      return;
    }
    HealthTime now = HealthClock::now();
    d.protocol.setDropAll(faultDropAll());
    if (now >= nextTick) {
      d.drainProbes(now);
      d.warnIfNoProbes(now);
      nextTick = d.protocol.onTick(now);
    }
    d.reportLosses(now);
    d.reap(now);
    d.flushProbes();
    const bool acceptNow = now >= d.acceptPausedUntil;
    const bool probeFlood = now < d.probeFloodUntil;
    if (probeFlood && now - d.probesDrainedAt >= kFloodDrainEvery) d.drainProbes(now);
    fds.assign({{d.wake[0], POLLIN, 0}, {acceptNow ? d.listenFd.get() : -1, POLLIN, 0}});
    polled.clear();
    for (auto& c : d.conns) {
      short events = POLLIN;
      if (c->connecting || !c->out.empty()) events |= POLLOUT;
      fds.push_back({c->fd.get(), events, 0});
      polled.push_back(c.get());
    }
    constexpr size_t kFixedFds = 2;
    int timeoutMs = static_cast<int>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(nextTick - now).count() + 1));
    if (probeFlood) timeoutMs = std::min(timeoutMs, 1);
    lock.unlock();
    int ready = poll(fds.data(), fds.size(), timeoutMs);
    lock.lock();
    if (d.stopping || ready <= 0) continue;
    now = HealthClock::now();
    if (fds[0].revents) {
      char drain[64];
      while (read(d.wake[0], drain, sizeof(drain)) > 0) {
      }
      nextTick = now;  // a registration changed: the probe interval may have too
    }
    if (fds[1].revents & POLLIN) d.acceptAll(now);
    for (size_t i = 0; i < polled.size(); ++i) {
      Driver::Conn& c = *polled[i];
      short ev = fds[i + kFixedFds].revents;
      if (!ev || !c.fd.valid()) continue;
      if (c.connecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          d.connectFailed(c, err);
          continue;
        }
        if (!(ev & POLLOUT)) continue;
        c.connecting = false;
        c.established = true;
      }
      if (ev & (POLLIN | POLLHUP | POLLERR)) d.readFrom(c, now);
      if (c.fd.valid() && !d.flush(c)) d.lost(c);
    }
    d.reportLosses(now);
  }
  d.conns.clear();
}

}  // namespace ftccl
