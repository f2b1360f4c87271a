#include "transports/ucx/ucx_transport.h"

#include <poll.h>
#include <stdio.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "transports/tag_layout.h"
#include "transports/ucx/ucx_status.h"
#include "util/env.h"
#include "util/fault_injection.h"
#include "util/log.h"

namespace ftccl {

// Our part of every UCX request (UCP reserves request_size bytes at the handle):
// which link's counters its completion updates, without a lookup or an allocation.
namespace {
struct RequestInfo {
  LinkCounters::Direction* counted;  // null: not counted
  uint64_t bytes;
};
}  // namespace

// One UCP context per process, shared by the workers of all communicators.
class UcxContext {
 public:
  static Status get(std::shared_ptr<UcxContext>* out) {
    static std::mutex mutex;
    static std::weak_ptr<UcxContext> current;
    std::lock_guard<std::mutex> lock(mutex);
    if (auto existing = current.lock()) {
      *out = existing;
      return Status::ok();
    }
    auto context = std::shared_ptr<UcxContext>(new UcxContext());
    ucp_config_t* config = nullptr;
    FTCCL_CHECK(fromUcs(ucp_config_read("FTCCL", nullptr, &config), "ucp_config_read"));
    ucp_params_t params;
    std::memset(&params, 0, sizeof(params));
    params.field_mask =
        UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED | UCP_PARAM_FIELD_REQUEST_SIZE;
    params.features = UCP_FEATURE_TAG | UCP_FEATURE_WAKEUP;
    params.request_size = sizeof(RequestInfo);
    params.mt_workers_shared = 1;  // workers of different communicators run on different threads
    ucs_status_t status = ucp_init(&params, config, &context->context_);
    ucp_config_release(config);
    FTCCL_CHECK(fromUcs(status, "ucp_init"));
    current = context;
    *out = context;
    return Status::ok();
  }
  ~UcxContext() {
    if (context_) ucp_cleanup(context_);
  }
  ucp_context_h handle() const { return context_; }

