// Tearing a UCX worker down when any peer may be dead, stopped or cut off.
//
// ucp_worker_destroy asserts if a request is still outstanding on an endpoint, and warns
// about requests never returned to its pool and about unexpected messages never matched.
// After a failure all three happen unless teardown, in this order:
//  1. cancels every request the transport still owns (posted receives end at once);
//  2. drains this epoch's unexpected messages (late sends of a failed op) by receiving
//     each into no buffer: UCX ends it as truncated, and answers a rendezvous so that its
//     sender completes too (older epochs' are left, see drainUnexpected);
//  3. closes endpoints: an orderly leave first flushes them so that our last sends reach
//     live peers; then (peer error mode) every endpoint is closed with FORCE, which ends
//     the requests still on it with an error, whatever the peer's state;
//  4. progresses until every request and close has ended, and drains again.
// Each wait is bounded (kFlushLimit, kCloseLimit): a stopped peer cannot stall it.
// What UCX cannot end (a send to a dead same-node peer: no peer error mode there) keeps
// the worker from being destroyed; it goes with the process.
#include <chrono>
#include <cstring>
#include <vector>

#include "transports/tag_layout.h"
#include "transports/ucx/ucx_transport.h"
#include "util/log.h"

namespace ftccl {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kFlushLimit = std::chrono::milliseconds(2000);
constexpr auto kCloseLimit = std::chrono::milliseconds(1000);

ucp_request_param_t closeParams(unsigned flags) {
  ucp_request_param_t params;
  std::memset(&params, 0, sizeof(params));
  params.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  params.flags = flags;
  return params;
}

}  // namespace

bool UcxTransport::shutdown() {
  cancelAll();
  size_t drained = drainUnexpected();
  if (!forceClose_) closeEndpointsFlushed(Clock::now() + kFlushLimit);
  closeEndpointsForced();
  waitForClosing(Clock::now() + kCloseLimit);
  drained += drainUnexpected();
  if (drained > 0) {
    FTCCL_LOG(Debug, Net, "rank {}: dropped {} message(s) no op received at teardown", rank_,
              drained);
  }
  // Without peer error handling UCX can neither cancel a send nor close an endpoint by
  // force: a rendezvous send to a peer that died before answering never ends. Destroying
  // the worker then would warn about each; it is kept (and its context) until exit.
  size_t left = orphans_.size() + closing_.size();
  ucp_tag_recv_info_t info;
  bool oldMessages = ucp_tag_probe_nb(worker_, 0, 0, /*remove=*/0, &info) != nullptr;
  if (oldMessages) {
    FTCCL_LOG(Info, Net,
              "rank {}: messages of an earlier epoch were never received (a failed "
              "op's); the UCX worker is kept until exit",
              rank_);
  }
  if (left > 0) {
    FTCCL_LOG(Info, Net,
              "rank {}: {} UCX request(s) to failed peers never ended (UCX cannot "
              "cancel them without peer error handling); the UCX worker is kept until exit",
              rank_, left);
  }
  for (UcxRequest* r = orphans_.head(); r != nullptr;) {
    UcxRequest* next = r->next;
    orphans_.remove(r);
    ucp_request_free(r);
    r = next;
  }
  for (ucs_status_ptr_t request : closing_) ucp_request_free(request);
  closing_.clear();
  return left == 0 && !oldMessages;
}

// Requests the algorithms still hold (an op ended by abort) become orphans too.
void UcxTransport::cancelAll() {
  while (!active_.empty()) {
    UcxRequest* r = active_.head();
    untrack(r, /*completed=*/false);
    abandon(r);
    orphans_.push(r);
  }
  for (UcxRequest* r = orphans_.head(); r != nullptr; r = r->next) ucp_request_cancel(worker_, r);
  reapOrphans();
}

// Only this epoch's messages: their senders are members, with live endpoints. A message
// of an older epoch may come from a process that died, and without peer error mode UCX
// names the endpoint of a rendezvous reply by its address: the endpoint may have been
// destroyed on that failure and its memory reused for another peer's, so answering would
// send the dead sender's request id to a live process (which crashed on it). Those are
// left alone, and keep the worker from being destroyed (it would warn about them).
size_t UcxTransport::drainUnexpected() {
  size_t drained = 0;
  uint8_t sink = 0;
  std::vector<ucs_status_ptr_t> receiving;
  const ucp_tag_t thisEpoch = TagLayout::make(0, epoch_, 0, 0, 0);
  for (;;) {
    ucp_worker_progress(worker_);
    ucp_tag_recv_info_t info;
    ucp_tag_message_h message =
        ucp_tag_probe_nb(worker_, thisEpoch, TagLayout::kEpochMask, /*remove=*/1, &info);
    if (message == nullptr) break;
    ++drained;
    ucp_request_param_t params;
    std::memset(&params, 0, sizeof(params));
    ucs_status_ptr_t request = ucp_tag_msg_recv_nbx(worker_, &sink, 0, message, &params);
    if (UCS_PTR_IS_PTR(request)) receiving.push_back(request);
  }
  auto deadline = Clock::now() + kCloseLimit;
  for (ucs_status_ptr_t request : receiving) {
    while (ucp_request_check_status(request) == UCS_INPROGRESS && Clock::now() < deadline) {
      ucp_worker_progress(worker_);
    }
    ucp_request_free(request);  // UCX frees one still in progress when it ends
  }
  return drained;
}

