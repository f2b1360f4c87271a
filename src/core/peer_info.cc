#include "core/peer_info.h"

#include "util/byte_io.h"

namespace ftccl {
namespace {

constexpr uint32_t kPeerInfoVersion = 10;

}  // namespace

std::vector<uint8_t> encodePeerInfo(const PeerInfo& info) {
  ByteWriter out;
  out.put(kPeerInfoVersion);
  out.putString(info.host);
  out.put(info.pid);
  out.put(info.netns);
  out.put(info.pidns);
  out.put(static_cast<uint64_t>(info.pipeline.chunkBytes));
  out.put(static_cast<int32_t>(info.pipeline.channels));
  out.put(info.commSalt);
  out.putString(info.key);
  out.putString(info.node);
  out.put(info.package);
  out.put(info.numaNode);
  out.put(info.memoryNode);
  out.putBlob(info.transportAddress);
  out.put(static_cast<uint32_t>(info.standbyAddresses.size()));
  for (const std::vector<uint8_t>& address : info.standbyAddresses) out.putBlob(address);
  return out.bytes();
}

Status decodePeerInfo(const std::vector<uint8_t>& blob, PeerInfo* info) {
  ByteReader in(blob);
  uint32_t version = 0;
  uint64_t chunk = 0;
  int32_t channels = 0;
  if (!in.get(&version) || version != kPeerInfoVersion) {
    return invalidArgument("peer info of another ftccl version");
  }
  if (!in.getString(&info->host) || !in.get(&info->pid) || !in.get(&info->netns) ||
      !in.get(&info->pidns) || !in.get(&chunk) || !in.get(&channels) || !in.get(&info->commSalt) ||
      !in.getString(&info->key) || !in.getString(&info->node) || !in.get(&info->package) ||
      !in.get(&info->numaNode) || !in.get(&info->memoryNode) ||
      !in.getBlob(&info->transportAddress)) {
    return invalidArgument("malformed peer info");
  }
  uint32_t standbys = 0;
  if (!in.get(&standbys) || standbys > kStandbyWorkers) {
    return invalidArgument("malformed peer info (standby workers)");
  }
  info->standbyAddresses.assign(standbys, {});
  for (std::vector<uint8_t>& address : info->standbyAddresses) {
    if (!in.getBlob(&address)) return invalidArgument("malformed peer info");
  }
  if (!in.atEnd()) return invalidArgument("malformed peer info");
  info->pipeline.chunkBytes = chunk;
  info->pipeline.channels = channels;
  return Status::ok();
}

std::vector<uint8_t> encodeJoinPackage(uint64_t commKey, const PipelineConfig& pipeline,
                                       const std::vector<PeerInfo>& peers) {
  ByteWriter w;
  w.put(commKey);
  w.put(static_cast<uint64_t>(pipeline.chunkBytes));
  w.put(static_cast<int32_t>(pipeline.channels));
  w.put(static_cast<uint32_t>(peers.size()));
  for (const PeerInfo& p : peers) w.putBlob(encodePeerInfo(p));
  return w.bytes();
}

// Entries are added as they decode, never allocated from the count: each takes at least
// a 4-byte length on the wire and some hundred bytes decoded.
Status decodeJoinPackage(const std::vector<uint8_t>& package, uint64_t* commKey,
                         PipelineConfig* pipeline, std::vector<PeerInfo>* peers) {
  ByteReader r(package);
  uint64_t chunk = 0;
  int32_t channels = 0;
  uint32_t n = 0;
  if (!r.get(commKey) || !r.get(&chunk) || !r.get(&channels) || !r.get(&n) ||
      n > r.remaining() / sizeof(uint32_t) || chunk == 0 || channels < 1) {
    return internalError("malformed join answer");
  }
  pipeline->chunkBytes = chunk;
  pipeline->channels = channels;
  peers->clear();
  std::vector<uint8_t> blob;
  for (uint32_t i = 0; i < n; ++i) {
    if (!r.getBlob(&blob)) return internalError("malformed join answer");
    PeerInfo p;
    FTCCL_CHECK(decodePeerInfo(blob, &p));
    peers->push_back(std::move(p));
  }
  if (!r.atEnd()) return internalError("malformed join answer");
  return Status::ok();
}

}  // namespace ftccl
