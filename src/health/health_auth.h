// Authentication of the health channel: every frame after a connection's hello, and
// every probe, ends in a seal, an HMAC-SHA-256 tag (util/crypto.h) under a key only the
// communicator's processes hold, so a stranger can forge, replay or alter nothing.
//
//   seal = u64 commKey | u32 epoch | u8 kind | tag[16]
//   tag over: the channel's label | sender's key | receiver's key | (TCP: sender's and
//             receiver's connection nonces | the frame's number on the connection) |
//             the frame (UDP: the whole datagram) | the seal's head
//
// Keys (HealthKeys): the communicator's root key derives from the job's secret (core/);
// each epoch's key derives from the root key and the salt its commit carries
// (agreement.h), so a process that was not told the commit (expelled, stale) cannot
// compute it. A newcomer (ftcclCommJoinAsSpare) speaks under a key derived from its join
// id's secret until it holds the root key, which its sponsor sends it sealed under that
// key.
//
// Replay: on TCP each side's hello carries a fresh nonce and each frame's tag covers
// both nonces, both ends' keys and the frame's number on the connection, so a frame is
// good once, on its own connection, between the two processes it names. A probe names
// its receiver, and the protocol takes a heartbeat's number only above the last one
// taken from its sender, and an ack only of a heartbeat it sent and has not yet seen
// acked (state per key-holding sender: members, never per possible sender).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "recovery/agreement_messages.h"
#include "util/crypto.h"

namespace ftccl {

enum class KeyKind : uint8_t {
  kEpoch = 0,  // the communicator's key of one epoch
  kJoin = 1,   // a join id's key: a newcomer and its sponsor, before it holds the root key
  // The communicator's attestation key (from its root key): seals only the kAttest that
  // opens a monitoring connection, which any epoch's members can verify
  // (health_service_frames.cc).
  kAttest = 2,
};

struct HealthAuth {
  uint64_t comm = 0;
  uint32_t epoch = 0;
  KeyKind kind = KeyKind::kEpoch;
  std::shared_ptr<const crypto::MacKey> key;  // sending: the key; received: the one that verified
};

constexpr size_t kSealBytes = 8 + 4 + 1 + crypto::kTagBytes;
constexpr size_t kConnectionNonceBytes = 16;

// What a seal binds besides the frame.
struct SealContext {
  bool datagram = false;    // a UDP probe (else a TCP frame)
  std::string_view sender;  // health keys of both ends
  std::string_view receiver;
  std::string_view senderNonce;  // TCP: both ends' connection nonces
  std::string_view receiverNonce;
  uint64_t counter = 0;  // TCP: the frame's number on the connection
};

// Appends the seal of the bytes from frameStart to the end.
void appendSeal(std::vector<uint8_t>* frame, size_t frameStart, const HealthAuth& auth,
                const SealContext& context);
// Reads the seal's head (comm, epoch, kind) at `seal` (kSealBytes long).
bool readSeal(const uint8_t* seal, HealthAuth* auth);
// Whether `seal` (following `frame` of frameBytes) was made with `key` in `context`.
bool sealValid(const crypto::MacKey& key, const uint8_t* frame, size_t frameBytes,
               const uint8_t* seal, const SealContext& context);

// The keys a process holds, per communicator: its root key, the keys of the epochs it
// went through (the latest kMaxEpochs), and the keys of join ids.
class HealthKeys {
 public:
  static constexpr size_t kMaxEpochs = 64;

  // A registration of `comm` begins (counted; `root` null for a newcomer that has only
  // its join id) or ends: the keys go with the last one.
  void hold(uint64_t comm, const crypto::Key* root);
  // A newcomer's root key, once its sponsor sent it.
  void setRoot(uint64_t comm, const crypto::Key& root);
  void release(uint64_t comm);
  // The key of `epoch`, derived from the root key and the salt of the commit that made it.
  void addEpoch(uint64_t comm, uint32_t epoch, const EpochSalt& salt);
  // A join id's secret: a newcomer's own, or one a member handed out.
  void addJoinSecret(uint64_t comm, const std::vector<uint8_t>& secret);

  std::shared_ptr<const crypto::MacKey> epochKey(uint64_t comm, uint32_t epoch) const;
  std::shared_ptr<const crypto::MacKey> attestKey(uint64_t comm) const;
  // Join keys of `comm`, with the secret each derives from.
  std::vector<std::pair<std::shared_ptr<const crypto::MacKey>, std::vector<uint8_t>>> joinKeys(
      uint64_t comm) const;
  const crypto::Key* root(uint64_t comm) const;
  bool saltOf(uint64_t comm, uint32_t epoch, EpochSalt* salt) const;
  // The raw key a join secret derives: the newcomer's root key travels sealed under it.
  static crypto::Key joinKeyBytes(uint64_t comm, const std::vector<uint8_t>& secret);

 private:
  struct Comm {
    int holders = 0;
    bool hasRoot = false;
    crypto::Key root{};
    std::shared_ptr<const crypto::MacKey> attest;  // derived from root
    std::map<uint32_t, std::pair<EpochSalt, std::shared_ptr<const crypto::MacKey>>> epochs;
    std::vector<std::pair<std::shared_ptr<const crypto::MacKey>, std::vector<uint8_t>>> joins;
  };
  std::map<uint64_t, Comm> comms_;
};

// The root key of a communicator from its job's 16-byte secret.
crypto::Key communicatorRootKey(const uint8_t secret[16], uint64_t comm);

}  // namespace ftccl
