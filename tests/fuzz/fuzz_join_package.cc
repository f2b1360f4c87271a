// Fuzz target: the join answer a newcomer decodes (core/peer_info.h): every process's
// info. What decodes encodes to bytes that decode to the same table.
#include <cstdint>
#include <vector>

#include "core/peer_info.h"

using namespace ftccl;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> package(data, data + size);
  uint64_t comm = 0;
  PipelineConfig pipeline;
  std::vector<PeerInfo> peers;
  if (!decodeJoinPackage(package, &comm, &pipeline, &peers).isOk()) return 0;
  if (peers.size() > size / 4) __builtin_trap();
  const std::vector<uint8_t> once = encodeJoinPackage(comm, pipeline, peers);
  uint64_t comm2 = 0;
  PipelineConfig pipeline2;
  std::vector<PeerInfo> peers2;
  if (!decodeJoinPackage(once, &comm2, &pipeline2, &peers2).isOk() || comm2 != comm ||
      peers2.size() != peers.size() || encodeJoinPackage(comm2, pipeline2, peers2) != once) {
    __builtin_trap();
  }
  return 0;
}
