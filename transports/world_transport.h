// What a communicator runs on: a Transport that reaches every process of a job by the
// address each one published, renumbered into logical ranks per epoch. UCX in
// production (ucx/ucx_transport.h); an in-process fabric in tests (sim/sim_world.h).
// Algorithms see only Transport.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "transports/link_counters.h"
#include "transports/transport.h"

namespace ftccl {

// Transfers still outstanding with one peer (a worker index), for the "mid-transfer"
// account of a revoke.
struct OutstandingTransfers {
  int world = -1;
  int count = 0;
  uint64_t bytes = 0;
  uint64_t largest = 0;
  int rendezvous = 0;                // of them, at or above the endpoint's threshold
  uint64_t rendezvousThreshold = 0;  // the transport's rendezvous threshold; 0: not known
};

class WorldTransport : public Transport {
 public:
  // What the others need to reach this process (published with its peer info).
  virtual const std::vector<uint8_t>& workerAddress() const = 0;
  // Every process's address, by world index; this process is `rank` (a world index).
  virtual Status connect(int rank, std::vector<std::vector<uint8_t>> addresses, uint32_t epoch) = 0;
  // The epoch's numbering: logical rank -> world index; `rank` is ours (-1: a spare).
  // Messages of an older epoch never match afterwards.
  virtual Status remap(uint32_t epoch, std::vector<int> logicalToWorld, int rank) = 0;
  // A process that joined after init, at the next world index.
  virtual void addPeer(std::vector<uint8_t> address) = 0;
  // A process moved to another address (a fresh worker after a death on its host).
  virtual void setPeerAddress(size_t world, std::vector<uint8_t> address) = 0;
  virtual int selfWorld() const = 0;
  virtual size_t processCount() const = 0;
  virtual const LinkCounters& counters(size_t world) const = 0;

  // Optional: a peer on this host and network namespace; closing without waiting for
  // dead peers; transfers a revoke cut short; the lanes chosen for a peer (logged);
  // whether to count bytes and busy time per link.
  virtual void setLocal(size_t world, bool local) {}
  virtual void setForceClose() {}
  virtual std::vector<OutstandingTransfers> outstanding() const { return {}; }
  virtual void logLanes(int peer) {}
  virtual void setCounting(bool on) {}
};

}  // namespace ftccl
