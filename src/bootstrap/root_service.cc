// Bootstrap root service, its life cycle, loop and decisions: when a hello may join,
// when the rendezvous completes (every rank, or rank 0 and a strict majority at the
// deadline) or fails, and what each joined rank is told. The connections themselves are
// in root_connections.cc; the protocol and its deadlines in root_service.h.
#include "bootstrap/root_service.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "bootstrap/relay.h"
#include "util/log.h"

namespace ftccl {
namespace bootstrap {

using net::Clock;
using net::Deadline;
using net::errnoString;
using net::Fd;
using net::msSince;
using net::msUntil;
using net::SockAddr;

RootService::RootService(Fd listenFd, const SockAddr& addr, const UniqueIdContents& contents,
                         int timeoutMs, int fanout, std::string origin)
    : listen_(std::move(listenFd)),
      addr_(addr),
      name_(addr.toString()),
      origin_(std::move(origin)),
      nonce_(contents.nonce),
      timeoutMs_(timeoutMs),
      fanout_(fanout),
      creatorPid_(getpid()) {
  std::memcpy(secret_, contents.secret, 16);
}

RootService::~RootService() {
  if (thread_.joinable()) {  // only reached after requestStop()
    requestStop();
    thread_.join();
  }
}

Status RootService::start() {
  wake_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_.valid()) return systemError("eventfd: " + errnoString(errno));
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::exception& e) {
    return systemError(std::string("cannot start the bootstrap root thread: ") + e.what());
  }
  FTCCL_LOG(Info, Bootstrap, "bootstrap root listening on {} ({}, timeout {} ms)", name_, origin_,
            timeoutMs_);
  return Status::ok();
}

void RootService::requestStop() {
  stop_.store(true);
  uint64_t one = 1;
  ssize_t rc = write(wake_.get(), &one, sizeof(one));
  (void)rc;  // EAGAIN: a wake-up is already pending
}

void RootService::abandonAfterFork() {
  listen_.reset();
  wake_.reset();
}

void RootService::run() noexcept {
  try {
    loop();
  } catch (const std::exception& e) {
    try {
      FTCCL_LOG(Error, Bootstrap, "bootstrap root {} failed: {}", name_, e.what());
      notifyJoined(ftcclInternalError, "bootstrap root " + name_ + " failed: " + e.what());
    } catch (...) {
    }
  } catch (...) {
  }
  try {
    conns_.clear();
    byRank_.clear();
  } catch (...) {
  }
  listen_.reset();
  finished_.store(true);
}

Deadline RootService::collectDeadline(uint32_t* bindingTimeoutMs) const {
  if (!anyHello_) {
    *bindingTimeoutMs = static_cast<uint32_t>(timeoutMs_);
    return start_ + std::chrono::milliseconds(timeoutMs_);
  }
  Deadline d = firstHelloDeadline_;
  *bindingTimeoutMs = static_cast<uint32_t>(timeoutMs_);
  for (const Conn& c : conns_) {
    if (c.state == Conn::State::Joined && c.joinDeadline < d) {
      d = c.joinDeadline;
      *bindingTimeoutMs = c.joinTimeoutMs;
    }
  }
  return d;
}

std::vector<int> RootService::missingRanks() const {
  std::vector<int> missing;
  for (int r = 0; r < static_cast<int>(byRank_.size()); ++r) {
    if (byRank_[r] == nullptr) missing.push_back(r);
  }
  return missing;
}

