#include "transports/ucx/ucx_staged_sends.h"

#include <algorithm>
#include <cstring>

#include "transports/ucx/ucx_status.h"

namespace ftccl {

namespace {

// The state of a packing is the slot itself: UCX passes the offset to every call.
void* startPack(void* /*context*/, const void* buffer, size_t /*count*/) {
  return const_cast<void*>(buffer);
}

size_t packedSize(void* state) { return static_cast<StagedSend*>(state)->bytes; }

size_t pack(void* state, size_t offset, void* dest, size_t maxLength) {
  const StagedSend* slot = static_cast<StagedSend*>(state);
  size_t n = offset < slot->bytes ? std::min(maxLength, slot->bytes - offset) : 0;
  if (slot->abandoned) {
    std::memset(dest, 0, n);
  } else {
    std::memcpy(dest, slot->data + offset, n);
  }
  return n;
}

// Never used to receive: receives are contiguous.
void* startUnpack(void* /*context*/, void* buffer, size_t /*count*/) { return buffer; }
ucs_status_t unpack(void* /*state*/, size_t /*offset*/, const void* /*src*/, size_t /*length*/) {
  return UCS_ERR_UNSUPPORTED;
}

void finish(void* /*state*/) {}

}  // namespace

StagedSends::~StagedSends() {
  if (created_) ucp_dt_destroy(datatype_);
}

Status StagedSends::init() {
  ucp_generic_dt_ops_t ops;
  std::memset(&ops, 0, sizeof(ops));
  ops.start_pack = startPack;
  ops.start_unpack = startUnpack;
  ops.packed_size = packedSize;
  ops.pack = pack;
  ops.unpack = unpack;
  ops.finish = finish;
  FTCCL_CHECK(fromUcs(ucp_dt_create_generic(&ops, nullptr, &datatype_), "ucp_dt_create_generic"));
  created_ = true;
  return Status::ok();
}

StagedSend* StagedSends::acquire(const void* data, size_t bytes) {
  if (free_ == nullptr) {
    slots_.push_back(std::make_unique<StagedSend>());
    free_ = slots_.back().get();
  }
  StagedSend* slot = free_;
  free_ = slot->nextFree;
  slot->data = static_cast<const uint8_t*>(data);
  slot->bytes = bytes;
  slot->abandoned = false;
  slot->nextFree = nullptr;
  return slot;
}

void StagedSends::release(StagedSend* slot) {
  slot->data = nullptr;
  slot->nextFree = free_;
  free_ = slot;
}

}  // namespace ftccl
