// The interface that algorithms use to move bytes between ranks (health has a channel
// of its own, health/health_service.h).
//
// NCCL-net shaped: non-blocking isend/irecv returning a request, test, cancel.
// It knows nothing about collectives: a message is addressed by peer rank and a
// MessageKey (operation sequence number and channel), which the transport folds
// into its own wire tag together with communicator id and epoch (tag_layout.h).
// Messages between one pair of ranks with one key are delivered in posting order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "util/status.h"

namespace ftccl {

struct MessageKey {
  uint32_t opSeq = 0;      // which collective (wraps, see tag_layout.h)
  uint32_t channel = 0;    // independent in-order stream inside one collective
  uint32_t signature = 0;  // digest of the op's arguments: keys that differ never match
};

// An in-flight send or receive, owned by the transport. Poll it with Transport::test.
class TransportRequest;

class Transport {
 public:
  virtual ~Transport() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Posts a send/receive. *request is null when it completed at once.
  virtual Status isend(int peer, const void* buffer, size_t bytes, MessageKey key,
                       TransportRequest** request) = 0;
  virtual Status irecv(int peer, void* buffer, size_t bytes, MessageKey key,
                       TransportRequest** request) = 0;

  // *done = true once finished; then the request is released and set to null.
  // A failed request returns its error (and is released too).
  virtual Status test(TransportRequest** request, bool* done) = 0;

  // Cancels and releases a request (e.g. a receive from a failed peer); never blocks.
  virtual void cancel(TransportRequest** request) = 0;

  // Fails (ftcclInvalidUsage, naming the peer) when a posted receive waits for a message
  // that has arrived with the same op and channel but another signature: the ranks
  // called the op with different arguments, and neither side would ever match.
  virtual Status findMismatchedMessage() { return Status::ok(); }

  // Makes progress on all requests; returns true if anything happened.
  virtual bool progress() = 0;

  // Sleeps until network activity, interrupt() or timeoutMs (whichever comes first).
  virtual Status waitForActivity(int timeoutMs) = 0;

  // Wakes a thread inside waitForActivity. Safe from any thread.
  virtual void interrupt() = 0;
};

}  // namespace ftccl