void RootService::loop() {
  start_ = Clock::now();
  std::vector<pollfd> fds;
  std::vector<Conn*> polled;
  for (;;) {
    if (stop_.load()) {
      notifyJoined(ftcclRemoteError, "bootstrap root " + name_ +
                                         " was stopped before the rendezvous completed (is "
                                         "its process exiting?)");
      FTCCL_LOG(Debug, Bootstrap, "bootstrap root {} stopped", name_);
      return;
    }
    auto now = Clock::now();

    // Deadlines.
    if (phase_ == Phase::Collecting) {
      uint32_t bindingMs = 0;
      Deadline d = collectDeadline(&bindingMs);
      if (now >= d) {
        if (joined_ == 0) {
          FTCCL_LOG(Warn, Bootstrap, "bootstrap root {} gives up: no rank joined within {} ms",
                    name_, bindingMs);
          failAll(ftcclTimeout, "no rank joined" + floodNote(), now);  // flushes error replies
          continue;
        }
        std::string msg = formatRankList(missingRanks()) + " of " + std::to_string(nranks_) +
                          " did not join within " + std::to_string(bindingMs) +
                          " ms (bootstrap root " + name_ + ")" + floodNote();
        // A process killed or stopped during init must not sink the others: with rank 0
        // and a strict majority, the table goes out with the missing entries empty and
        // the communicator replaces them (spares) or drops them (shrink), or fails.
        if (byRank_[0] != nullptr && 2 * joined_ > nranks_) {
          FTCCL_LOG(Warn, Bootstrap, "bootstrap rendezvous: {}; completing with the {} that did",
                    msg, joined_);
          complete(now);
          continue;
        }
        FTCCL_LOG(Warn, Bootstrap, "bootstrap rendezvous failed: {}", msg);
        failAll(ftcclTimeout, msg, now);
      }
    }
    for (Conn& c : conns_) {
      if ((c.state == Conn::State::ReadHeader || c.state == Conn::State::ReadBody) &&
          now >= c.helloDeadline && c.expect == FrameType::Fetch) {
        FTCCL_LOG(Warn, Bootstrap,
                  "bootstrap root {}: rank {} ({}) neither fetched the table nor closed in time",
                  name_, c.rank, c.peer);
        drop(c);
      } else if ((c.state == Conn::State::ReadHeader || c.state == Conn::State::ReadBody) &&
                 now >= c.helloDeadline) {
        FTCCL_LOG(Warn, Bootstrap,
                  "dropped bootstrap connection from {}: no complete hello within {} ms", c.peer,
                  std::min(timeoutMs_, kMaxHelloWaitMs));
        ++droppedWithoutHello_;
        drop(c);
      } else if (c.state == Conn::State::Writing && now >= c.writeDeadline) {
        FTCCL_LOG(Warn, Bootstrap,
                  "dropped bootstrap connection from {} (rank {}): the reply could not be "
                  "delivered in time",
                  c.peer, c.rank);
        drop(c);
      }
    }
    conns_.remove_if([](const Conn& c) { return c.closed; });
    if (phase_ == Phase::Finishing && conns_.empty()) {
      if (table_) {
        FTCCL_LOG(Info, Bootstrap,
                  "bootstrap root {}: sent the table ({} bytes) {} times, {} of them to ranks "
                  "whose parent failed them",
                  name_, table_->size(), tablesSent_, fallbacks_);
        table_.reset();
      }
      return;
    }

    // Poll.
    Deadline next = now + std::chrono::hours(24);
    if (phase_ == Phase::Collecting) {
      uint32_t unused = 0;
      next = std::min(next, collectDeadline(&unused));
    }
    fds.clear();
    polled.clear();
    fds.push_back({wake_.get(), POLLIN, 0});
    bool pollListen = listen_.valid() && now >= acceptPausedUntil_;
    if (listen_.valid() && !pollListen) next = std::min(next, acceptPausedUntil_);
    fds.push_back({pollListen ? listen_.get() : -1, POLLIN, 0});
    for (Conn& c : conns_) {
      short events = c.state == Conn::State::Writing ? POLLOUT : POLLIN;
      if (c.state == Conn::State::Writing) next = std::min(next, c.writeDeadline);
      if (c.state == Conn::State::ReadHeader || c.state == Conn::State::ReadBody) {
        next = std::min(next, c.helloDeadline);
      }
      fds.push_back({c.fd.get(), events, 0});
      polled.push_back(&c);
    }
    int rc = ::poll(fds.data(), fds.size(), msUntil(next));
    if (rc < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("poll: " + errnoString(errno));
    }
    now = Clock::now();
    if (fds[0].revents) {
      uint64_t value = 0;
      ssize_t n = read(wake_.get(), &value, sizeof(value));
      (void)n;
    }
    if (stop_.load()) continue;
    for (size_t i = 0; i < polled.size(); ++i) {
      short ev = fds[i + 2].revents;
      Conn& c = *polled[i];
      if (ev == 0 || c.closed) continue;
      if (c.state == Conn::State::Writing) {
        onWritable(c);
      } else {
        onReadable(c, now);
      }
    }
    if (fds[1].revents && listen_.valid()) acceptAll(now);
    conns_.remove_if([](const Conn& c) { return c.closed; });
    if (phase_ == Phase::Collecting && nranks_ > 0 && joined_ == nranks_) complete(now);
  }
}

void RootService::leaveRank(Conn& c) {
  if (c.rank >= 0 && c.rank < static_cast<int>(byRank_.size()) && byRank_[c.rank] == &c) {
    byRank_[c.rank] = nullptr;
    --joined_;
    if (joined_ == 0) {
      nranks_ = 0;
      byRank_.clear();
    }
  }
}

