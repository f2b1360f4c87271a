// Transport over UCX's UCP tag API: one worker per communicator.
//
// Lifecycle: create() opens the worker and exposes its address; core exchanges
// addresses through the bootstrap, then connect() gives the table. Endpoints are
// created lazily, on first use of a peer, and their UCX lanes are logged at INFO.
// ucs_status_t is translated to Status in exactly one place (ucx_status.cc).
#pragma once

#include <ucp/api/ucp.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "transports/link_counters.h"
#include "transports/transport.h"

namespace ftccl {

// How UCX treats a peer failure on an endpoint. ftccl detects failures itself (the
// health thread), so kNone keeps shared memory and its full speed; kPeer makes UCX
// report endpoint errors at the cost of dropping shared memory unless
// UCX_MM_ERROR_HANDLING=y (see README "UCX error mode" for the measurement).
enum class UcxErrorMode { kNone, kPeer };

struct UcxOptions {
  UcxErrorMode errorMode = UcxErrorMode::kNone;
};

// Reads FTCCL_UCX_ERROR_MODE (none|peer); an invalid value is an error.
Status ucxOptionsFromEnv(UcxOptions* options);

class UcxContext;

class UcxTransport final : public Transport {
 public:
  static Status create(const UcxOptions& options, std::unique_ptr<UcxTransport>* out);
  ~UcxTransport() override;

  // The worker's address, to be shared through the bootstrap.
  const std::vector<uint8_t>& workerAddress() const { return address_; }

  // Gives every rank's worker address (index = rank) and the tag's fixed fields.
  Status connect(int rank, std::vector<std::vector<uint8_t>> addresses, uint32_t commId,
                 uint32_t epoch);

  // After a rebuild: logical rank r is the process at worker index logicalToWorld[r];
  // this process is logical rank `rank`; tags carry `epoch` (old messages never match).
  Status remap(uint32_t epoch, std::vector<int> logicalToWorld, int rank);
  // A process that joined later (a refilled spare): its worker index is the next one.
  void addPeer(std::vector<uint8_t> address);

  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(logicalToWorld_.size()); }
  Status isend(int peer, const void* buffer, size_t bytes, MessageKey key,
               TransportRequest** request) override;
  Status irecv(int peer, void* buffer, size_t bytes, MessageKey key,
               TransportRequest** request) override;
  Status test(TransportRequest** request, bool* done) override;
  void cancel(TransportRequest** request) override;
  bool progress() override;
  Status waitForActivity(int timeoutMs) override;
  void interrupt() override;

  // Releases endpoints without flushing at destruction (after a failure: peers may be dead).
  void setForceClose() { forceClose_ = true; }

  // Logs (INFO, once per peer) which UCX transports carry traffic to `peer`.
  void logLanes(int peer);

  // Bytes and busy time per process (worker index, stable across rebuilds); counting
  // is on unless disabled (FTCCL_STATS=0). Counters of a worker index stay valid for
  // the transport's life; the table grows only in connect() and addPeer().
  void setCounting(bool on) { counting_ = on; }
  size_t processCount() const { return peers_.size(); }
  const LinkCounters& counters(size_t worker) const { return *peers_[worker].counters; }
  int worldOf(int peer) const { return logicalToWorld_[peer]; }

 private:
  struct Peer {
    std::vector<uint8_t> address;
    ucp_ep_h ep = nullptr;
    bool lanesLogged = false;
    std::unique_ptr<LinkCounters> counters = std::make_unique<LinkCounters>();
  };

  UcxTransport() = default;
  Status endpoint(int peer, ucp_ep_h* ep);
  // Counts a posted transfer (request null: it completed at once), and its end.
  void track(void* request, LinkCounters::Direction* direction, size_t bytes);
  void untrack(void* request, bool completed);
  void closeEndpoints();

  std::shared_ptr<UcxContext> context_;
  UcxOptions options_;
  ucp_worker_h worker_ = nullptr;
  int eventFd_ = -1;
  std::vector<uint8_t> address_;
  std::vector<Peer> peers_;          // by worker index (every process of the job)
  std::vector<int> logicalToWorld_;  // logical rank -> worker index
  int rank_ = -1;
  uint32_t commId_ = 0;
  uint32_t epoch_ = 0;
  bool forceClose_ = false;
  bool counting_ = true;
};

}  // namespace ftccl
