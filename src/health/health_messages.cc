#include "health/health_messages.h"

#include <algorithm>
#include <cstring>

#include "util/byte_io.h"

namespace ftccl {
namespace {

void putProgress(ByteWriter& w, const OpProgress& p) {
  w.put(p.commKey);
  w.put(p.epoch);
  w.put(p.started);
  w.put(p.done);
  w.put(static_cast<uint8_t>(p.inOp ? 1 : 0));
  w.put(p.kind);
  w.put(p.step);
  w.put(p.waitUs);
  w.put(p.stateMs);
}

bool getProgress(ByteReader& r, OpProgress* p) {
  uint8_t inOp = 0;
  if (!(r.get(&p->commKey) && r.get(&p->epoch) && r.get(&p->started) && r.get(&p->done) &&
        r.get(&inOp) && r.get(&p->kind) && r.get(&p->step) && r.get(&p->waitUs) &&
        r.get(&p->stateMs))) {
    return false;
  }
  p->inOp = inOp != 0;
  return true;
}

}  // namespace

std::vector<uint8_t> encodeHealthMessage(const HealthMessage& m) {
  ByteWriter body;
  switch (m.type) {
    case HealthType::kHello:
      body.putString(m.senderKey);
      body.putString(m.host);
      body.put(m.pid);
      body.putString(m.nonce);
      break;
    case HealthType::kHeartbeat: {
      body.put(m.seq);
      body.put(m.sentNs);
      size_t n = std::min(m.progress.size(), kMaxProgressEntries);
      body.put(static_cast<uint8_t>(n));
      for (size_t i = 0; i < n; ++i) putProgress(body, m.progress[i]);
      break;
    }
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
    case HealthType::kProgressQuery:
      body.put(m.commKey);
      body.put(m.epoch);
      break;
    case HealthType::kProgress:
      putProgress(body, m.progress.empty() ? OpProgress{} : m.progress.front());
      break;
    case HealthType::kAttest:
      break;
  }
  ByteWriter frame;
  frame.put(static_cast<uint32_t>(body.bytes().size()));
  frame.put(static_cast<uint8_t>(m.type));
  frame.bytes().insert(frame.bytes().end(), body.bytes().begin(), body.bytes().end());
  return frame.bytes();
}

int healthFrameBytes(const uint8_t* buffer, size_t size, size_t* bytes) {
  constexpr size_t kHeader = sizeof(uint32_t) + sizeof(uint8_t);
  if (size < kHeader) return 0;
  uint32_t length = 0;
  std::memcpy(&length, buffer, sizeof(length));
  if (length > kMaxHealthFrame) return -1;
  if (size < kHeader + length) return 0;
  *bytes = kHeader + length;
  return 1;
}

int decodeHealthMessage(const uint8_t* buffer, size_t size, HealthMessage* out, size_t* consumed) {
  constexpr size_t kHeader = sizeof(uint32_t) + sizeof(uint8_t);
  size_t bytes = 0;
  const int whole = healthFrameBytes(buffer, size, &bytes);
  if (whole <= 0) return whole;
  const size_t length = bytes - kHeader;
  HealthMessage m;
  m.type = static_cast<HealthType>(buffer[sizeof(uint32_t)]);
  ByteReader in(buffer + kHeader, length);
  bool ok = false;
  switch (m.type) {
    case HealthType::kHello:
      ok = in.getString(&m.senderKey) && in.getString(&m.host) && in.get(&m.pid) &&
           in.getString(&m.nonce) &&
           (m.nonce.empty() || m.nonce.size() == kConnectionNonceBytes);
      break;
    case HealthType::kHeartbeat: {
      uint8_t n = 0;
      ok = in.get(&m.seq) && in.get(&m.sentNs) && in.get(&n) && n <= kMaxProgressEntries;
      for (uint8_t i = 0; ok && i < n; ++i) {
        m.progress.emplace_back();
        ok = getProgress(in, &m.progress.back());
      }
      break;
    }
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
    case HealthType::kProgressQuery:
      ok = in.get(&m.commKey) && in.get(&m.epoch);
      break;
    case HealthType::kProgress:
      m.progress.emplace_back();
      ok = getProgress(in, &m.progress.back());
      break;
    case HealthType::kAttest:
      ok = true;
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

std::vector<uint8_t> encodeSealedProbe(const std::vector<uint8_t>& helloFrame,
                                       const HealthMessage& probe, const std::string& receiver) {
  std::vector<uint8_t> datagram = encodeProbe(helloFrame, probe);
  SealContext context;
  context.datagram = true;
  context.receiver = receiver;
  appendSeal(&datagram, 0, probe.auth, context);
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