// Flushes each member's endpoint (our last sends reach live peers) until the deadline. Without
// peer error mode this is the only close there is: an endpoint that did not flush in
// time is left to ucp_worker_destroy.
void UcxTransport::closeEndpointsFlushed(Clock::time_point deadline) {
  struct Flush {
    ucs_status_ptr_t request;
    bool peerMode;  // a flush (the forced close follows), else a flushing close
  };
  std::vector<Flush> flushing;
  // Only the current members: a former one failed (its endpoint may have failed too, and
  // UCX logs a flush of a failed endpoint as an error without peer error mode).
  std::vector<bool> member(peers_.size(), false);
  for (int w : logicalToWorld_) member[static_cast<size_t>(w)] = true;
  for (size_t w = 0; w < peers_.size(); ++w) {
    Peer& p = peers_[w];
    if (p.ep == nullptr || p.state->failed || !member[w]) continue;
    ucp_request_param_t params = closeParams(0);
    ucs_status_ptr_t request =
        p.epPeerMode ? ucp_ep_flush_nbx(p.ep, &params) : ucp_ep_close_nbx(p.ep, &params);
    if (UCS_PTR_IS_PTR(request)) flushing.push_back({request, p.epPeerMode});
    if (!p.epPeerMode) p.ep = nullptr;
  }
  size_t late = 0;
  for (const Flush& f : flushing) {
    while (ucp_request_check_status(f.request) == UCS_INPROGRESS && Clock::now() < deadline) {
      ucp_worker_progress(worker_);
    }
    bool done = ucp_request_check_status(f.request) != UCS_INPROGRESS;
    late += done ? 0 : 1;
    if (!done && f.peerMode) {
      closing_.push_back(f.request);  // the forced close ends it
    } else {
      ucp_request_free(f.request);  // UCX frees a close still in progress when it ends
    }
  }
  if (late > 0) {
    FTCCL_LOG(Info, Net,
              "rank {}: {} endpoint(s) did not flush within {} ms (a peer stopped or "
              "gone); closed without it",
              rank_, late, kFlushLimit.count());
  }
}

// Closes every peer-mode endpoint with FORCE. UCX may also hold an endpoint of its own
// to a peer that sent to us (created by that peer's connection request): when requests
// of ours with that peer are still outstanding, creating ours matches it, so that it is
// closed here too and not left with requests for ucp_worker_destroy. (Not otherwise: over
// TCP a new endpoint connects, and a peer that has already left refuses, which UCX logs
// as an error. Without peer mode UCX tracks no request on an endpoint.)
void UcxTransport::closeEndpointsForced() {
  std::vector<bool> pending(peers_.size(), false);
  for (const UcxRequest* r = orphans_.head(); r != nullptr; r = r->next) {
    if (r->world >= 0 && static_cast<size_t>(r->world) < pending.size()) pending[r->world] = true;
  }
  for (size_t w = 0; w < peers_.size(); ++w) {
    Peer& p = peers_[w];
    if (p.ep == nullptr && pending[w] && p.receivedFrom && usesPeerMode(p) &&
        static_cast<int>(w) != selfWorld_) {
      if (!createEndpoint(w, &p.ep).isOk()) p.ep = nullptr;
    }
    retireEndpoint(p);
  }
}

// Until everything has ended, the deadline, or kQuiet without any request ending: what a
// forced close ends, it ends within a few progress calls; what is left then (a send to a
// dead same-host peer) would not end by waiting longer.
void UcxTransport::waitForClosing(Clock::time_point deadline) {
  constexpr auto kQuiet = std::chrono::milliseconds(50);
  auto lastChange = Clock::now();
  size_t left = orphans_.size() + closing_.size();
  for (;;) {
    ucp_worker_progress(worker_);
    reapOrphans();
    for (size_t i = 0; i < closing_.size();) {
      if (ucp_request_check_status(closing_[i]) != UCS_INPROGRESS) {
        ucp_request_free(closing_[i]);
        closing_[i] = closing_.back();
        closing_.pop_back();
      } else {
        ++i;
      }
    }
    auto now = Clock::now();
    size_t nowLeft = orphans_.size() + closing_.size();
    if (nowLeft != left) {
      left = nowLeft;
      lastChange = now;
    }
    if (left == 0 || now >= deadline || now - lastChange >= kQuiet) return;
  }
}

}  // namespace ftccl