 private:
  UcxContext() = default;
  ucp_context_h context_ = nullptr;
};

namespace {

// What isend returns while fault injection drops all traffic: a request that never
// completes, as a send into a cut link.
TransportRequest* const kDroppedRequest = reinterpret_cast<TransportRequest*>(uintptr_t{1});

void onEndpointError(void* arg, ucp_ep_h ep, ucs_status_t status) {
  int peer = static_cast<int>(reinterpret_cast<intptr_t>(arg));
  // Requests on this endpoint complete with the error; health (not UCX) decides who failed.
  FTCCL_LOG(Warn, Net, "UCX reports an error on the endpoint to rank {}: {}", peer,
            ucs_status_string(status));
}

ucp_request_param_t noCallbackParams() {
  ucp_request_param_t params;
  std::memset(&params, 0, sizeof(params));
  return params;
}

}  // namespace

Status ucxOptionsFromEnv(UcxOptions* options) {
  std::string mode = envString("FTCCL_UCX_ERROR_MODE");
  if (mode.empty() || mode == "none") {
    options->errorMode = UcxErrorMode::kNone;
  } else if (mode == "peer") {
    options->errorMode = UcxErrorMode::kPeer;
  } else {
    return invalidArgument("FTCCL_UCX_ERROR_MODE=" + mode + " is not one of none, peer");
  }
  return Status::ok();
}

Status UcxTransport::create(const UcxOptions& options, std::unique_ptr<UcxTransport>* out) {
  std::unique_ptr<UcxTransport> t(new UcxTransport());
  t->options_ = options;
  FTCCL_CHECK(UcxContext::get(&t->context_));

  ucp_worker_params_t params;
  std::memset(&params, 0, sizeof(params));
  params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  // One thread at a time drives a communicator (ops run in issue order, one after another).
  params.thread_mode = UCS_THREAD_MODE_SERIALIZED;
  FTCCL_CHECK(fromUcs(ucp_worker_create(t->context_->handle(), &params, &t->worker_),
                      "ucp_worker_create"));
  FTCCL_CHECK(fromUcs(ucp_worker_get_efd(t->worker_, &t->eventFd_), "ucp_worker_get_efd"));

  ucp_address_t* address = nullptr;
  size_t length = 0;
  FTCCL_CHECK(fromUcs(ucp_worker_get_address(t->worker_, &address, &length),
                      "ucp_worker_get_address"));
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(address);
  t->address_.assign(bytes, bytes + length);
  ucp_worker_release_address(t->worker_, address);
  *out = std::move(t);
  return Status::ok();
}

UcxTransport::~UcxTransport() {
  // After a failure, flushing could wait on a dead peer: ucp_worker_destroy releases the
  // endpoints without flushing (FORCE close needs peer error handling, which we skip).
  if (!forceClose_) closeEndpoints();
  if (worker_) ucp_worker_destroy(worker_);
}

Status UcxTransport::connect(int rank, std::vector<std::vector<uint8_t>> addresses,
                             uint32_t commId, uint32_t epoch) {
  if (addresses.size() > TagLayout::kMaxRanks) {
    return invalidArgument("more ranks than the tag layout can address (2^20)");
  }
  rank_ = rank;
  commId_ = commId;
  epoch_ = epoch;
  peers_.clear();
  peers_.resize(addresses.size());
  for (size_t i = 0; i < addresses.size(); ++i) peers_[i].address = std::move(addresses[i]);
  logicalToWorld_.resize(peers_.size());
  for (size_t i = 0; i < peers_.size(); ++i) logicalToWorld_[i] = static_cast<int>(i);
  return Status::ok();
}

void UcxTransport::addPeer(std::vector<uint8_t> address) {
  peers_.emplace_back();
  peers_.back().address = std::move(address);
}

Status UcxTransport::remap(uint32_t epoch, std::vector<int> logicalToWorld, int rank) {
  for (int w : logicalToWorld) {
    if (w < 0 || w >= static_cast<int>(peers_.size())) return internalError("bad remap");
  }
  epoch_ = epoch;
  logicalToWorld_ = std::move(logicalToWorld);
  rank_ = rank;
  return Status::ok();
}

Status UcxTransport::endpoint(int peer, ucp_ep_h* ep) {
  if (peer < 0 || peer >= size()) return internalError("peer rank out of range");
  Peer& p = peers_[logicalToWorld_[peer]];
  if (p.ep == nullptr) {
    ucp_ep_params_t params;
    std::memset(&params, 0, sizeof(params));
    params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
    params.address = reinterpret_cast<const ucp_address_t*>(p.address.data());
    if (options_.errorMode == UcxErrorMode::kPeer) {
      params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
      params.field_mask |= UCP_EP_PARAM_FIELD_ERR_HANDLER;
      params.err_handler.cb = onEndpointError;
      params.err_handler.arg = reinterpret_cast<void*>(static_cast<intptr_t>(peer));
    } else {
      params.err_mode = UCP_ERR_HANDLING_MODE_NONE;
    }
    FTCCL_CHECK(fromUcs(ucp_ep_create(worker_, &params, &p.ep), "ucp_ep_create"));
  }
  *ep = p.ep;
  return Status::ok();
}

// Logs which UCX transports carry traffic to this peer (ucp_ep_print_info's lanes), once
// per peer and after traffic has flowed: before wireup completes only wireup lanes exist.
void UcxTransport::logLanes(int peer) {
  if (!logEnabled(LogLevel::Info, Subsys::Net) || peer < 0 || peer >= size()) return;
  Peer& p = peers_[logicalToWorld_[peer]];
  if (p.ep == nullptr || p.lanesLogged) return;
  p.lanesLogged = true;
  char* text = nullptr;
  size_t length = 0;
  FILE* stream = open_memstream(&text, &length);
  if (stream == nullptr) return;
  ucp_ep_print_info(p.ep, stream);
  fclose(stream);
  std::istringstream lines(std::string(text, length));
  free(text);
  std::string line, lanes;
  while (std::getline(lines, line)) {
    // "#  lane[1]:  5:cma/memory.0 md[4]  -> md[4]/cma/sysdev[255] rma_bw#0"
    size_t at = line.find("lane[");
    size_t arrow = line.find("->");
    if (at == std::string::npos || arrow == std::string::npos) continue;
    std::istringstream head(line.substr(line.find(':', at) + 1)), tail(line.substr(arrow + 2));
    std::string transport, remote, use, uses;
    head >> transport;
    tail >> remote;
    while (tail >> use) uses += (uses.empty() ? "" : " ") + use;
    lanes += (lanes.empty() ? "" : ", ") + transport + " [" + uses + "]";
  }
  FTCCL_LOG(Info, Net, "rank {} -> {}: UCX lanes {} (error mode {})", rank_, peer, lanes,
            options_.errorMode == UcxErrorMode::kPeer ? "peer" : "none");
}

Status UcxTransport::isend(int peer, const void* buffer, size_t bytes, MessageKey key,
                           TransportRequest** request) {
  if (faultDropAll()) {
    *request = kDroppedRequest;
    return Status::ok();
  }
  ucp_ep_h ep = nullptr;
  FTCCL_CHECK(endpoint(peer, &ep));
  ucp_tag_t tag = TagLayout::make(commId_, epoch_, key.opSeq, key.channel, rank_);
  ucp_request_param_t params = noCallbackParams();
  ucs_status_ptr_t sent = ucp_tag_send_nbx(ep, buffer, bytes, tag, &params);
  if (UCS_PTR_IS_ERR(sent)) {
    *request = nullptr;
    return fromUcs(UCS_PTR_STATUS(sent), "send");
  }
  track(sent, &peers_[logicalToWorld_[peer]].counters->send, bytes);
  *request = static_cast<TransportRequest*>(sent);
  return Status::ok();
}

Status UcxTransport::irecv(int peer, void* buffer, size_t bytes, MessageKey key,
                           TransportRequest** request) {
  ucp_tag_t tag = TagLayout::make(commId_, epoch_, key.opSeq, key.channel, peer);
  ucp_request_param_t params = noCallbackParams();
  ucs_status_ptr_t posted =
      ucp_tag_recv_nbx(worker_, buffer, bytes, tag, TagLayout::kFullMask, &params);
  if (UCS_PTR_IS_ERR(posted)) {
    *request = nullptr;
    return fromUcs(UCS_PTR_STATUS(posted), "receive");
  }
  track(posted, &peers_[logicalToWorld_[peer]].counters->recv, bytes);
  *request = static_cast<TransportRequest*>(posted);
  return Status::ok();
}

Status UcxTransport::test(TransportRequest** request, bool* done) {
  if (*request == nullptr) {
    *done = true;
    return Status::ok();
  }
  if (*request == kDroppedRequest) {
    *done = false;
    return Status::ok();
  }
  ucs_status_t status = ucp_request_check_status(*request);
  if (status == UCS_INPROGRESS) {
    *done = false;
    return Status::ok();
  }
  untrack(*request, status == UCS_OK);
  ucp_request_free(*request);
  *request = nullptr;
  *done = true;
  return fromUcs(status, "transfer");
}

void UcxTransport::cancel(TransportRequest** request) {
  if (*request == nullptr) return;
  if (*request == kDroppedRequest) {
    *request = nullptr;
    return;
  }
  // The request is released by UCX once the cancellation completes during progress.
  untrack(*request, /*completed=*/false);
  ucp_request_cancel(worker_, *request);
  ucp_request_free(*request);
  *request = nullptr;
}

void UcxTransport::track(void* request, LinkCounters::Direction* direction, size_t bytes) {
  if (!counting_) {
    if (request != nullptr) static_cast<RequestInfo*>(request)->counted = nullptr;
    return;
  }
  direction->posted(bytes, /*completedAtOnce=*/request == nullptr);
  if (request != nullptr) *static_cast<RequestInfo*>(request) = RequestInfo{direction, bytes};
}

void UcxTransport::untrack(void* request, bool completed) {
  RequestInfo* info = static_cast<RequestInfo*>(request);
  if (info->counted != nullptr) info->counted->finished(info->bytes, completed);
  info->counted = nullptr;
}

bool UcxTransport::progress() { return ucp_worker_progress(worker_) != 0; }

Status UcxTransport::waitForActivity(int timeoutMs) {
  ucs_status_t armed = ucp_worker_arm(worker_);
  if (armed == UCS_ERR_BUSY) return Status::ok();  // events are pending: go progress them
  FTCCL_CHECK(fromUcs(armed, "ucp_worker_arm"));
  struct pollfd pfd = {eventFd_, POLLIN, 0};
  int ready = poll(&pfd, 1, timeoutMs);
  if (ready < 0 && errno != EINTR) return systemError(std::string("poll: ") + strerror(errno));
  return Status::ok();
}

void UcxTransport::interrupt() {
  if (worker_) ucp_worker_signal(worker_);
}

// Flushes each endpoint so that our last sends reach their peers, bounded in time,
// then forces the rest closed (a peer that is gone must not stall destroy).
void UcxTransport::closeEndpoints() {
  constexpr auto kFlushLimit = std::chrono::milliseconds(2000);
  auto deadline = std::chrono::steady_clock::now() + kFlushLimit;
  std::vector<ucs_status_ptr_t> closing;
  for (Peer& p : peers_) {
    if (p.ep == nullptr) continue;
    ucp_request_param_t params = noCallbackParams();
    params.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    params.flags = 0;  // flush
    ucs_status_ptr_t req = ucp_ep_close_nbx(p.ep, &params);
    if (req != nullptr && !UCS_PTR_IS_ERR(req)) closing.push_back(req);
    p.ep = nullptr;
  }
  for (ucs_status_ptr_t req : closing) {
    while (ucp_request_check_status(req) == UCS_INPROGRESS &&
           std::chrono::steady_clock::now() < deadline) {
      ucp_worker_progress(worker_);
    }
    if (ucp_request_check_status(req) == UCS_INPROGRESS) {
      FTCCL_LOG(Warn, Net, "rank {}: an endpoint did not flush within {} ms; abandoned", rank_,
                kFlushLimit.count());
      ucp_request_cancel(worker_, req);
    }
    ucp_request_free(req);
  }
}

}  // namespace ftccl
