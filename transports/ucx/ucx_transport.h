// Transport over UCX's UCP tag API: one worker per communicator.
//
// Lifecycle: create() opens the worker and exposes its address; core exchanges
// addresses through the bootstrap, then connect() gives the table. Endpoints are
// created lazily, on first use of a peer, and their UCX lanes are logged at INFO.
// ucs_status_t is translated to Status in exactly one place (ucx_status.cc).
#pragma once

#include <ucp/api/ucp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "transports/link_counters.h"
#include "transports/transport.h"
#include "transports/ucx/ucx_requests.h"
#include "transports/world_transport.h"

namespace ftccl {

// How UCX treats a peer failure on an endpoint. ftccl detects failures itself (the
// health thread); UCX must only survive them. UCX 1.13 offers two modes, and neither is
// right for every peer (docs/ucx-error-mode.md has the measurements):
//  - peer: a failed transfer completes with an error and endpoints can be force-closed,
//    but rendezvous lanes need memory invalidation, which CMA lacks: shared-memory
//    peers lose zero-copy (-24..-34% busbw at 1-16 MiB, 2 ranks);
//  - none: keeps CMA, but a CMA read of a dead peer's buffer is logged as FATAL and
//    aborts the survivor, after UCP has already failed the endpoint and its requests
//    exactly as in peer mode (ucx_log_guard.h stops that abort).
// kAuto (the default) uses none with same-node peers (guarded) and peer with the rest.
enum class UcxErrorMode { kAuto, kPeer, kNone };

struct UcxOptions {
  UcxErrorMode errorMode = UcxErrorMode::kAuto;
  // The only network device UCX may use (UCX_NET_DEVICES, unless the user set that);
  // empty: all. Shared memory is not a network device and stays.
  std::string netDevice;
};

// Reads FTCCL_UCX_ERROR_MODE (auto|peer|none); an invalid value is an error.
Status ucxOptionsFromEnv(UcxOptions* options);

class UcxContext;

class UcxTransport final : public WorldTransport {
 public:
  static Status create(const UcxOptions& options, std::unique_ptr<UcxTransport>* out);
  ~UcxTransport() override;

  // The worker's address, to be shared through the bootstrap.
  const std::vector<uint8_t>& workerAddress() const override { return address_; }

  // Gives every rank's worker address (index = rank) and the epoch tags carry.
  Status connect(int rank, std::vector<std::vector<uint8_t>> addresses, uint32_t epoch) override;

  // After a rebuild: logical rank r is the process at worker index logicalToWorld[r];
  // this process is logical rank `rank`; tags carry `epoch` (old messages never match).
  Status remap(uint32_t epoch, std::vector<int> logicalToWorld, int rank) override;
  // A process that joined later (a refilled spare): its worker index is the next one.
  void addPeer(std::vector<uint8_t> address) override;
  // The process at a worker index moved to another UCX worker: the endpoint to its old
  // one is closed (without waiting) and the next transfer connects to the new address.
  void setPeerAddress(size_t world, std::vector<uint8_t> address) override;
  // Whether the process at a worker index shares this node (error mode auto); before
  // the first transfer with it.
  void setLocal(size_t world, bool local) override { peers_[world].local = local; }
  int selfWorld() const override { return selfWorld_; }

  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(logicalToWorld_.size()); }
  Status isend(int peer, const void* buffer, size_t bytes, MessageKey key,
               TransportRequest** request) override;
  Status irecv(int peer, void* buffer, size_t bytes, MessageKey key,
               TransportRequest** request) override;
  Status test(TransportRequest** request, bool* done) override;
  void cancel(TransportRequest** request) override;
  Status findMismatchedMessage() override;
  bool progress() override;
  Status waitForActivity(int timeoutMs) override;
  void interrupt() override;

  // Releases endpoints without flushing at destruction (after a failure: peers may be dead).
  void setForceClose() override { forceClose_ = true; }

  // Requests posted by the algorithms and not yet completed or cancelled, per peer (only
  // the driving thread may call it).
  std::vector<OutstandingTransfers> outstanding() const override;

  // Logs (INFO, once per peer) which UCX transports carry traffic to `peer`.
  void logLanes(int peer) override;
  // The size from which UCX sends to this worker index by rendezvous; 0 if not known.
  uint64_t rendezvousThreshold(int world) const;

