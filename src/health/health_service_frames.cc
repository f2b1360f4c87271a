// HealthService::Driver, reading a connection: how much it may make us hold, each
// frame's seal checked before it is decoded, and each verified frame handed to the protocol.
#include <errno.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "health/health_service_driver.h"
#include "util/crypto.h"
#include "util/fault_injection.h"
#include "util/log.h"

namespace ftccl {

HealthService::Driver::Seal HealthService::Driver::checkSeal(
    const HealthAuth& auth, const uint8_t* frame, size_t frameBytes, const uint8_t* seal,
    const Conn& c, std::shared_ptr<const crypto::MacKey>* key) {
  std::vector<std::shared_ptr<const crypto::MacKey>> candidates;
  if (auth.kind == KeyKind::kEpoch) {
    if (auto k = protocol.keys().epochKey(auth.comm, auth.epoch)) candidates.push_back(k);
  } else if (auth.kind == KeyKind::kAttest) {
    if (auto k = protocol.keys().attestKey(auth.comm)) candidates.push_back(k);
  } else {
    for (const auto& [k, secret] : protocol.keys().joinKeys(auth.comm)) candidates.push_back(k);
  }
  if (candidates.empty()) return Seal::kNoKey;
  SealContext context;
  context.sender = c.key;
  context.receiver = protocol.self();
  context.senderNonce = c.peerNonce;
  context.receiverNonce = c.myNonce;
  context.counter = c.received;
  for (auto& k : candidates) {
    if (sealValid(*k, frame, frameBytes, seal, context)) {
      *key = std::move(k);
      return Seal::kSealed;
    }
  }
  return Seal::kForged;
}

// The largest frame (seal included) this connection may send now.
size_t HealthService::Driver::frameLimit(const Conn& c) const {
  if (!c.helloHeard) return kMaxHelloFrame;
  const bool large = c.proven || protocol.joining();
  return (large ? size_t{kMaxHealthFrame} + 5 : kMaxUnprovenFrame) + kSealBytes;
}

void HealthService::Driver::readFrom(Conn& c, HealthTime now) {
  uint8_t buffer[4096];
  bool closed = false;
  // Never more than one frame's worth held: what a fast sender has sent beyond it
  // waits in its socket until the frames before it are handled (the next poll).
  const size_t cap = frameLimit(c);
  while (c.in.size() < cap) {
    const size_t want = std::min(sizeof(buffer), cap - c.in.size());
    ssize_t n = recv(c.fd.get(), buffer, want, MSG_DONTWAIT);
    if (n > 0) {
      if (!faultDropAll()) c.in.insert(c.in.end(), buffer, buffer + n);
      if (static_cast<size_t>(n) < want) break;  // drained: skip the EAGAIN call
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0 && errno == EINTR) continue;
    closed = true;  // by the peer, or failed: but first read what it said (a leave)
    break;
  }
  if (!c.proven) {
    boundUnprovenBytes();
    if (!c.fd.valid()) return;
  }
  size_t at = 0;
  for (;;) {
    HealthMessage m;
    size_t used = 0;
    int got = healthFrameBytes(c.in.data() + at, c.in.size() - at, &used);
    uint32_t claimed = 0;
    if (c.in.size() - at >= sizeof(claimed))
      std::memcpy(&claimed, c.in.data() + at, sizeof(claimed));
    if (c.in.size() - at >= sizeof(claimed) && claimed + size_t{5} > frameLimit(c)) {
      FTCCL_LOG(Warn, Health,
                "health frame from {} ({}): {} bytes, over the {} allowed {}: "
                "connection dropped",
                c.key.empty() ? "an unknown peer" : c.key, peerAddress(c), claimed + size_t{5},
                frameLimit(c),
                !c.helloHeard ? "for a hello"
                : c.proven    ? ""
                              : "before it proved a key");
      lost(c);
      return;
    }
    if (got == 0) break;
    const uint8_t* frame = c.in.data() + at;
    // The first frame is the peer's hello, unsealed; every later one is sealed, and is
    // decoded only once its seal verified.
    const bool hello = !c.helloHeard;
    if (got > 0 && !hello && c.in.size() - at - used < kSealBytes) break;  // seal to come
    std::shared_ptr<const crypto::MacKey> key;
    Seal seal = Seal::kForged;
    HealthAuth auth;
    if (got > 0 && !hello && readSeal(frame + used, &auth)) {
      seal = checkSeal(auth, frame, used, frame + used, c, &key);
    }
    size_t decoded = 0;
    if (got > 0 && (hello || seal == Seal::kSealed)) {
      got = decodeHealthMessage(frame, used, &m, &decoded);
    }
    m.auth = auth;
    const HealthHello* peerHello = m.as<HealthHello>();
    const char* why =
        got < 0 ? "corrupt"
        : hello ? (peerHello == nullptr || peerHello->nonce.size() != kConnectionNonceBytes ||
                           peerHello->nonce == c.myNonce
                       ? "not a hello"
                       : nullptr)
        : seal == Seal::kForged ? "not authentic (its seal does not verify)"
        : seal == Seal::kSealed &&
                (m.type() == HealthType::kHello || isProbe(m) ||
                 (auth.kind == KeyKind::kAttest) != (m.type() == HealthType::kAttest))
            ? "out of place"
            : nullptr;
    if (why != nullptr) {
      FTCCL_LOG(Warn, Health, "health frame from {} ({}): {}: connection dropped",
                c.key.empty() ? "an unknown peer" : c.key, peerAddress(c), why);
      lost(c);
      return;
    }
    at += used + (hello ? 0 : kSealBytes);
    if (hello) {
      if (c.key.empty()) c.key = peerHello->senderKey;
      c.peerNonce = peerHello->nonce;
      c.helloHeard = true;
      if (!c.accepted) attest(c);
      std::vector<HealthMessage> waiting;
      waiting.swap(c.waiting);
      for (const HealthMessage& w : waiting) {
        if (c.fd.valid()) queue(c, w);  // a failed flush lost the connection: stop
      }
    } else if (seal == Seal::kNoKey) {
      ++c.received;
      FTCCL_LOG(Debug, Health,
                "skipped a frame from {} under a key this process lacks "
                "(communicator {:016x}, epoch {})",
                c.key, crypto::oneWayId(m.auth.comm), m.auth.epoch);
    } else {
      ++c.received;
      c.proven = true;
      m.auth.key = std::move(key);
      if (m.type() != HealthType::kAttest) protocol.onMessage(c.key, m, now);
    }
    if (!c.fd.valid()) return;
  }
  c.in.erase(c.in.begin(), c.in.begin() + at);
  if (closed) lost(c);
}

// The first frame on every connection we open: it proves us to the peer at once (a
// monitoring connection may carry nothing else for a long time; a join answer is
// larger than what an unproven connection may send).
void HealthService::Driver::attest(Conn& c) {
  HealthMessage m = HealthAttest{};
  m.auth = protocol.attestFor(c.key);
  if (!m.auth.key) {
    FTCCL_LOG(Debug, Health, "no attestation key for {}: its end may close this connection", c.key);
    return;
  }
  queue(c, m);
}

}  // namespace ftccl
