#include "health/health_auth.h"

#include <algorithm>
#include <cstring>
#include <string_view>

namespace ftccl {
namespace {

constexpr std::string_view kFrameLabel = "ftccl health frame";
constexpr std::string_view kProbeLabel = "ftccl health probe";
constexpr size_t kSealHeadBytes = kSealBytes - crypto::kTagBytes;

void writeHead(uint8_t* head, const HealthAuth& auth) {
  std::memcpy(head, &auth.comm, 8);
  std::memcpy(head + 8, &auth.epoch, 4);
  head[12] = static_cast<uint8_t>(auth.kind);
}

// Each variable-length part with its length first, so that parts cannot slide.
crypto::Tag sealTag(const crypto::MacKey& key, const uint8_t* frame, size_t frameBytes,
                    const uint8_t* head, const SealContext& c) {
  const std::string_view label = c.datagram ? kProbeLabel : kFrameLabel;
  const uint32_t lengths[4] = {
      static_cast<uint32_t>(c.sender.size()), static_cast<uint32_t>(c.receiver.size()),
      static_cast<uint32_t>(c.senderNonce.size()), static_cast<uint32_t>(c.receiverNonce.size())};
  return key.tag({{label.data(), label.size()},
                  {lengths, sizeof(lengths)},
                  {c.sender.data(), c.sender.size()},
                  {c.receiver.data(), c.receiver.size()},
                  {c.senderNonce.data(), c.senderNonce.size()},
                  {c.receiverNonce.data(), c.receiverNonce.size()},
                  {&c.counter, sizeof(c.counter)},
                  {frame, frameBytes},
                  {head, kSealHeadBytes}});
}

}  // namespace

void appendSeal(std::vector<uint8_t>* frame, size_t frameStart, const HealthAuth& auth,
                const SealContext& context) {
  uint8_t head[kSealHeadBytes];
  writeHead(head, auth);
  crypto::Tag tag{};
  if (auth.key) {
    tag = sealTag(*auth.key, frame->data() + frameStart, frame->size() - frameStart, head, context);
  }
  frame->insert(frame->end(), head, head + kSealHeadBytes);
  frame->insert(frame->end(), tag.begin(), tag.end());
}

bool readSeal(const uint8_t* seal, HealthAuth* auth) {
  std::memcpy(&auth->comm, seal, 8);
  std::memcpy(&auth->epoch, seal + 8, 4);
  if (seal[12] > static_cast<uint8_t>(KeyKind::kAttest)) return false;
  auth->kind = static_cast<KeyKind>(seal[12]);
  return true;
}

bool sealValid(const crypto::MacKey& key, const uint8_t* frame, size_t frameBytes,
               const uint8_t* seal, const SealContext& context) {
  crypto::Tag tag = sealTag(key, frame, frameBytes, seal, context);
  return crypto::equalConstantTime(tag.data(), seal + kSealHeadBytes, crypto::kTagBytes);
}

crypto::Key communicatorRootKey(const uint8_t secret[16], uint64_t comm) {
  return crypto::MacKey(secret, 16).derive("ftccl communicator", {{&comm, sizeof(comm)}});
}

namespace {

void takeRoot(uint64_t comm, const crypto::Key& root, crypto::Key* held,
              std::shared_ptr<const crypto::MacKey>* attest) {
  *held = root;
  *attest = std::make_shared<const crypto::MacKey>(
      crypto::MacKey(root).derive("ftccl attest", {{&comm, sizeof(comm)}}));
}

}  // namespace

void HealthKeys::hold(uint64_t comm, const crypto::Key* root) {
  Comm& c = comms_[comm];
  ++c.holders;
  if (root != nullptr && !c.hasRoot) {
    takeRoot(comm, *root, &c.root, &c.attest);
    c.hasRoot = true;
  }
}

void HealthKeys::setRoot(uint64_t comm, const crypto::Key& root) {
  auto it = comms_.find(comm);
  if (it == comms_.end() || it->second.hasRoot) return;
  takeRoot(comm, root, &it->second.root, &it->second.attest);
  it->second.hasRoot = true;
}

void HealthKeys::release(uint64_t comm) {
  auto it = comms_.find(comm);
  if (it != comms_.end() && --it->second.holders <= 0) comms_.erase(it);
}

void HealthKeys::addEpoch(uint64_t comm, uint32_t epoch, const EpochSalt& salt) {
  auto it = comms_.find(comm);
  if (it == comms_.end() || !it->second.hasRoot || it->second.epochs.count(epoch)) return;
  Comm& c = it->second;
  crypto::Key key = crypto::MacKey(c.root).derive(
      "ftccl epoch", {{&epoch, sizeof(epoch)}, {salt.data(), salt.size()}});
  c.epochs.emplace(epoch, std::make_pair(salt, std::make_shared<const crypto::MacKey>(key)));
  while (c.epochs.size() > kMaxEpochs) c.epochs.erase(c.epochs.begin());
}

void HealthKeys::addJoinSecret(uint64_t comm, const std::vector<uint8_t>& secret) {
  auto it = comms_.find(comm);
  if (it == comms_.end()) return;
  for (const auto& known : it->second.joins) {
    if (known.second == secret) return;
  }
  it->second.joins.emplace_back(std::make_shared<const crypto::MacKey>(joinKeyBytes(comm, secret)),
                                secret);
}

std::shared_ptr<const crypto::MacKey> HealthKeys::epochKey(uint64_t comm, uint32_t epoch) const {
  auto it = comms_.find(comm);
  if (it == comms_.end()) return nullptr;
  auto e = it->second.epochs.find(epoch);
  return e == it->second.epochs.end() ? nullptr : e->second.second;
}

std::shared_ptr<const crypto::MacKey> HealthKeys::attestKey(uint64_t comm) const {
  auto it = comms_.find(comm);
  return it == comms_.end() ? nullptr : it->second.attest;
}

bool HealthKeys::saltOf(uint64_t comm, uint32_t epoch, EpochSalt* salt) const {
  auto it = comms_.find(comm);
  if (it == comms_.end()) return false;
  auto e = it->second.epochs.find(epoch);
  if (e == it->second.epochs.end()) return false;
  *salt = e->second.first;
  return true;
}

std::vector<std::pair<std::shared_ptr<const crypto::MacKey>, std::vector<uint8_t>>>
HealthKeys::joinKeys(uint64_t comm) const {
  auto it = comms_.find(comm);
  if (it == comms_.end()) return {};
  return it->second.joins;
}

const crypto::Key* HealthKeys::root(uint64_t comm) const {
  auto it = comms_.find(comm);
  return it == comms_.end() || !it->second.hasRoot ? nullptr : &it->second.root;
}

crypto::Key HealthKeys::joinKeyBytes(uint64_t comm, const std::vector<uint8_t>& secret) {
  return crypto::MacKey(secret.data(), secret.size()).derive("ftccl join", {{&comm, sizeof(comm)}});
}

}  // namespace ftccl