  // Bytes and busy time per process (worker index, stable across rebuilds); counting
  // is on unless disabled (FTCCL_STATS=0). Counters of a worker index stay valid for
  // the transport's life; the table grows only in connect() and addPeer().
  void setCounting(bool on) override { counting_ = on; }
  size_t processCount() const override { return peers_.size(); }
  const LinkCounters& counters(size_t worker) const override { return *peers_[worker].counters; }
  int worldOf(int peer) const { return logicalToWorld_[peer]; }

 private:
  // What UCX's error callback marks: it runs inside ucp_worker_progress on the driving
  // thread, and its argument must outlive growth of peers_.
  struct EndpointState {
    UcxTransport* owner = nullptr;
    int world = -1;
    bool failed = false;
  };
  struct Peer {
    std::vector<uint8_t> address;
    ucp_ep_h ep = nullptr;
    bool lanesLogged = false;
    bool receivedFrom = false;    // a receive was posted: UCX may hold an endpoint to it
    bool local = false;           // on this node (setLocal)
    bool epPeerMode = false;      // ep was created with peer error handling
    uint64_t stageBelow = 0;      // sends below this are staged (UCX's rendezvous threshold)
    uint32_t thresholdTries = 0;  // sends since the threshold was last looked for
    std::unique_ptr<LinkCounters> counters = std::make_unique<LinkCounters>();
    std::unique_ptr<EndpointState> state = std::make_unique<EndpointState>();
  };

  UcxTransport() = default;
  Status endpoint(int peer, ucp_ep_h* ep);
  Status createEndpoint(size_t world, ucp_ep_h* ep);
  bool usesPeerMode(const Peer& p) const;
  static void onEndpointError(void* arg, ucp_ep_h ep, ucs_status_t status);
  // Starts owning a posted request (null: it completed at once) and counts it.
  void track(void* request, int peer, bool receive, LinkCounters::Direction* direction,
             size_t bytes);
  void untrack(UcxRequest* request, bool completed);
  // A completed receive must have brought exactly the bytes posted (the ranks agree on
  // counts); else the op fails naming both sides.
  Status checkReceivedLength(void* request, const UcxRequest& info);
  std::string describeMismatch(const UcxRequest& info, const std::string& got) const;
  // Frees the orphans (cancelled requests) UCX has completed since.
  void reapOrphans();
  // ucp_request_free, and the staged slot back to the pool: UCX is done with both.
  void freeRequest(UcxRequest* request);
  // The op gave the request up: a staged send packs zeros from now on.
  static void abandon(UcxRequest* request);
  // Sends below this size to `p` are staged: UCX's rendezvous threshold for its endpoint,
  // read from ucp_ep_print_info (StagedSends::kLimit until it can be read).
  uint64_t stagingLimit(Peer& p, size_t world);

  // Teardown (ucx_teardown.cc): cancel, drain, close, wait, all bounded.
  // True when nothing is left outstanding: the worker can be destroyed.
  bool shutdown();
  void cancelAll();
  size_t drainUnexpected();
  void closeEndpointsFlushed(std::chrono::steady_clock::time_point deadline);
  void closeEndpointsForced();
  void retireEndpoint(Peer& peer);
  void waitForClosing(std::chrono::steady_clock::time_point deadline);

  std::shared_ptr<UcxContext> context_;
  UcxOptions options_;
  ucp_worker_h worker_ = nullptr;
  int eventFd_ = -1;
  std::vector<uint8_t> address_;
  std::unique_ptr<StagedSends> staged_;  // small sends to peers UCX cannot cancel on
  std::vector<Peer> peers_;              // by worker index (every process of the job)
  std::vector<int> logicalToWorld_;      // logical rank -> worker index
  int rank_ = -1;
  int selfWorld_ = -1;  // this process's worker index
  uint32_t epoch_ = 0;
  bool forceClose_ = false;
  bool counting_ = true;
  UcxRequestList orphans_;                 // cancelled, freed once UCX completes them
  UcxRequestList active_;                  // posted, held by the algorithms
  std::vector<ucs_status_ptr_t> closing_;  // endpoint close requests in progress
};

}  // namespace ftccl
