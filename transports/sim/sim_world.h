// An in-process data fabric for whole communicators, one thread per rank: every
// endpoint is a WorldTransport that its own thread drives, as a UCX worker is.
//
// Eager: a send's bytes are copied into the receiver's queue when posted (the send
// completes at once); receives of one source, epoch and key take its messages in the
// order both were posted (UCX's tag matching), and a length that differs fails the
// receive (UCX's length check). Messages of another epoch or signature never match;
// findMismatchedMessage names a signature mismatch.
// kill(address): the endpoint is gone: sends to it and receives from it fail (messages
// it sent before stay deliverable, as bytes already on the wire are), like a dead
// process's UCX endpoint. Destroying an endpoint is its death too.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "transports/world_transport.h"

namespace ftccl {
namespace sim {

class SimWorld {
 public:
  SimWorld() = default;
  ~SimWorld();
  SimWorld(const SimWorld&) = delete;
  SimWorld& operator=(const SimWorld&) = delete;

  // A new endpoint (the transport factory of an in-process test). Safe from any thread;
  // the world must outlive its endpoints.
  std::unique_ptr<WorldTransport> makeEndpoint();
  // Fault injection from outside the victim: its endpoint (by its address) dies now.
  void kill(const std::vector<uint8_t>& address);

 private:
  friend class SimEndpoint;
  struct Message {
    uint64_t from = 0;
    uint32_t epoch = 0;
    MessageKey key;
    std::vector<uint8_t> bytes;
  };
  struct Box {
    bool dead = false;
    std::deque<Message> queue;  // arrival order
  };
  Box* box(uint64_t id);  // under mutex_; null if never made
  void notifyAll();       // under mutex_

  mutable std::mutex mutex_;
  std::condition_variable activity_;
  uint64_t generation_ = 0;  // grows with every arrival, death and interrupt
  uint64_t nextId_ = 1;
  std::unordered_map<uint64_t, Box> boxes_;
};

}  // namespace sim
}  // namespace ftccl
