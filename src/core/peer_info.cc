#include "core/peer_info.h"

#include "util/byte_io.h"

namespace ftccl {
namespace {

constexpr uint32_t kPeerInfoVersion = 8;

}  // namespace

std::vector<uint8_t> encodePeerInfo(const PeerInfo& info) {
  ByteWriter out;
  out.put(kPeerInfoVersion);
  out.putString(info.host);
  out.put(info.pid);
  out.put(info.netns);
  out.put(static_cast<uint64_t>(info.pipeline.chunkBytes));
  out.put(static_cast<int32_t>(info.pipeline.channels));
  out.put(info.commSalt);
  out.putString(info.healthKey);
  out.putString(info.node);
  out.put(info.package);
  out.put(info.numaNode);
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
      !in.get(&chunk) ||
      !in.get(&channels) || !in.get(&info->commSalt) || !in.getString(&info->healthKey) ||
      !in.getString(&info->node) || !in.get(&info->package) ||
      !in.get(&info->numaNode) || !in.getBlob(&info->transportAddress)) {
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

}  // namespace ftccl
