// Fuzz target: the health channel's bytes (health/health_messages.h, health_auth.h), as
// a connection's reader takes them: a stream of frames, each followed by its seal, and
// a datagram as a probe. A frame that decodes encodes again to the same bytes.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "health/health_auth.h"
#include "health/health_messages.h"

using namespace ftccl;

namespace {

void checkRoundTrip(const uint8_t* frame, size_t bytes, const HealthMessage& m) {
  std::vector<uint8_t> again = encodeHealthMessage(m);
  // Canonical, but for a heartbeat's progress count (more than the cap is refused) and
  // bools (any non-zero byte is true).
  if (m.type() == HealthType::kHeartbeat || m.type() == HealthType::kProgress) return;
  if (again.size() != bytes || !std::equal(again.begin(), again.end(), frame)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto key = std::make_shared<const crypto::MacKey>(crypto::Key{});
  // As a stream: frame, seal, frame, seal...
  size_t at = 0;
  for (int frames = 0; frames < 64 && at < size; ++frames) {
    size_t bytes = 0;
    if (healthFrameBytes(data + at, size - at, &bytes) != 1) break;
    if (bytes > size - at || bytes > kMaxHealthFrame + 5) __builtin_trap();
    HealthMessage m;
    size_t used = 0;
    if (decodeHealthMessage(data + at, size - at, &m, &used) == 1) {
      if (used != bytes) __builtin_trap();
      checkRoundTrip(data + at, used, m);
    }
    at += bytes;
    if (size - at < kSealBytes) break;
    HealthAuth auth;
    SealContext context;
    context.sender = "a";
    context.receiver = "b";
    if (readSeal(data + at, &auth)) (void)sealValid(*key, data, at, data + at, context);
    at += kSealBytes;
  }
  // As a datagram.
  std::string sender;
  HealthMessage probe;
  (void)decodeProbe(data, size, &sender, &probe);
  (void)decodeSealedProbe(data, size, "b", &sender, &probe, [](uint64_t, uint32_t) { return key; });
  return 0;
}
