// Fuzz target: one process's info as the bootstrap table carries it (core/peer_info.h).
// What decodes encodes to the same bytes.
#include <cstdint>
#include <vector>

#include "core/peer_info.h"

using namespace ftccl;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> blob(data, data + size);
  PeerInfo info;
  if (!decodePeerInfo(blob, &info).isOk()) return 0;
  if (info.standbyAddresses.size() > kStandbyWorkers) __builtin_trap();
  if (encodePeerInfo(info) != blob) __builtin_trap();
  return 0;
}
