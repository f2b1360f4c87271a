// Bootstrap rendezvous, the client side: connect to the root, answer its challenge with
// a hello that proves the secret, and take the table (or the root's error) only with the
// root's proof for it. See bootstrap.h for the protocol and root_service.h for how the
// deadlines of the root and of the ranks meet.
#include <algorithm>
#include <chrono>
#include <new>
#include <thread>

#include "bootstrap/bootstrap.h"
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
using net::recvAll;
using net::sendAll;
using net::SockAddr;

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
                      std::vector<std::vector<uint8_t>>* allBlobs, const Cancelled& cancelled) {
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
  // One whole frame. The body grows as bytes arrive: a corrupted length costs no more
  // than what was sent.
  auto readFrame = [&](FrameHeader* header, Bytes* frame) -> Status {
    frame->assign(kFrameHeaderBytes, 0);
    size_t got = 0;
    Status io = recvAll(fd.get(), frame->data(), kFrameHeaderBytes, replyDeadline, &got, cancelled);
    if (!io.isOk()) return noReply(io);
    Status parsed = parseFrameHeader(frame->data(), kFrameHeaderBytes, header);
    if (!parsed.isOk()) return badReply(parsed.message());
    // Read before the root proved itself: no more than a table of nranks blobs.
    const size_t tableCap = 12 + static_cast<size_t>(nranks) * (4 + kMaxBlobBytes);
    if (header->type == FrameType::Table && header->length > tableCap) {
      return badReply("a table of " + std::to_string(header->length) + " bytes for " +
                      std::to_string(nranks) + " ranks");
    }
    while (frame->size() - kFrameHeaderBytes < header->length) {
      size_t chunk =
          std::min<size_t>(header->length - (frame->size() - kFrameHeaderBytes), size_t{1} << 20);
      size_t old = frame->size();
      frame->resize(old + chunk);
      io = recvAll(fd.get(), frame->data() + old, chunk, replyDeadline, &got, cancelled);
      if (!io.isOk()) return noReply(io);
    }
    Status body = checkFrameBody(*header, frame->data() + kFrameHeaderBytes, header->length);
    return body.isOk() ? body : badReply(body.message());
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
  Hello hello;
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
  if (header.type != FrameType::Table && header.type != FrameType::Error) {
    return badReply(std::string("unexpected frame type ") +
                    std::to_string(static_cast<int>(header.type)));
  }
  const FrameHeader replyHeader = header;
  const Bytes reply = std::move(frame);
  st = readFrame(&header, &frame);
  if (!st.isOk()) return st;
  fd.reset();
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
  uint64_t nonce = 0;
  std::vector<Bytes> blobs;
  st = decodeTableBody(body, replyHeader.length, &nonce, &blobs);
  if (!st.isOk()) return badReply(st.message());
  if (nonce != contents.nonce || blobs.size() != static_cast<size_t>(nranks) ||
      blobs[static_cast<size_t>(rank)] != myBlob) {
    return badReply("the table does not match this rendezvous (nranks " +
                    std::to_string(blobs.size()) + ", expected " + std::to_string(nranks) + ")");
  }
  *allBlobs = std::move(blobs);
  FTCCL_LOG(Info, Bootstrap, "rendezvous completed: rank {} of {} in {} ms (root {})", rank, nranks,
            msSince(start), root);
  return Status::ok();
}

}  // namespace
}  // namespace bootstrap

Status rendezvous(const UniqueIdContents& contents, int rank, int nranks,
                  const std::vector<uint8_t>& myBlob, int timeoutMs,
                  std::vector<std::vector<uint8_t>>* allBlobs,
                  const std::function<bool()>& cancelled) {
  try {
    return bootstrap::rendezvousImpl(contents, rank, nranks, myBlob, timeoutMs, allBlobs,
                                     cancelled);
  } catch (const std::bad_alloc&) {
    return systemError("out of memory during the bootstrap rendezvous");
  } catch (const std::exception& e) {
    return internalError(std::string("bootstrap rendezvous: ") + e.what());
  }
}

}  // namespace ftccl