void RootService::replyError(Conn& c, ftcclResult_t code, const std::string& message,
                             Clock::time_point now) {
  if (c.state == Conn::State::Joined) leaveRank(c);
  auto frame = std::make_shared<const Bytes>(encodeError(code, message));
  setReply(c, frame, replyDigest(*frame));
  c.writeDeadline = now + std::chrono::milliseconds(kErrorReplyWriteMs);
}

void RootService::onHello(Conn& c, Hello& hello, Clock::time_point now) {
  std::memcpy(c.clientChallenge, hello.challenge, kChallengeBytes);
  auto reject = [&](ftcclResult_t code, const std::string& why) {
    FTCCL_LOG(Warn, Bootstrap, "bootstrap root {}: rejected rank {} from {}: {}", name_, hello.rank,
              c.peer, why);
    replyError(c, code, why, now);
  };
  if (hello.nonce != nonce_) {
    reject(ftcclInvalidArgument,
           "unique id mismatch: this bootstrap root serves another rendezvous (stale unique "
           "id?)");
    return;
  }
  if (phase_ != Phase::Collecting) {
    reject(ftcclInvalidUsage, "the rendezvous is already over");
    return;
  }
  if (hello.nranks < 1 || hello.nranks > kMaxRanks) {
    reject(ftcclInvalidArgument, "nranks " + std::to_string(hello.nranks) + " is out of range 1.." +
                                     std::to_string(kMaxRanks));
    return;
  }
  if (joined_ > 0 && hello.nranks != nranks_) {
    reject(ftcclInvalidArgument,
           "rank " + std::to_string(hello.rank) + " says nranks " + std::to_string(hello.nranks) +
               " but the ranks already joined say " + std::to_string(nranks_));
    return;
  }
  if (hello.rank < 0 || hello.rank >= hello.nranks) {
    reject(ftcclInvalidArgument, "rank " + std::to_string(hello.rank) +
                                     " is out of range for nranks " + std::to_string(hello.nranks));
    return;
  }
  if (joined_ > 0 && byRank_[hello.rank] != nullptr) {
    reject(ftcclInvalidArgument, "rank " + std::to_string(hello.rank) + " already joined from " +
                                     byRank_[hello.rank]->peer);
    return;
  }
  if (joined_ == 0) {
    nranks_ = hello.nranks;
    byRank_.assign(static_cast<size_t>(nranks_), nullptr);
  }
  if (!anyHello_) {
    anyHello_ = true;
    firstHelloDeadline_ = now + std::chrono::milliseconds(timeoutMs_);
  }
  c.state = Conn::State::Joined;
  c.rank = hello.rank;
  c.joinTimeoutMs = hello.timeoutMs;
  c.joinDeadline = now + std::chrono::milliseconds(std::max<uint32_t>(hello.remainingMs, 1));
  c.blob = std::move(hello.blob);
  c.relay = std::move(hello.relay);
  byRank_[c.rank] = &c;
  ++joined_;
  FTCCL_LOG(Debug, Bootstrap, "bootstrap root {}: rank {} of {} joined from {} ({}/{})", name_,
            c.rank, nranks_, c.peer, joined_, nranks_);
}

