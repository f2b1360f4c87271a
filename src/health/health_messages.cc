#include "health/health_messages.h"

#include <cstring>

#include "util/byte_io.h"

namespace ftccl {

std::vector<uint8_t> encodeHealthMessage(const HealthMessage& m) {
  ByteWriter body;
  switch (m.type) {
    case HealthType::kHello:
      body.putString(m.senderKey);
      body.putString(m.host);
      body.put(m.pid);
      break;
    case HealthType::kHeartbeat:
      body.put(m.seq);
      body.put(m.sentNs);
      break;
    case HealthType::kAck:
      body.put(m.seq);
      body.put(m.sentNs);
      body.put(m.heldNs);
      break;
    case HealthType::kFailed:
      body.put(m.commKey);
      body.put(m.epoch);
      body.put(m.rank);
      body.putString(m.failedKey);
      body.put(m.cause);
      body.put(m.afterMs);
      body.put(m.reporterRank);
      break;
    case HealthType::kLeave:
      body.put(m.commKey);
      body.put(m.epoch);
      body.put(m.rank);
      break;
    case HealthType::kRecovery:
      body.put(m.commKey);
      body.putBlob(m.payload);
      break;
  }
  ByteWriter frame;
  frame.put(static_cast<uint32_t>(body.bytes().size()));
  frame.put(static_cast<uint8_t>(m.type));
  frame.bytes().insert(frame.bytes().end(), body.bytes().begin(), body.bytes().end());
  return frame.bytes();
}

int decodeHealthMessage(const uint8_t* buffer, size_t size, HealthMessage* out,
                        size_t* consumed) {
  constexpr size_t kHeader = sizeof(uint32_t) + sizeof(uint8_t);
  if (size < kHeader) return 0;
  uint32_t length = 0;
  std::memcpy(&length, buffer, sizeof(length));
  if (length > kMaxHealthFrame) return -1;
  if (size < kHeader + length) return 0;
  HealthMessage m;
  m.type = static_cast<HealthType>(buffer[sizeof(uint32_t)]);
  ByteReader in(buffer + kHeader, length);
  bool ok = false;
  switch (m.type) {
    case HealthType::kHello:
      ok = in.getString(&m.senderKey) && in.getString(&m.host) && in.get(&m.pid);
      break;
    case HealthType::kHeartbeat:
      ok = in.get(&m.seq) && in.get(&m.sentNs);
      break;
    case HealthType::kAck:
      ok = in.get(&m.seq) && in.get(&m.sentNs) && in.get(&m.heldNs);
      break;
    case HealthType::kFailed:
      ok = in.get(&m.commKey) && in.get(&m.epoch) && in.get(&m.rank) &&
           in.getString(&m.failedKey) && in.get(&m.cause) && in.get(&m.afterMs) &&
           in.get(&m.reporterRank);
      break;
    case HealthType::kLeave:
      ok = in.get(&m.commKey) && in.get(&m.epoch) && in.get(&m.rank);
      break;
    case HealthType::kRecovery:
      ok = in.get(&m.commKey) && in.getBlob(&m.payload);
      break;
    default:
      return -1;
  }
  if (!ok || !in.atEnd()) return -1;
  *out = std::move(m);
  *consumed = kHeader + length;
  return 1;
}

std::vector<uint8_t> encodeProbe(const std::vector<uint8_t>& helloFrame,
                                 const HealthMessage& probe) {
  std::vector<uint8_t> datagram = helloFrame;
  std::vector<uint8_t> frame = encodeHealthMessage(probe);
  datagram.insert(datagram.end(), frame.begin(), frame.end());
  return datagram;
}

bool decodeProbe(const uint8_t* datagram, size_t size, std::string* senderKey,
                 HealthMessage* probe) {
  HealthMessage hello;
  size_t helloBytes = 0, probeBytes = 0;
  if (decodeHealthMessage(datagram, size, &hello, &helloBytes) != 1) return false;
  if (hello.type != HealthType::kHello || hello.senderKey.empty()) return false;
  if (decodeHealthMessage(datagram + helloBytes, size - helloBytes, probe, &probeBytes) != 1) {
    return false;
  }
  if (!isProbe(probe->type) || helloBytes + probeBytes != size) return false;
  *senderKey = std::move(hello.senderKey);
  return true;
}

}  // namespace ftccl
