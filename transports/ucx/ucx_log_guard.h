// Keeps a peer's death from aborting this process inside UCX 1.13.
//
// With no peer error handling (how ftccl talks to same-node peers, to keep CMA zero-copy),
// a CMA rendezvous read or write of a peer that has died fails with ESRCH. UCP then
// fails that endpoint and completes its requests with an error, exactly as it does in
// peer error mode (ucp_ep_set_failed: discard the lanes, purge the requests); but since
// no error callback is installed it reports the error as unhandled, and uct logs it at
// FATAL level, which UCX's default log handler turns into abort(). The guard is a UCX log
// handler, called before the default one, that stops that one message (from
// uct_cma_ep_tx_error, at FATAL level) and logs it at debug level instead: the transfer
// then fails, the op fails with it, and ftccl's health thread names the dead peer.
// Two more reports of a same-host peer that is gone (its shared-memory segment removed
// when a new endpoint attaches to it) are logged at debug level too. Every other
// message, fatal or not, goes on to UCX's own handlers.
#pragma once

namespace ftccl {

// Installs the guard once per process (before the first UCP context).
void installUcxLogGuard();

}  // namespace ftccl
