// Fuzz target: the unique id a rank is handed (bootstrap.h), which may come from anyone
// that can write the launcher's environment or files: decoded, and when valid, encoded
// again to the same contents.
#include <cstdint>
#include <cstring>

#include "bootstrap/bootstrap.h"

using namespace ftccl;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ftcclUniqueId id;
  std::memset(&id, 0, sizeof(id));
  std::memcpy(&id, data, std::min(size, sizeof(id)));
  UniqueIdContents contents;
  if (!decodeUniqueId(id, &contents).isOk()) return 0;
  ftcclUniqueId again;
  encodeUniqueId(contents, &again);
  UniqueIdContents back;
  if (!decodeUniqueId(again, &back).isOk() || back.rootHost != contents.rootHost ||
      back.rootPort != contents.rootPort || back.nonce != contents.nonce ||
      std::memcmp(back.secret, contents.secret, sizeof(back.secret)) != 0 ||
      back.rankZeroStartsRoot != contents.rankZeroStartsRoot) {
    __builtin_trap();
  }
  return 0;
}