void RootService::complete(Clock::time_point now) {
  size_t total = 12;
  for (const Conn* c : byRank_) total += 4 + (c != nullptr ? c->blob.size() : 0);
  if (total > kMaxTableBytes) {
    std::string msg = "the table of all ranks' blobs (" + std::to_string(total) +
                      " bytes) exceeds the limit of " + std::to_string(kMaxTableBytes);
    FTCCL_LOG(Warn, Bootstrap, "bootstrap root {}: {}", name_, msg);
    failAll(ftcclInvalidArgument, msg, now);
    return;
  }
  std::vector<Bytes> blobs(byRank_.size());  // a missing rank's stays empty
  for (size_t r = 0; r < byRank_.size(); ++r) {
    if (byRank_[r] != nullptr) blobs[r] = std::move(byRank_[r]->blob);
  }
  table_ = std::make_shared<const Bytes>(encodeTable(nonce_, blobs));
  FTCCL_LOG(Info, Bootstrap, "bootstrap root {}: {} of {} ranks joined in {} ms", name_, joined_,
            nranks_, msSince(start_));
  phase_ = Phase::Finishing;
  listen_.reset();  // latecomers are refused
  const Deadline writeDeadline =
      now + std::chrono::milliseconds(std::max(timeoutMs_, kErrorReplyWriteMs));
  // Every joined rank its Role: the root's children the table too, the rest where to
  // fetch it (relay.h), in the order of their ranks.
  std::vector<Conn*> joined;
  for (Conn* c : byRank_) {
    if (c != nullptr) joined.push_back(c);
  }
  std::vector<bool> serves(joined.size());
  for (size_t i = 0; i < joined.size(); ++i) serves[i] = !joined[i]->relay.empty();
  const RelayTree tree(serves, fanout_);
  Role role;
  role.nonce = nonce_;
  role.nranks = static_cast<uint32_t>(nranks_);
  role.tableBytes = static_cast<uint32_t>(table_->size());
  role.tableDigest = tableDigest_ = replyDigest(*table_);
  for (size_t i = 0; i < joined.size(); ++i) {
    Conn& c = *joined[i];
    const int parent = tree.parentOf(i);
    role.children = tree.childrenOf(i);
    role.depth = tree.depthOf(i);
    role.hopMs = relayHopMs(table_->size(), fanout_);
    role.parent = parent < 0 ? -1 : joined[static_cast<size_t>(parent)]->rank;
    role.parentAddress = parent < 0 ? std::string() : joined[static_cast<size_t>(parent)]->relay;
    auto frame = std::make_shared<const Bytes>(encodeRole(role));
    setReply(c, frame, replyDigest(*frame));
    c.writeDeadline = writeDeadline;
    c.mayFetch = parent >= 0;
    if (parent < 0) {
      c.then = table_;
      ++tablesSent_;
    }
  }
  for (Conn& c : conns_) {
    if (c.state != Conn::State::Writing) drop(c);
  }
  // Written in rank order, which is the tree's: parents' Roles (and the root children's
  // tables) leave first, so no child's wait starts long before its parent's.
  conns_.sort([](const Conn& a, const Conn& b) { return a.rank < b.rank; });
  byRank_.clear();
  joined_ = 0;
}

// A rank whose parent failed it (dead, stopped, or its table not the one the Role
// names) asks the root, on the connection that brought its Role.
void RootService::onFetch(Conn& c, Clock::time_point now) {
  uint64_t nonce = 0;
  int32_t rank = -1;
  if (!fetchProven(c.body.data(), c.body.size(), secret_, c.challenge, tableDigest_, &nonce,
                   &rank) ||
      nonce != nonce_ || rank != c.rank) {
    FTCCL_LOG(Warn, Bootstrap, "bootstrap root {}: dropped rank {} ({}): a fetch without proof",
              name_, c.rank, c.peer);
    drop(c);
    return;
  }
  FTCCL_LOG(Info, Bootstrap,
            "bootstrap root {}: rank {} fetches the table here (its parent failed it)", name_,
            c.rank);
  c.out = table_;
  c.outOffset = 0;
  c.proof.clear();
  c.mayFetch = false;
  c.state = Conn::State::Writing;
  c.writeDeadline = now + std::chrono::milliseconds(std::max(timeoutMs_, kErrorReplyWriteMs));
  ++tablesSent_;
  ++fallbacks_;
}

void RootService::failAll(ftcclResult_t code, const std::string& message, Clock::time_point now) {
  phase_ = Phase::Finishing;
  listen_.reset();
  auto frame = std::make_shared<const Bytes>(encodeError(code, message));
  const auto digest = replyDigest(*frame);
  for (Conn& c : conns_) {
    if (c.state == Conn::State::Joined) {
      setReply(c, frame, digest);
      c.writeDeadline = now + std::chrono::milliseconds(kErrorReplyWriteMs);
    } else if (c.state != Conn::State::Writing) {
      drop(c);
    }
  }
  byRank_.clear();
  joined_ = 0;
}

// Best effort, never blocking: joined ranks learn why the root went away.
void RootService::notifyJoined(ftcclResult_t code, const std::string& message) {
  Bytes frame = encodeError(code, message);
  const auto digest = replyDigest(frame);
  for (Conn& c : conns_) {
    if (c.state == Conn::State::Joined && c.fd.valid()) {
      Bytes proof = encodeReplyProof(secret_, c.challenge, c.clientChallenge, digest);
      ssize_t n = ::send(c.fd.get(), frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n == static_cast<ssize_t>(frame.size())) {
        n = ::send(c.fd.get(), proof.data(), proof.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      }
      (void)n;
    }
  }
}

}  // namespace bootstrap
}  // namespace ftccl
