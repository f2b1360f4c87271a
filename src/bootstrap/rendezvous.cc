// Bootstrap rendezvous, the client side: connect to the root, answer its challenge with
// a hello that proves the secret, and take the table (or the root's error) only with the
// root's proof for it. See bootstrap.h for the protocol and root_service.h for how the
// deadlines of the root and of the ranks meet.
#include <algorithm>
#include <chrono>
#include <memory>
#include <new>
#include <thread>

#include "bootstrap/bootstrap.h"
#include "bootstrap/relay.h"
#include "bootstrap/root_service.h"
#include "bootstrap/wire.h"
#include "util/crypto.h"
#include "util/log.h"
#include "util/net/socket.h"

namespace ftccl {
namespace bootstrap {
namespace {

using crypto::randomBytes;
using net::Cancelled;
using net::Clock;
using net::connectWithRetry;
using net::Deadline;
using net::Fd;
using net::listenOn;
using net::msSince;
using net::msUntil;
using net::numericSockAddr;
using net::sendAll;
using net::SockAddr;

// A relay started for our children is stopped if this rank gets no table after all: they
// see its connection close and ask the root at once.
class RelayGuard {
 public:
  explicit RelayGuard(std::shared_ptr<RelayService>* relay) : relay_(relay) {}
  ~RelayGuard() {
    if (*relay_ && !provided_) (*relay_)->requestStop();
  }
  void provide(std::shared_ptr<const Bytes> table) {
    if (*relay_) (*relay_)->provide(std::move(table));
    provided_ = true;
  }

