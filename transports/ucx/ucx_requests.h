// Every UCX request the transport has posted and not yet released, kept in an intrusive
// list inside the request itself (UCP reserves `request_size` bytes at each handle for
// us), so posting and completing cost two pointer writes and no allocation.
//
// Why keep them at all: a peer can die at any instant. A request to or from it may then
// never complete (a send into a stopped peer's shared-memory queue, a rendezvous whose
// data never comes), and UCX asserts at ucp_worker_destroy when requests are still
// outstanding on an endpoint, or warns about requests never returned to its pool. The
// transport therefore owns each request until UCX has completed it: a request the
// algorithm cancels becomes an orphan that progress() frees once UCX is done with it,
// and teardown cancels, force-closes and drains whatever is left before the worker goes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "transports/link_counters.h"
#include "transports/ucx/ucx_staged_sends.h"

namespace ftccl {

struct UcxRequest {
  LinkCounters::Direction* counted = nullptr;  // null: not counted
  uint64_t bytes = 0;                          // bytes posted
  uint64_t tag = 0;                            // a receive's tag (findMismatchedMessage)
  int32_t world = -1;                          // the peer's worker index
  int32_t peer = -1;                           // its logical rank when posted
  bool receive = false;
  StagedSend* staged = nullptr;  // a staged send's slot, released with the request
  UcxRequest* prev = nullptr;
  UcxRequest* next = nullptr;
};

// A doubly linked list of requests; a request is in at most one list at a time.
class UcxRequestList {
 public:
  void push(UcxRequest* r) {
    r->prev = nullptr;
    r->next = head_;
    if (head_ != nullptr) head_->prev = r;
    head_ = r;
    ++size_;
  }
  void remove(UcxRequest* r) {
    if (r->prev != nullptr) r->prev->next = r->next;
    if (r->next != nullptr) r->next->prev = r->prev;
    if (head_ == r) head_ = r->next;
    r->prev = r->next = nullptr;
    --size_;
  }
  UcxRequest* head() const { return head_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  UcxRequest* head_ = nullptr;
  size_t size_ = 0;
};

}  // namespace ftccl
