// Messages of the health channel: frames on one TCP connection per monitored peer
// process, and heartbeats and acks as UDP datagrams (the sender's hello, then the probe).
//
// Frame: u32 payload length | u8 type | payload. Lengths are capped (kMaxFrame), so a
// corrupt or hostile peer can never make us allocate much; decode never trusts a
// length it has not checked. Integers are little-endian. On the network every frame
// but a connection's hello is followed by its seal (health_auth.h).
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "health/health_auth.h"
#include "stats/progress_board.h"

namespace ftccl {

enum class HealthType : uint8_t {
  kHello = 1,          // first frame on a connection and of every probe: who is speaking
  kHeartbeat = 2,      // every probe interval
  kAck = 3,            // answer to a heartbeat (round-trip time)
  kFailed = 4,         // a member of a communicator failed: revoke it
  kLeave = 5,          // orderly leave of one communicator: do not take my exit for a failure
  kRecovery = 6,       // an agreement message (recovery/agreement.h) for one communicator
  kProgressQuery = 7,  // where are you in this communicator's op order? (hang diagnosis)
  kProgress = 8,       // the answer: one OpProgress
  // Opens a monitoring connection, sealed under the communicator's attestation key: the
  // accepting end learns at once that a key holder is behind it (bounded resources:
  // health_service_admission.cc). No payload; never reaches the protocol.
  kAttest = 9,
};

// One struct per frame type, each with the fields it carries; kType is its type byte.

// First frame on a connection and of every probe: who is speaking.
struct HealthHello {
  static constexpr HealthType kType = HealthType::kHello;
  std::string senderKey;  // the sender's health listener address: its process identity
  std::string host;
  int32_t pid = 0;
  std::string nonce;  // on TCP: this end's fresh connection nonce (kConnectionNonceBytes)
};

// Every probe interval, with the sender's progress in its communicators (at most
// kMaxProgressEntries are sent).
struct HealthHeartbeat {
  static constexpr HealthType kType = HealthType::kHeartbeat;
  uint64_t seq = 0;
  int64_t sentNs = 0;  // sender's steady clock, echoed by the ack
  std::vector<OpProgress> progress;
};

// The answer to a heartbeat (round-trip time).
struct HealthAck {
  static constexpr HealthType kType = HealthType::kAck;
  uint64_t seq = 0;    // the heartbeat's
  int64_t sentNs = 0;  // the heartbeat's
  int64_t heldNs = 0;  // how long the heartbeat waited at the acking end
};

// A member of a communicator failed: revoke it.
struct HealthFailed {
  static constexpr HealthType kType = HealthType::kFailed;
  uint64_t commKey = 0;
  uint32_t epoch = 0;
  int32_t rank = -1;          // the failed rank
  std::string failedKey;      // the failed process
  uint8_t cause = 0;          // DetectionCause
  double afterMs = 0;         // how long the detection took
  int32_t reporterRank = -1;  // who detected it
};

// Orderly leave of one communicator: do not take my exit for a failure.
struct HealthLeave {
  static constexpr HealthType kType = HealthType::kLeave;
  uint64_t commKey = 0;
  uint32_t epoch = 0;
  int32_t rank = -1;  // the leaving rank
};

// An agreement message for one communicator.
struct HealthRecovery {
  static constexpr HealthType kType = HealthType::kRecovery;
  uint64_t commKey = 0;
  std::vector<uint8_t> payload;  // the encoded RecoveryMessage
};

// Where are you in this communicator's op order?
struct HealthProgressQuery {
  static constexpr HealthType kType = HealthType::kProgressQuery;
  uint64_t commKey = 0;
  uint32_t epoch = 0;
};

// The answer to a progress query.
struct HealthProgress {
  static constexpr HealthType kType = HealthType::kProgress;
  OpProgress progress;
};

// Opens a monitoring connection; no payload.
struct HealthAttest {
  static constexpr HealthType kType = HealthType::kAttest;
};

// A frame's body, in HealthType order.
using HealthBody = std::variant<HealthHello, HealthHeartbeat, HealthAck, HealthFailed, HealthLeave,
                                HealthRecovery, HealthProgressQuery, HealthProgress, HealthAttest>;

// The envelope: what travels on the wire (the body) and what the receiver learns of it
// besides (never on the wire); the protocol dispatches on the body.
struct HealthMessage {
  HealthMessage() = default;
  template <typename Body,
            typename = std::enable_if_t<std::is_constructible_v<HealthBody, Body&&> &&
                                        !std::is_same_v<std::decay_t<Body>, HealthMessage>>>
  HealthMessage(Body&& b) : body(std::forward<Body>(b)) {}  // NOLINT: implicit on purpose

