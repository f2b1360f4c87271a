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

HealthType HealthMessage::type() const {
  return std::visit([](const auto& b) { return std::decay_t<decltype(b)>::kType; }, body);
}

namespace {

template <typename T>
constexpr bool typeMatchesIndex(std::size_t index) {
  return static_cast<std::size_t>(T::kType) == index + 1;
}
static_assert(typeMatchesIndex<std::variant_alternative_t<0, HealthBody>>(0) &&
                  typeMatchesIndex<std::variant_alternative_t<1, HealthBody>>(1) &&
                  typeMatchesIndex<std::variant_alternative_t<2, HealthBody>>(2) &&
                  typeMatchesIndex<std::variant_alternative_t<3, HealthBody>>(3) &&
                  typeMatchesIndex<std::variant_alternative_t<4, HealthBody>>(4) &&
                  typeMatchesIndex<std::variant_alternative_t<5, HealthBody>>(5) &&
                  typeMatchesIndex<std::variant_alternative_t<6, HealthBody>>(6) &&
                  typeMatchesIndex<std::variant_alternative_t<7, HealthBody>>(7) &&
                  typeMatchesIndex<std::variant_alternative_t<8, HealthBody>>(8) &&
                  std::variant_size_v<HealthBody> == 9,
              "HealthBody lists the frame types in HealthType order");

void putBody(ByteWriter& body, const HealthHello& m) {
  body.putString(m.senderKey);
  body.putString(m.host);
  body.put(m.pid);
  body.putString(m.nonce);
}
void putBody(ByteWriter& body, const HealthHeartbeat& m) {
  body.put(m.seq);
  body.put(m.sentNs);
  size_t n = std::min(m.progress.size(), kMaxProgressEntries);
  body.put(static_cast<uint8_t>(n));
  for (size_t i = 0; i < n; ++i) putProgress(body, m.progress[i]);
}
void putBody(ByteWriter& body, const HealthAck& m) {
  body.put(m.seq);
  body.put(m.sentNs);
  body.put(m.heldNs);
}
void putBody(ByteWriter& body, const HealthFailed& m) {
  body.put(m.commKey);
  body.put(m.epoch);
  body.put(m.rank);
  body.putString(m.failedKey);
  body.put(m.cause);
  body.put(m.afterMs);
  body.put(m.reporterRank);
}
void putBody(ByteWriter& body, const HealthLeave& m) {
  body.put(m.commKey);
  body.put(m.epoch);
  body.put(m.rank);
}
void putBody(ByteWriter& body, const HealthRecovery& m) {
  body.put(m.commKey);
  body.putBlob(m.payload);
}
void putBody(ByteWriter& body, const HealthProgressQuery& m) {
  body.put(m.commKey);
  body.put(m.epoch);
}
void putBody(ByteWriter& body, const HealthProgress& m) { putProgress(body, m.progress); }
void putBody(ByteWriter&, const HealthAttest&) {}

bool getBody(ByteReader& in, HealthHello* m) {
  return in.getString(&m->senderKey) && in.getString(&m->host) && in.get(&m->pid) &&
         in.getString(&m->nonce) && (m->nonce.empty() || m->nonce.size() == kConnectionNonceBytes);
}
bool getBody(ByteReader& in, HealthHeartbeat* m) {
  uint8_t n = 0;
  bool ok = in.get(&m->seq) && in.get(&m->sentNs) && in.get(&n) && n <= kMaxProgressEntries;
  for (uint8_t i = 0; ok && i < n; ++i) {
    m->progress.emplace_back();
    ok = getProgress(in, &m->progress.back());
  }
  return ok;
}
bool getBody(ByteReader& in, HealthAck* m) {
  return in.get(&m->seq) && in.get(&m->sentNs) && in.get(&m->heldNs);
}
bool getBody(ByteReader& in, HealthFailed* m) {
  return in.get(&m->commKey) && in.get(&m->epoch) && in.get(&m->rank) &&
         in.getString(&m->failedKey) && in.get(&m->cause) && in.get(&m->afterMs) &&
         in.get(&m->reporterRank);
}
bool getBody(ByteReader& in, HealthLeave* m) {
  return in.get(&m->commKey) && in.get(&m->epoch) && in.get(&m->rank);
}
bool getBody(ByteReader& in, HealthRecovery* m) {
  return in.get(&m->commKey) && in.getBlob(&m->payload);
}
bool getBody(ByteReader& in, HealthProgressQuery* m) {
  return in.get(&m->commKey) && in.get(&m->epoch);
}
bool getBody(ByteReader& in, HealthProgress* m) { return getProgress(in, &m->progress); }
bool getBody(ByteReader&, HealthAttest*) { return true; }

// The body of type byte `type` (0: none such), decoded from `in`.
template <std::size_t I = 0>
bool decodeBody(uint8_t type, ByteReader& in, HealthBody* out) {
  if constexpr (I == std::variant_size_v<HealthBody>) {
    return false;
  } else {
    using T = std::variant_alternative_t<I, HealthBody>;
    if (type != static_cast<uint8_t>(T::kType)) return decodeBody<I + 1>(type, in, out);
    T m;
    if (!getBody(in, &m)) return false;
    *out = std::move(m);
    return true;
  }
}

}  // namespace

std::vector<uint8_t> encodeHealthMessage(const HealthMessage& m) {
  ByteWriter body;
  std::visit([&](const auto& b) { putBody(body, b); }, m.body);
  ByteWriter frame;
  frame.put(static_cast<uint32_t>(body.bytes().size()));
  frame.put(static_cast<uint8_t>(m.type()));
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
  ByteReader in(buffer + kHeader, length);
  if (!decodeBody(buffer[sizeof(uint32_t)], in, &m.body) || !in.atEnd()) return -1;
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
  auto* h = hello.as<HealthHello>();
  if (h == nullptr || h->senderKey.empty()) return false;
  if (decodeHealthMessage(datagram + helloBytes, size - helloBytes, probe, &probeBytes) != 1) {
    return false;
  }
  if (!isProbe(*probe) || helloBytes + probeBytes != size) return false;
  *senderKey = std::move(h->senderKey);
  return true;
}

}  // namespace ftccl
