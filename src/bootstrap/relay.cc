// The table's relay: the tree, a rank's listener answering its children, and a child's
// fetch from its parent. See relay.h.
#include "bootstrap/relay.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "util/crypto.h"
#include "util/env.h"
#include "util/log.h"

namespace ftccl {
namespace bootstrap {

using net::Clock;
using net::Deadline;

Status relayFanout(int* fanout) {
  int64_t value = kDefaultRelayFanout;
  FTCCL_CHECK(envInt("FTCCL_BOOTSTRAP_FANOUT", 0, kMaxRelayFanout, &value));
  *fanout = static_cast<int>(value);
  return Status::ok();
}

RelayTree::RelayTree(const std::vector<bool>& serves, int fanout)
    : parent_(serves.size(), -1), children_(serves.size(), 0), depth_(serves.size(), 0) {
  if (fanout <= 0) return;
  const size_t f = static_cast<size_t>(fanout);
  for (size_t i = f; i < serves.size(); ++i) {
    // The nearest ancestor that serves; its own parent was settled before (smaller index).
    size_t p = i / f - 1;
    while (!serves[p] && p >= f) p = p / f - 1;
    // None, a full one (it adopted a skipped ancestor's children) or too deep: the root.
    if (!serves[p] || children_[p] >= f || depth_[p] + 1 > kMaxRelayDepth) continue;
    parent_[i] = static_cast<int>(p);
    ++children_[p];
    depth_[i] = depth_[p] + 1;
  }
}

uint32_t relayHopMs(size_t tableBytes, int fanout) {
  const double sendsMs = static_cast<double>(tableBytes) * std::max(fanout, 1) / 2.5e6;
  return static_cast<uint32_t>(std::min<double>(kRelayHopMs + sendsMs, kMaxRelayHopMs));
}

Deadline relayWaitEnd(Clock::time_point roleAt, const Role& role) {
  return roleAt + std::chrono::milliseconds(int64_t{role.hopMs} * role.depth);
}

Deadline relayServeEnd(Clock::time_point roleAt, const Role& role) {
  return roleAt +
         std::chrono::milliseconds(int64_t{role.hopMs} * (role.depth + 1) + kRelayConnectMs);
}

Status RelayServer::open(net::SockAddr local) {
  local.setPort(0);
  net::SockAddr bound;
  FTCCL_CHECK(net::listenOn(local, /*reuseAddr=*/false, &listen_, &bound));
  address_ = bound.toString();
  return Status::ok();
}

uint32_t RelayServer::serve(const TableSource& table, uint32_t children, uint64_t nonce,
                            const std::array<uint8_t, 32>& digest, const uint8_t secret[16],
                            Deadline until, const net::Cancelled& cancelled) {
  uint32_t answered = 0;
  std::vector<net::Fd> admitted;  // proven, waiting for this rank's own table
  while (listen_.valid() && answered < children && Clock::now() < until &&
         !(cancelled && cancelled())) {
    const std::shared_ptr<const std::vector<uint8_t>> ready = table();
    if (ready) {
      for (net::Fd& child : admitted) answered += sendTable(child.get(), *ready, until, cancelled);
      admitted.clear();
      if (answered >= children) break;
    }
    // Admitted children wait for our table: it is looked for every millisecond, not every
    // 20 (each level of the tree would add the difference).
    const int slice = admitted.empty() ? net::kCancelCheckMs : 1;
    pollfd p{listen_.get(), POLLIN, 0};
    if (::poll(&p, 1, std::min(net::msUntil(until), slice)) <= 0) continue;
    net::Fd conn(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!conn.valid() || !admit(conn.get(), nonce, digest, secret, until, cancelled)) continue;
    if (ready) {
      answered += sendTable(conn.get(), *ready, until, cancelled);
    } else {
      admitted.push_back(std::move(conn));
    }
  }
  listen_.reset();
  return answered;
}

// Our challenge at once (a child takes a parent that does not answer it for a dead one),
// then its fetch, proving the secret for it. A stranger, a garbled fetch or one of another
// rendezvous is dropped; each step is bounded, so one idle connection delays the others
// by at most kRelayFetchReadMs.
bool RelayServer::admit(int fd, uint64_t nonce, const std::array<uint8_t, 32>& digest,
                        const uint8_t secret[16], Deadline until, const net::Cancelled& cancelled) {
  uint8_t challenge[kChallengeBytes];
  if (!crypto::randomBytes(challenge, sizeof(challenge)).isOk()) return false;
  const Deadline step =
      std::min(until, Clock::now() + std::chrono::milliseconds(kRelayFetchReadMs));
  const std::vector<uint8_t> hello = encodeChallenge(challenge);
  if (!net::sendAll(fd, hello.data(), hello.size(), step, cancelled).isOk()) return false;
  FrameHeader header;
  std::vector<uint8_t> frame;
  if (!readOneFrame(fd, maxBodyBytes(FrameType::Fetch), step, cancelled, &header, &frame).isOk() ||
      header.type != FrameType::Fetch) {
    return false;
  }
  uint64_t fetchNonce = 0;
  int32_t rank = -1;
  if (!fetchProven(frame.data() + kFrameHeaderBytes, header.length, secret, challenge, digest,
                   &fetchNonce, &rank) ||
      fetchNonce != nonce) {
    FTCCL_LOG(Warn, Bootstrap, "bootstrap relay {}: refused a fetch without proof", address_);
    return false;
  }
  return true;
}

bool RelayServer::sendTable(int fd, const std::vector<uint8_t>& table, Deadline until,
                            const net::Cancelled& cancelled) {
  // At no less than 50 MB/s, on top of a round trip's worth of slack.
  const auto sendMs = std::chrono::milliseconds(kRelayFetchReadMs + table.size() / 50000);
  Status sent = net::sendAll(fd, table.data(), table.size(), std::min(until, Clock::now() + sendMs),
                             cancelled);
  if (!sent.isOk()) {
    FTCCL_LOG(Info, Bootstrap, "bootstrap relay {}: the table did not reach a child: {}", address_,
              sent.message());
  }
  return sent.isOk();
}

RelayService::RelayService(RelayServer server, const Role& role, const uint8_t secret[16],
                           Deadline until)
    : server_(std::move(server)),
      children_(role.children),
      nonce_(role.nonce),
      digest_(role.tableDigest),
      until_(until),
      creatorPid_(getpid()) {
  std::memcpy(secret_, secret, sizeof(secret_));
}

RelayService::~RelayService() {
  requestStop();
  join();
}

void RelayService::provide(std::shared_ptr<const std::vector<uint8_t>> table) {
  std::lock_guard<std::mutex> lock(mu_);
  table_ = std::move(table);
}

Status RelayService::start() {
  try {
    thread_ = std::thread([this] {
      const auto table = [this] {
        std::lock_guard<std::mutex> lock(mu_);
        return table_;
      };
      const uint32_t answered = server_.serve(table, children_, nonce_, digest_, secret_, until_,
                                              [this] { return stop_.load(); });
      provide(nullptr);  // up to 1 GiB: not kept until the registry reaps the service
      if (answered < children_) {
        FTCCL_LOG(Info, Bootstrap, "bootstrap relay {}: relayed the table to {} of its {} children",
                  server_.address(), answered, children_);
      }
      finished_.store(true);
    });
  } catch (const std::exception& e) {
    return systemError(std::string("cannot start the bootstrap relay thread: ") + e.what());
  }
  return Status::ok();
}

Status readOneFrame(int fd, size_t cap, Deadline deadline, const net::Cancelled& cancelled,
                    FrameHeader* header, std::vector<uint8_t>* frame) {
  frame->assign(kFrameHeaderBytes, 0);
  size_t got = 0;
  FTCCL_CHECK(net::recvAll(fd, frame->data(), kFrameHeaderBytes, deadline, &got, cancelled));
  FTCCL_CHECK(parseFrameHeader(frame->data(), kFrameHeaderBytes, header));
  if (header->length > cap) {
    return invalidArgument("a bootstrap " + std::to_string(header->length) +
                           "-byte frame where at most " + std::to_string(cap) + " were due");
  }
  // Grows as bytes arrive: a lying length costs no more than what was sent.
  while (frame->size() - kFrameHeaderBytes < header->length) {
    const size_t chunk =
        std::min<size_t>(header->length - (frame->size() - kFrameHeaderBytes), size_t{1} << 20);
    const size_t old = frame->size();
    frame->resize(old + chunk);
    FTCCL_CHECK(net::recvAll(fd, frame->data() + old, chunk, deadline, &got, cancelled));
  }
  return checkFrameBody(*header, frame->data() + kFrameHeaderBytes, header->length);
}

bool isRolesTable(const Role& role, const std::vector<uint8_t>& frame) {
  if (frame.size() != role.tableBytes) return false;
  const std::array<uint8_t, 32> digest = replyDigest(frame);
  return crypto::equalConstantTime(digest.data(), role.tableDigest.data(), digest.size());
}

Status fetchFromParent(const Role& role, int rank, const uint8_t secret[16], Deadline until,
                       const net::Cancelled& cancelled, std::vector<uint8_t>* table) {
  std::string host;
  uint16_t port = 0;
  net::SockAddr addr;
  FTCCL_CHECK(parseHostPort(role.parentAddress, &host, &port));
  FTCCL_CHECK(net::numericSockAddr(host, port, &addr));
  net::Fd fd;
  std::string lastError;
  const Deadline connectBy =
      std::min(until, Clock::now() + std::chrono::milliseconds(kRelayConnectMs));
  Status st = net::connectWithRetry(addr, connectBy, &fd, &lastError, cancelled);
  if (!st.isOk())
    return Status(st.code(), st.message() + (lastError.empty() ? "" : ": " + lastError));
  // A live parent challenges us at once, with its table or without it yet: one that
  // does not is stopped (or drowning), and the root is asked instead.
  FrameHeader header;
  std::vector<uint8_t> frame;
  const Deadline challengeBy =
      std::min(until, Clock::now() + std::chrono::milliseconds(kRelayChallengeMs));
  FTCCL_CHECK(readOneFrame(fd.get(), kChallengeBytes, challengeBy, cancelled, &header, &frame));
  uint8_t challenge[kChallengeBytes];
  if (header.type != FrameType::Challenge ||
      !decodeChallengeBody(frame.data() + kFrameHeaderBytes, header.length, challenge).isOk()) {
    return remoteError("no challenge from the parent");
  }
  const std::vector<uint8_t> fetch =
      encodeFetch(role.nonce, rank, secret, challenge, role.tableDigest);
  FTCCL_CHECK(net::sendAll(fd.get(), fetch.data(), fetch.size(), until, cancelled));
  FTCCL_CHECK(readOneFrame(fd.get(), role.tableBytes - kFrameHeaderBytes, until, cancelled, &header,
                           &frame));
  if (header.type != FrameType::Table || !isRolesTable(role, frame)) {
    return remoteError("its table is not the one the root's role names (digest mismatch)");
  }
  *table = std::move(frame);
  return Status::ok();
}

}  // namespace bootstrap
}  // namespace ftccl
