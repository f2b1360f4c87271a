#include "transports/ucx/ucx_transport.h"

#include <poll.h>
#include <stdio.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "transports/tag_layout.h"
#include "transports/ucx/ucx_log_guard.h"
#include "transports/ucx/ucx_status.h"
#include "util/env.h"
#include "util/fault_injection.h"
#include "util/log.h"

namespace ftccl {

// One UCP context per process, shared by the workers of all communicators.
class UcxContext {
 public:
  static Status get(const UcxOptions& options, std::shared_ptr<UcxContext>* out) {
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
    // With FTCCL_UCX_ERROR_MODE=peer, shared memory needs it or UCX falls back to TCP
    // loopback (5x slower). (Auto mode uses peer handling only across hosts, where shared
    // memory plays no part, and UCX warns of a key no transport uses.) The user's wins.
    if (options.errorMode == UcxErrorMode::kPeer &&
        std::getenv("UCX_MM_ERROR_HANDLING") == nullptr) {
      ucs_status_t modified = ucp_config_modify(config, "MM_ERROR_HANDLING", "y");
      if (modified != UCS_OK) {
        ucp_config_release(config);
        return fromUcs(modified, "ucp_config_modify(MM_ERROR_HANDLING)");
      }
    }
    // UCX connects TCP endpoints with a blocking connect() by default: an endpoint made
    // to a host whose link was cut stalled the caller for the kernel's SYN retries
    // (about 2 minutes; chaos seed 92, a forced close at exit). Non-blocking, it fails
    // through UCX's own error path instead. (UCT matches a transport's own keys without
    // its prefix: "CONN_NB" is UCX_TCP_CONN_NB.)
    if (std::getenv("UCX_TCP_CONN_NB") == nullptr) {
      ucs_status_t modified = ucp_config_modify(config, "CONN_NB", "y");
      if (modified != UCS_OK) {
        ucp_config_release(config);
        return fromUcs(modified, "ucp_config_modify(CONN_NB)");
      }
    }
    if (!options.netDevice.empty() && std::getenv("UCX_NET_DEVICES") == nullptr) {
      ucs_status_t modified = ucp_config_modify(config, "NET_DEVICES", options.netDevice.c_str());
      if (modified != UCS_OK) {
        ucp_config_release(config);
        return fromUcs(modified, "ucp_config_modify(NET_DEVICES)");
      }
    }
    ucp_params_t params;
    std::memset(&params, 0, sizeof(params));
    params.field_mask =
        UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED | UCP_PARAM_FIELD_REQUEST_SIZE;
    params.features = UCP_FEATURE_TAG | UCP_FEATURE_WAKEUP;
    params.request_size = sizeof(UcxRequest);
    params.mt_workers_shared = 1;  // workers of different communicators run on different threads
    installUcxLogGuard();
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

// ucp_ep_print_info as text (it only writes to a FILE).
std::string endpointInfo(ucp_ep_h ep) {
  char* text = nullptr;
  size_t length = 0;
  FILE* stream = open_memstream(&text, &length);
  if (stream == nullptr) return "";
  ucp_ep_print_info(ep, stream);
  fclose(stream);
  std::string info(text, length);
  free(text);
  return info;
}

ucp_request_param_t noCallbackParams() {
  ucp_request_param_t params;
  std::memset(&params, 0, sizeof(params));
  return params;
}

}  // namespace

Status ucxOptionsFromEnv(UcxOptions* options) {
  std::string mode = envString("FTCCL_UCX_ERROR_MODE");
  if (mode.empty() || mode == "auto") {
    options->errorMode = UcxErrorMode::kAuto;
  } else if (mode == "none") {
    options->errorMode = UcxErrorMode::kNone;
  } else if (mode == "peer") {
    options->errorMode = UcxErrorMode::kPeer;
  } else {
    return invalidArgument("FTCCL_UCX_ERROR_MODE=" + mode + " is not one of auto, peer, none");
  }
  return Status::ok();
}

Status UcxTransport::create(const UcxOptions& options, std::unique_ptr<UcxTransport>* out) {
  std::unique_ptr<UcxTransport> t(new UcxTransport());
  t->options_ = options;
  FTCCL_CHECK(UcxContext::get(options, &t->context_));

  ucp_worker_params_t params;
  std::memset(&params, 0, sizeof(params));
  params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  // One thread at a time drives a communicator (ops run in issue order, one after another).
  params.thread_mode = UCS_THREAD_MODE_SERIALIZED;
  FTCCL_CHECK(
      fromUcs(ucp_worker_create(t->context_->handle(), &params, &t->worker_), "ucp_worker_create"));
  FTCCL_CHECK(fromUcs(ucp_worker_get_efd(t->worker_, &t->eventFd_), "ucp_worker_get_efd"));
  t->staged_ = std::make_unique<StagedSends>();
  FTCCL_CHECK(t->staged_->init());

  ucp_address_t* address = nullptr;
  size_t length = 0;
  FTCCL_CHECK(
      fromUcs(ucp_worker_get_address(t->worker_, &address, &length), "ucp_worker_get_address"));
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(address);
  t->address_.assign(bytes, bytes + length);
  ucp_worker_release_address(t->worker_, address);
  *out = std::move(t);
  return Status::ok();
}

UcxTransport::~UcxTransport() {
  if (worker_ == nullptr) return;
  if (shutdown()) {
    ucp_worker_destroy(worker_);
    return;
  }
  // Kept until exit (see ucx_teardown.cc), with the context it belongs to and the staged
  // sends its requests may still pack: never freed, and reachable from here (not a leak
  // to a leak checker).
  struct Kept {
    std::shared_ptr<UcxContext> context;
    ucp_worker_h worker;
    std::unique_ptr<StagedSends> staged;
  };
  static std::mutex mutex;
  static auto* kept = new std::vector<Kept>();
  std::lock_guard<std::mutex> lock(mutex);
  kept->push_back(Kept{std::move(context_), worker_, std::move(staged_)});
}

Status UcxTransport::connect(int rank, std::vector<std::vector<uint8_t>> addresses,
                             uint32_t epoch) {
  if (addresses.size() > TagLayout::kMaxRanks) {
    return invalidArgument("more ranks than the tag layout can address (2^20)");
  }
  rank_ = rank;
  selfWorld_ = rank;
  epoch_ = epoch;
  peers_.clear();
  peers_.resize(addresses.size());
  for (size_t i = 0; i < addresses.size(); ++i) {
    peers_[i].address = std::move(addresses[i]);
    *peers_[i].state = EndpointState{this, static_cast<int>(i), false};
  }
  logicalToWorld_.resize(peers_.size());
  for (size_t i = 0; i < peers_.size(); ++i) logicalToWorld_[i] = static_cast<int>(i);
  return Status::ok();
}

void UcxTransport::addPeer(std::vector<uint8_t> address) {
  peers_.emplace_back();
  peers_.back().address = std::move(address);
  *peers_.back().state = EndpointState{this, static_cast<int>(peers_.size() - 1), false};
}

void UcxTransport::setPeerAddress(size_t world, std::vector<uint8_t> address) {
  Peer& p = peers_[world];
  if (p.ep != nullptr && p.epPeerMode) {
    retireEndpoint(p);
  } else if (p.ep != nullptr) {
    // No forced close without peer error handling: a flushing close, whose request (if
    // any) teardown ends or leaves, bounded, with the others.
    ucp_request_param_t params = noCallbackParams();
    ucs_status_ptr_t closing = ucp_ep_close_nbx(p.ep, &params);
    if (UCS_PTR_IS_PTR(closing)) closing_.push_back(closing);
    p.ep = nullptr;
  }
  p.state->failed = false;
  p.lanesLogged = false;
  p.stageBelow = 0;
  p.thresholdTries = 0;
  p.address = std::move(address);
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
  size_t world = static_cast<size_t>(logicalToWorld_[peer]);
  Peer& p = peers_[world];
  // UCX failed this endpoint (its requests completed with the error): health decides
  // whether the peer is gone; if it is not, the next transfer gets a fresh endpoint.
  if (p.state->failed) retireEndpoint(p);
  if (p.ep == nullptr) FTCCL_CHECK(createEndpoint(world, &p.ep));
  *ep = p.ep;
  return Status::ok();
}

Status UcxTransport::createEndpoint(size_t world, ucp_ep_h* ep) {
  Peer& p = peers_[world];
  ucp_ep_params_t params;
  std::memset(&params, 0, sizeof(params));
  params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
  params.address = reinterpret_cast<const ucp_address_t*>(p.address.data());
  p.epPeerMode = usesPeerMode(p);
  if (p.epPeerMode) {
    params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    params.field_mask |= UCP_EP_PARAM_FIELD_ERR_HANDLER;
    params.err_handler.cb = onEndpointError;
    params.err_handler.arg = p.state.get();
  } else {
    params.err_mode = UCP_ERR_HANDLING_MODE_NONE;
  }
  return fromUcs(ucp_ep_create(worker_, &params, ep), "ucp_ep_create");
}

bool UcxTransport::usesPeerMode(const Peer& p) const {
  switch (options_.errorMode) {
    case UcxErrorMode::kPeer:
      return true;
    case UcxErrorMode::kNone:
      return false;
    default:
      return !p.local;
  }
}

void UcxTransport::onEndpointError(void* arg, ucp_ep_h /*ep*/, ucs_status_t status) {
  EndpointState* state = static_cast<EndpointState*>(arg);
  state->failed = true;
  // Requests on this endpoint complete with the error; health (not UCX) names failures.
  FTCCL_LOG(Debug, Net, "rank {}: UCX failed the endpoint to process {}: {}", state->owner->rank_,
            state->world, ucs_status_string(status));
}

// Closes an endpoint with FORCE (its requests complete with an error) and forgets it:
// one UCX failed, or teardown. Only peer error mode allows it.
void UcxTransport::retireEndpoint(Peer& p) {
  p.state->failed = false;
  if (p.ep == nullptr || !p.epPeerMode) return;
  p.stageBelow = 0;  // the next endpoint may choose other lanes
  p.thresholdTries = 0;
  ucp_request_param_t params = noCallbackParams();
  params.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  params.flags = UCP_EP_CLOSE_FLAG_FORCE;
  ucs_status_ptr_t closing = ucp_ep_close_nbx(p.ep, &params);
  if (UCS_PTR_IS_PTR(closing)) closing_.push_back(closing);
  p.ep = nullptr;
}

// Logs which UCX transports carry traffic to this peer (ucp_ep_print_info's lanes), once
// per peer and after traffic has flowed: before wireup completes only wireup lanes exist.
void UcxTransport::logLanes(int peer) {
  if (!logEnabled(LogLevel::Info, Subsys::Net) || peer < 0 || peer >= size()) return;
  Peer& p = peers_[logicalToWorld_[peer]];
  if (p.ep == nullptr || p.lanesLogged) return;
  p.lanesLogged = true;
  std::istringstream lines(endpointInfo(p.ep));
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
            p.epPeerMode ? "peer" : "none");
}

Status UcxTransport::isend(int peer, const void* buffer, size_t bytes, MessageKey key,
                           TransportRequest** request) {
  if (faultDropAll()) {
    *request = kDroppedRequest;
    return Status::ok();
  }
  ucp_ep_h ep = nullptr;
  FTCCL_CHECK(endpoint(peer, &ep));
  ucp_tag_t tag = TagLayout::make(key.signature, epoch_, key.opSeq, key.channel, rank_);
  Peer& to = peers_[logicalToWorld_[peer]];
  ucp_request_param_t params = noCallbackParams();
  StagedSend* staged = nullptr;
  ucs_status_ptr_t sent = nullptr;
  if (bytes > 0 && bytes < stagingLimit(to, static_cast<size_t>(logicalToWorld_[peer]))) {
    // Inline when the peer's queue has room (UCX's fastest path, nothing left behind);
    // else staged, since it would wait in UCX's queue holding the application's buffer.
    params.op_attr_mask = UCP_OP_ATTR_FLAG_FORCE_IMM_CMPL;
    sent = ucp_tag_send_nbx(ep, buffer, bytes, tag, &params);
    if (UCS_PTR_STATUS(sent) == UCS_ERR_NO_RESOURCE) {
      staged = staged_->acquire(buffer, bytes);
      params.op_attr_mask = UCP_OP_ATTR_FIELD_DATATYPE;
      params.datatype = staged_->datatype();
      sent = ucp_tag_send_nbx(ep, staged, 1, tag, &params);
    }
  } else {
    sent = ucp_tag_send_nbx(ep, buffer, bytes, tag, &params);
  }
  if (staged != nullptr && !UCS_PTR_IS_PTR(sent)) staged_->release(staged);  // done or failed
  if (UCS_PTR_IS_ERR(sent)) {
    *request = nullptr;
    return fromUcs(UCS_PTR_STATUS(sent), "send");
  }
  track(sent, peer, /*receive=*/false, &to.counters->send, bytes);
  if (sent != nullptr) static_cast<UcxRequest*>(sent)->staged = staged;
  *request = static_cast<TransportRequest*>(sent);
  return Status::ok();
}

Status UcxTransport::irecv(int peer, void* buffer, size_t bytes, MessageKey key,
                           TransportRequest** request) {
  if (peer < 0 || peer >= size()) return internalError("peer rank out of range");
  ucp_tag_t tag = TagLayout::make(key.signature, epoch_, key.opSeq, key.channel, peer);
  ucp_request_param_t params = noCallbackParams();
  ucs_status_ptr_t posted =
      ucp_tag_recv_nbx(worker_, buffer, bytes, tag, TagLayout::kFullMask, &params);
  if (UCS_PTR_IS_ERR(posted)) {
    *request = nullptr;
    return fromUcs(UCS_PTR_STATUS(posted), "receive");
  }
  Peer& from = peers_[logicalToWorld_[peer]];
  from.receivedFrom = true;
  track(posted, peer, /*receive=*/true, &from.counters->recv, bytes);
  if (posted != nullptr) static_cast<UcxRequest*>(posted)->tag = tag;
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
  UcxRequest* info = static_cast<UcxRequest*>(static_cast<void*>(*request));
  Status result = fromUcs(status, ((info->receive ? "receive from rank " : "send to rank ") +
                                   std::to_string(info->peer))
                                      .c_str());
  if (status == UCS_OK && info->receive) result = checkReceivedLength(*request, *info);
  if (status == UCS_ERR_MESSAGE_TRUNCATED) {
    result = invalidUsage(describeMismatch(*info, "more than " + std::to_string(info->bytes)));
  }
  untrack(info, status == UCS_OK);
  freeRequest(info);
  *request = nullptr;
  *done = true;
  return result;
}

std::string UcxTransport::describeMismatch(const UcxRequest& info, const std::string& got) const {
  return "a message of " + got + " bytes arrived from rank " + std::to_string(info.peer) +
         " where rank " + std::to_string(rank_) + " posted a receive of " +
         std::to_string(info.bytes) + " bytes: the ranks passed different counts";
}

Status UcxTransport::checkReceivedLength(void* request, const UcxRequest& info) {
  ucp_tag_recv_info_t received;
  std::memset(&received, 0, sizeof(received));
  if (ucp_tag_recv_request_test(request, &received) != UCS_OK) return Status::ok();
  if (received.length == info.bytes) return Status::ok();
  return invalidUsage(describeMismatch(info, std::to_string(received.length)));
}

// Cheap enough for every idle wakeup of a waiting op: one probe of UCX's unexpected
// queue per posted receive (a few per op), none when nothing waits.
Status UcxTransport::findMismatchedMessage() {
  for (const UcxRequest* r = active_.head(); r != nullptr; r = r->next) {
    if (!r->receive) continue;
    ucp_tag_recv_info_t info;
    if (ucp_tag_probe_nb(worker_, r->tag, TagLayout::kAnySignatureMask, /*remove=*/0, &info) ==
            nullptr ||
        info.sender_tag == r->tag) {
      continue;
    }
    return invalidUsage(
        "rank " + std::to_string(r->peer) + " sent a message of " + std::to_string(info.length) +
        " bytes for op " + std::to_string(TagLayout::seqOf(r->tag)) + " with signature " +
        std::to_string(TagLayout::signatureOf(info.sender_tag)) + " where rank " +
        std::to_string(rank_) + " expects signature " +
        std::to_string(TagLayout::signatureOf(r->tag)) +
        ": the ranks called the op with different counts, types, reductions, roots or "
        "algorithm settings");
  }
  return Status::ok();
}

void UcxTransport::cancel(TransportRequest** request) {
  if (*request == nullptr) return;
  if (*request == kDroppedRequest) {
    *request = nullptr;
    return;
  }
  // A posted receive is cancelled at once; a send or a matched rendezvous goes on until
  // UCX ends it (done, or failed with its endpoint): the transport frees it then.
  UcxRequest* info = static_cast<UcxRequest*>(static_cast<void*>(*request));
  untrack(info, /*completed=*/false);
  ucp_request_cancel(worker_, *request);
  if (ucp_request_check_status(*request) != UCS_INPROGRESS) {
    freeRequest(info);
  } else {
    abandon(info);
    orphans_.push(info);
    // Not closing a live peer's endpoint by force to end a large send: over TCP that
    // dropped the connection under messages the peer had already counted as sent, and
    // the survivor waited for them for ever (chaos seeds 7734, 7736).
  }
  *request = nullptr;
}

void UcxTransport::track(void* request, int peer, bool receive, LinkCounters::Direction* direction,
                         size_t bytes) {
  if (counting_) direction->posted(bytes, /*completedAtOnce=*/request == nullptr);
  if (request == nullptr) return;
  UcxRequest* info = static_cast<UcxRequest*>(request);
  info->counted = counting_ ? direction : nullptr;
  info->bytes = bytes;
  info->world = logicalToWorld_[peer];
  info->peer = peer;
  info->receive = receive;
  info->staged = nullptr;
  active_.push(info);
}

void UcxTransport::untrack(UcxRequest* info, bool completed) {
  if (info->counted != nullptr) info->counted->finished(info->bytes, completed);
  info->counted = nullptr;
  active_.remove(info);
}

void UcxTransport::reapOrphans() {
  for (UcxRequest* r = orphans_.head(); r != nullptr;) {
    UcxRequest* next = r->next;
    if (ucp_request_check_status(r) != UCS_INPROGRESS) {
      orphans_.remove(r);
      freeRequest(r);
    }
    r = next;
  }
}

uint64_t UcxTransport::stagingLimit(Peer& p, size_t world) {
  // Read once the endpoint's lanes are settled; before that (wireup), every 64 sends,
  // 16 times at most: an endpoint whose description never shows a threshold (some TCP
  // ones) must not pay ucp_ep_print_info on its hot path for ever.
  if (p.stageBelow == 0 && p.thresholdTries < 16 * 64 && p.thresholdTries++ % 64 == 0) {
    p.stageBelow = rendezvousThreshold(static_cast<int>(world));
  }
  return p.stageBelow != 0 ? p.stageBelow : StagedSends::kLimit;
}

void UcxTransport::freeRequest(UcxRequest* request) {
  if (request->staged != nullptr) staged_->release(request->staged);
  request->staged = nullptr;
  ucp_request_free(request);
}

void UcxTransport::abandon(UcxRequest* request) {
  if (request->staged != nullptr) request->staged->abandoned = true;
}

std::vector<OutstandingTransfers> UcxTransport::outstanding() const {
  std::vector<OutstandingTransfers> out;
  for (const UcxRequest* r = active_.head(); r != nullptr; r = r->next) {
    auto it = std::find_if(out.begin(), out.end(),
                           [&](const OutstandingTransfers& o) { return o.world == r->world; });
    if (it == out.end()) it = out.insert(out.end(), OutstandingTransfers{r->world, 0, 0, 0});
    ++it->count;
    it->bytes += r->bytes;
    it->largest = std::max(it->largest, r->bytes);
  }
  for (OutstandingTransfers& o : out) {
    o.rendezvousThreshold = rendezvousThreshold(o.world);
    if (o.rendezvousThreshold == 0) continue;
    for (const UcxRequest* r = active_.head(); r != nullptr; r = r->next) {
      if (r->world == o.world && r->bytes >= o.rendezvousThreshold) ++o.rendezvous;
    }
  }
  return out;
}

// From "#  tag_send: 0..<egr/short>..8185..<egr/bcopy>..8192..<rndv>..(inf)": 8192.
uint64_t UcxTransport::rendezvousThreshold(int world) const {
  if (world < 0 || world >= static_cast<int>(peers_.size())) return 0;
  ucp_ep_h ep = peers_[world].ep;
  if (ep == nullptr) return 0;
  std::string info = endpointInfo(ep);
  size_t line = info.find("tag_send:");
  size_t rndv = info.find("..<rndv>", line);
  if (line == std::string::npos || rndv == std::string::npos) return 0;
  size_t start = info.rfind("..", rndv - 1);
  if (start == std::string::npos || start < line) return 0;
  return std::strtoull(info.c_str() + start + 2, nullptr, 10);
}

bool UcxTransport::progress() {
  bool any = ucp_worker_progress(worker_) != 0;
  if (!orphans_.empty()) reapOrphans();
  return any;
}

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

}  // namespace ftccl