 private:
  std::shared_ptr<RelayService>* relay_;
  bool provided_ = false;
};

int replyGraceMs(int timeoutMs) { return std::clamp(timeoutMs / 4, 100, 2000); }

Status validateRendezvousArgs(int rank, int nranks, const std::vector<uint8_t>& myBlob,
                              int timeoutMs, std::vector<std::vector<uint8_t>>* allBlobs) {
  if (allBlobs == nullptr) return invalidArgument("rendezvous: allBlobs is NULL");
  if (nranks < 1 || nranks > kMaxRanks) {
    return invalidArgument("nranks " + std::to_string(nranks) + " is out of range 1.." +
                           std::to_string(kMaxRanks));
  }
  if (rank < 0 || rank >= nranks) {
    return invalidArgument("rank " + std::to_string(rank) + " is out of range 0.." +
                           std::to_string(nranks - 1));
  }
  if (timeoutMs < 1 || timeoutMs > kMaxTimeoutMs) {
    return invalidArgument("bootstrap timeout " + std::to_string(timeoutMs) +
                           " ms is out of range 1.." + std::to_string(kMaxTimeoutMs));
  }
  if (myBlob.empty()) return invalidArgument("empty bootstrap blob (empty means absent)");
  if (myBlob.size() > kMaxBlobBytes) {
    return invalidArgument("bootstrap blob of " + std::to_string(myBlob.size()) +
                           " bytes exceeds the limit of " + std::to_string(kMaxBlobBytes));
  }
  return Status::ok();
}

Status rendezvousImpl(const UniqueIdContents& contents, int rank, int nranks,
                      const std::vector<uint8_t>& myBlob, int timeoutMs,
                      std::vector<std::vector<uint8_t>>* allBlobs, const Cancelled& cancelled,
                      RendezvousStats* stats) {
  const auto start = Clock::now();
  FTCCL_CHECK(validateRendezvousArgs(rank, nranks, myBlob, timeoutMs, allBlobs));
  SockAddr rootAddr;
  if (contents.rootPort == 0 ||
      !numericSockAddr(contents.rootHost, contents.rootPort, &rootAddr).isOk()) {
    return invalidArgument("the unique id names no valid root address ('" + contents.rootHost +
                           "', port " + std::to_string(contents.rootPort) + ")");
  }
  const std::string root = rootAddr.toString();
  const Deadline deadline = start + std::chrono::milliseconds(timeoutMs);
  const Deadline replyDeadline = deadline + std::chrono::milliseconds(replyGraceMs(timeoutMs));

  if (contents.rankZeroStartsRoot && rank == 0) {
    Fd listenFd;
    SockAddr bound;
    Status st = listenOn(rootAddr, /*reuseAddr=*/true, &listenFd, &bound);
    if (!st.isOk()) {
      return Status(st.code(), st.message() +
                                   " (FTCCL_COMM_ID: rank 0 starts the bootstrap root and "
                                   "must run on that host, with the port free)");
    }
    FTCCL_CHECK(startRoot(std::move(listenFd), bound, contents, timeoutMs,
                          "FTCCL_COMM_ID, started by rank 0"));
  }

  Fd fd;
  std::string lastError;
  auto connectToRoot = [&]() -> Status {
    Status connected = connectWithRetry(rootAddr, deadline, &fd, &lastError, cancelled);
    if (connected.code() == ftcclRemoteError) {
      return remoteError("bootstrap rendezvous given up: " + connected.message());
    }
    if (connected.code() == ftcclTimeout) {
      return systemError("cannot reach bootstrap root " + root + " within " +
                         std::to_string(timeoutMs) +
                         " ms (is the root process alive? stale unique id?): " + lastError);
    }
    return connected;
  };
  Status st = connectToRoot();
  if (!st.isOk()) return st;

  const std::string closedMsg =
      "bootstrap root " + root +
      " closed the connection without a reply: it rejected this rank (wrong secret: a unique "
      "id or FTCCL_COMM_SECRET from another job?), it was flooded by other connections, or "
      "it exited; see the root's log";
  auto noReply = [&](const Status& io) -> Status {
    if (io.code() == ftcclRemoteError) {
      return remoteError("bootstrap rendezvous with root " + root + " given up: " + io.message());
    }
    if (io.code() == ftcclTimeout) {
      return timeoutError("bootstrap rendezvous as rank " + std::to_string(rank) + " of " +
                          std::to_string(nranks) + " did not complete within " +
                          std::to_string(timeoutMs) + " ms: no reply from bootstrap root " + root +
                          " (it did not say which ranks are missing; is it alive?)");
    }
    return systemError(closedMsg + " [" + io.message() + "]");
  };
  auto badReply = [&](const std::string& why) {
    return remoteError("bad reply from bootstrap root " + root + ": " + why);
  };
  // One whole frame (readOneFrame: the body grows as bytes arrive, so a corrupted length
  // costs no more than what was sent). Read before the root proved itself: no more than a
  // table of nranks blobs. I/O ends are "no reply", malformed frames a bad one.
  const size_t tableCap = 12 + static_cast<size_t>(nranks) * (4 + kMaxBlobBytes);
  auto readFrame = [&](FrameHeader* header, Bytes* frame) -> Status {
    Status st = readOneFrame(fd.get(), tableCap, replyDeadline, cancelled, header, frame);
    if (st.isOk()) return st;
    return st.code() == ftcclInvalidArgument ? badReply(st.message()) : noReply(st);
  };

  // The root's challenge, then our hello proving the secret for it. A root flooded with
  // connections may close ours before it sends the challenge (or never accept it): tried
  // again, with a growing pause, until the deadline.
  FrameHeader header;
  Bytes frame;
  for (int pauseMs = 20;; pauseMs = std::min(2 * pauseMs, 500)) {
    st = readFrame(&header, &frame);
    if (st.isOk() || st.code() != ftcclSystemError || msUntil(deadline) <= pauseMs) break;
    FTCCL_LOG(Info, Bootstrap,
              "bootstrap root {} closed the connection before its challenge: "
              "connecting again in {} ms",
              root, pauseMs);
    fd.reset();
    std::this_thread::sleep_for(std::chrono::milliseconds(pauseMs));
    st = connectToRoot();
    if (!st.isOk()) return st;
  }
  if (!st.isOk()) return st;
  uint8_t rootChallenge[kChallengeBytes];
  if (header.type != FrameType::Challenge ||
      !decodeChallengeBody(frame.data() + kFrameHeaderBytes, header.length, rootChallenge).isOk()) {
    return badReply("expected its challenge");
  }
  // Our relay listener, where the address we reach the root from is: our children reach
  // us as we reach it. Without one we serve nobody and the root makes up for it.
  RelayServer relay;
  SockAddr local;
  local.length = sizeof(local.storage);
  Status listening = getsockname(fd.get(), local.sa(), &local.length) == 0
                         ? relay.open(local)
                         : systemError("getsockname: " + net::errnoString(errno));
  if (!listening.isOk()) {
    FTCCL_LOG(Info, Bootstrap, "rank {}: no relay listener ({}): the root serves its share", rank,
              listening.message());
  }
  Hello hello;
  hello.relay = relay.address();
  FTCCL_CHECK(randomBytes(hello.challenge, sizeof(hello.challenge)));
  hello.nonce = contents.nonce;
  hello.rank = rank;
  hello.nranks = nranks;
  hello.timeoutMs = static_cast<uint32_t>(timeoutMs);
  hello.remainingMs = static_cast<uint32_t>(std::max(1, msUntil(deadline)));
  hello.blob = myBlob;
  const Bytes helloFrame = encodeHello(hello, contents.secret, rootChallenge);
  st = sendAll(fd.get(), helloFrame.data(), helloFrame.size(), replyDeadline, cancelled);
  if (!st.isOk()) return noReply(st);

  // Its reply, then its proof that it holds the secret: a process listening at the
  // root's address without it (a stranger, a stale root of another job) is no root.
  st = readFrame(&header, &frame);
  if (!st.isOk()) return st;
  if (header.type != FrameType::Role && header.type != FrameType::Error) {
    return badReply(std::string("unexpected frame type ") +
                    std::to_string(static_cast<int>(header.type)));
  }
  const FrameHeader replyHeader = header;
  const Bytes reply = std::move(frame);
  st = readFrame(&header, &frame);
  if (!st.isOk()) return st;
  if (header.type != FrameType::Proof ||
      !replyProven(frame.data() + kFrameHeaderBytes, header.length, contents.secret, rootChallenge,
                   hello.challenge, replyDigest(reply))) {
    return remoteError("the process answering at bootstrap root " + root +
                       " did not prove that it holds this job's secret: it is not this job's "
                       "root (a stale root of another job, or a stranger at that address)");
  }
  const uint8_t* body = reply.data() + kFrameHeaderBytes;
  if (replyHeader.type == FrameType::Error) {
    ftcclResult_t code = ftcclRemoteError;
    std::string message;
    st = decodeErrorBody(body, replyHeader.length, &code, &message);
    if (!st.isOk()) return badReply(st.message());
    return Status(code, "bootstrap rendezvous failed (rank " + std::to_string(rank) + " of " +
                            std::to_string(nranks) + "): " + message);
  }
  Role role;
  st = decodeRoleBody(body, replyHeader.length, &role);
  if (!st.isOk()) return badReply(st.message());
  if (role.nonce != contents.nonce || role.nranks != static_cast<uint32_t>(nranks)) {
    return badReply("its role is not of this rendezvous");
  }
  // The table: from the root, or from our parent rank, else (dead, stopped, lying) from
  // the root after all. Checked against the Role's digest either way.
  const auto roleAt = Clock::now();
  const Deadline relayUntil = std::min(deadline, relayWaitEnd(roleAt, role));
  // Our children are challenged from now on, in the background, and sent the table once
  // we have it: this rank goes on with its init meanwhile.
  std::shared_ptr<RelayService> relaying;
  RelayGuard relayGuard(&relaying);
  if (role.children > 0 && relay.isOpen()) {
    relaying = std::make_shared<RelayService>(std::move(relay), role, contents.secret,
                                              std::min(replyDeadline, relayServeEnd(roleAt, role)));
    Status started = startRelay(relaying);
    if (!started.isOk()) {
      FTCCL_LOG(Warn, Bootstrap,
                "rank {}: cannot relay the table ({}): its {} children ask the root", rank,
                started.message(), role.children);
      relaying.reset();
    }
  }
  Bytes table;
  bool fromRoot = role.parent < 0;
  if (!fromRoot) {
    st = fetchFromParent(role, rank, contents.secret, relayUntil, cancelled, &table);
    if (st.code() == ftcclRemoteError && cancelled && cancelled()) return noReply(st);
    if (!st.isOk()) {
      FTCCL_LOG(Warn, Bootstrap,
                "rank {}: parent rank {} ({}) did not relay the table ({}): fetching it from the "
                "root",
                rank, role.parent, role.parentAddress, st.message());
      stats->parentFailed = true;
      const Bytes fetch =
          encodeFetch(contents.nonce, rank, contents.secret, rootChallenge, role.tableDigest);
      st = sendAll(fd.get(), fetch.data(), fetch.size(), replyDeadline, cancelled);
      if (!st.isOk()) return noReply(st);
      fromRoot = true;
    }
  }
  if (fromRoot) {
    st = readFrame(&header, &table);
    if (!st.isOk()) return st;
    if (header.type != FrameType::Table || !isRolesTable(role, table)) {
      return badReply("its table is not the one its role names");
    }
  }
  fd.reset();  // the root's part is done: it may close
  uint64_t nonce = 0;
  std::vector<Bytes> blobs;
  st = decodeTableBody(table.data() + kFrameHeaderBytes, table.size() - kFrameHeaderBytes, &nonce,
                       &blobs);
  if (!st.isOk()) return badReply(st.message());
  if (nonce != contents.nonce || blobs.size() != static_cast<size_t>(nranks) ||
      blobs[static_cast<size_t>(rank)] != myBlob) {
    return badReply("the table does not match this rendezvous (nranks " +
                    std::to_string(blobs.size()) + ", expected " + std::to_string(nranks) + ")");
  }
  stats->tableFrom = fromRoot ? -1 : role.parent;
  stats->tableBytes = table.size();
  stats->children = role.children;
  relayGuard.provide(std::make_shared<const Bytes>(std::move(table)));
  *allBlobs = std::move(blobs);
  FTCCL_LOG(Info, Bootstrap,
            "rendezvous completed: rank {} of {} in {} ms (root {}, table from {})", rank, nranks,
            msSince(start), root,
            fromRoot ? std::string("the root") : "rank " + std::to_string(role.parent));
  return Status::ok();
}

}  // namespace
}  // namespace bootstrap

Status rendezvous(const UniqueIdContents& contents, int rank, int nranks,
                  const std::vector<uint8_t>& myBlob, int timeoutMs,
                  std::vector<std::vector<uint8_t>>* allBlobs,
                  const std::function<bool()>& cancelled, RendezvousStats* stats) {
  RendezvousStats unused;
  try {
    return bootstrap::rendezvousImpl(contents, rank, nranks, myBlob, timeoutMs, allBlobs, cancelled,
                                     stats != nullptr ? stats : &unused);
  } catch (const std::bad_alloc&) {
    return systemError("out of memory during the bootstrap rendezvous");
  } catch (const std::exception& e) {
    return internalError(std::string("bootstrap rendezvous: ") + e.what());
  }
}

}  // namespace ftccl
