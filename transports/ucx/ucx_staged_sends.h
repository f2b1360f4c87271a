// Small sends that UCX may pack long after their op ended, packed by us instead.
//
// Why: without peer error handling (same-node peers, ucx_transport.h) UCX can neither
// cancel a send nor close its endpoint by force. A small (eager) send that finds the
// peer's shared-memory queue full waits in UCX's pending queue and is packed later, from
// the buffer it was given. Once its op has failed, the application may free that buffer:
// a survivor crashed in ucp_dt_pack that way (chaos seed 9091). Such sends therefore go
// through a UCX generic datatype whose pack callback reads from a slot the transport
// owns; when the op is abandoned, the slot is marked and a late packing writes zeros
// (to an op nobody receives any more) instead of reading the application's memory.
//
// Rendezvous sends (at or above kLimit) are not staged: UCX reads their buffer only when
// the receiver matches them, and a failed op's receivers cancel their receives or drain
// the message as truncated, which reads nothing (rndv.c: the truncated path only acks).
#pragma once

#include <ucp/api/ucp.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "util/status.h"

namespace ftccl {

struct StagedSend {
  const uint8_t* data = nullptr;
  size_t bytes = 0;
  bool abandoned = false;  // the op ended: never read `data` again
  StagedSend* nextFree = nullptr;
};

class StagedSends {
 public:
  // Below UCX's shared-memory rendezvous threshold (8 KiB: "..8192..<rndv>" in
  // ucp_ep_print_info), so staging never turns a zero-copy rendezvous into copies.
  static constexpr size_t kLimit = 8192;

  StagedSends() = default;
  ~StagedSends();
  StagedSends(const StagedSends&) = delete;
  StagedSends& operator=(const StagedSends&) = delete;

  Status init();
  ucp_datatype_t datatype() const { return datatype_; }

  // A slot describing `bytes` at `data`; pass it as the send's buffer with count 1.
  StagedSend* acquire(const void* data, size_t bytes);
  void release(StagedSend* slot);

 private:
  ucp_datatype_t datatype_ = 0;
  bool created_ = false;
  std::vector<std::unique_ptr<StagedSend>> slots_;
  StagedSend* free_ = nullptr;
};

}  // namespace ftccl