  HealthType type() const;
  template <typename T>
  const T* as() const {
    return std::get_if<T>(&body);
  }
  template <typename T>
  T* as() {
    return std::get_if<T>(&body);
  }

  HealthBody body;
  // Not on the wire: for a heartbeat or an ack, how long before the `now` it is handed
  // over with the frame arrived in the receiver's socket (the kernel's arrival stamp; 0
  // where unknown). The health thread reads probes only at its ticks, so this is up to a
  // tick.
  int64_t waitedNs = 0;
  // Not on the wire: the key that seals the frame (the protocol sets it when it sends;
  // the network, when the frame it received verified). Unused in the simulator.
  HealthAuth auth;
};

constexpr size_t kMaxProgressEntries = 8;

constexpr uint32_t kMaxHealthFrame = 1 << 20;  // a commit lists every member

std::vector<uint8_t> encodeHealthMessage(const HealthMessage& message);

// Whether `buffer` starts with a whole frame (1, its bytes in *bytes), needs more (0),
// or names a length over the cap (-1); nothing of the frame is decoded.
int healthFrameBytes(const uint8_t* buffer, size_t size, size_t* bytes);

// Consumes one whole frame from the front of `buffer` when there is one.
// Returns 1 (decoded, *consumed set), 0 (need more bytes), -1 (corrupt: drop the peer).
int decodeHealthMessage(const uint8_t* buffer, size_t size, HealthMessage* out, size_t* consumed);

// Heartbeats and acks travel as datagrams ("probes"), each one whole: the sender's
// hello frame (`helloFrame`, encoded once), then the probe's frame.
inline bool isProbe(HealthType type) {
  return type == HealthType::kHeartbeat || type == HealthType::kAck;
}
inline bool isProbe(const HealthMessage& m) { return isProbe(m.type()); }
std::vector<uint8_t> encodeProbe(const std::vector<uint8_t>& helloFrame,
                                 const HealthMessage& probe);
// True only for exactly a hello with a sender key followed by a heartbeat or an ack.
bool decodeProbe(const uint8_t* datagram, size_t size, std::string* senderKey,
                 HealthMessage* probe);
// A sealed probe: the datagram above, then its seal (health_auth.h), bound to the
// receiver's key (the sender's is in the sealed hello). `keyFor` names the key for the
// seal's communicator and epoch (null: none, the probe is dropped). Nothing is decoded
// before the seal is checked.
std::vector<uint8_t> encodeSealedProbe(const std::vector<uint8_t>& helloFrame,
                                       const HealthMessage& probe, const std::string& receiver);
template <typename KeyFor>
bool decodeSealedProbe(const uint8_t* datagram, size_t size, const std::string& receiver,
                       std::string* senderKey, HealthMessage* probe, KeyFor keyFor) {
  if (size < kSealBytes) return false;
  const size_t body = size - kSealBytes;
  HealthAuth auth;
  if (!readSeal(datagram + body, &auth) || auth.kind != KeyKind::kEpoch) return false;
  auth.key = keyFor(auth.comm, auth.epoch);
  SealContext context;
  context.datagram = true;
  context.receiver = receiver;
  if (!auth.key || !sealValid(*auth.key, datagram, body, datagram + body, context)) return false;
  if (!decodeProbe(datagram, body, senderKey, probe)) return false;
  probe->auth = std::move(auth);
  return true;
}

}  // namespace ftccl
