#include "core/peer_info.h"

#include <cstring>

namespace ftccl {
namespace {

constexpr uint32_t kPeerInfoVersion = 4;

template <typename T>
void put(std::vector<uint8_t>* out, T value) {
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(&value);
  out->insert(out->end(), bytes, bytes + sizeof(T));
}

void putBytes(std::vector<uint8_t>* out, const void* data, uint32_t length) {
  put(out, length);
  const uint8_t* bytes = static_cast<const uint8_t*>(data);
  out->insert(out->end(), bytes, bytes + length);
}

class Reader {
 public:
  explicit Reader(const std::vector<uint8_t>& blob) : blob_(blob) {}
  template <typename T>
  bool get(T* value) {
    if (blob_.size() - at_ < sizeof(T)) return false;
    std::memcpy(value, blob_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return true;
  }
  bool getBytes(std::vector<uint8_t>* out) {
    uint32_t length = 0;
    if (!get(&length) || blob_.size() - at_ < length) return false;
    out->assign(blob_.begin() + at_, blob_.begin() + at_ + length);
    at_ += length;
    return true;
  }
  bool atEnd() const { return at_ == blob_.size(); }

 private:
  const std::vector<uint8_t>& blob_;
  size_t at_ = 0;
};

}  // namespace

std::vector<uint8_t> encodePeerInfo(const PeerInfo& info) {
  std::vector<uint8_t> out;
  put(&out, kPeerInfoVersion);
  putBytes(&out, info.host.data(), static_cast<uint32_t>(info.host.size()));
  put(&out, info.pid);
  put(&out, static_cast<uint64_t>(info.pipeline.chunkBytes));
  put(&out, static_cast<int32_t>(info.pipeline.channels));
  put(&out, info.commSalt);
  putBytes(&out, info.healthKey.data(), static_cast<uint32_t>(info.healthKey.size()));
  putBytes(&out, info.node.data(), static_cast<uint32_t>(info.node.size()));
  putBytes(&out, info.transportAddress.data(),
           static_cast<uint32_t>(info.transportAddress.size()));
  return out;
}

Status decodePeerInfo(const std::vector<uint8_t>& blob, PeerInfo* info) {
  Reader in(blob);
  uint32_t version = 0;
  std::vector<uint8_t> host, healthKey, node;
  uint64_t chunk = 0;
  int32_t channels = 0;
  if (!in.get(&version) || version != kPeerInfoVersion) {
    return invalidArgument("peer info of another ftccl version");
  }
  if (!in.getBytes(&host) || !in.get(&info->pid) || !in.get(&chunk) || !in.get(&channels) ||
      !in.get(&info->commSalt) || !in.getBytes(&healthKey) || !in.getBytes(&node) ||
      !in.getBytes(&info->transportAddress) || !in.atEnd()) {
    return invalidArgument("malformed peer info");
  }
  info->host.assign(host.begin(), host.end());
  info->healthKey.assign(healthKey.begin(), healthKey.end());
  info->node.assign(node.begin(), node.end());
  info->pipeline.chunkBytes = chunk;
  info->pipeline.channels = channels;
  return Status::ok();
}

}  // namespace ftccl
