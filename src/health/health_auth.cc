#include "health/health_auth.h"

#include <algorithm>
#include <cstring>
#include <string_view>

namespace ftccl {
namespace {

constexpr std::string_view kSealLabel = "ftccl health frame";
constexpr size_t kSealHeadBytes = kSealBytes - crypto::kTagBytes;

void writeHead(uint8_t* head, const HealthAuth& auth) {
  std::memcpy(head, &auth.comm, 8);
  std::memcpy(head + 8, &auth.epoch, 4);
  head[12] = static_cast<uint8_t>(auth.kind);
}

crypto::Tag sealTag(const crypto::MacKey& key, const uint8_t* frame, size_t frameBytes,
                    const uint8_t* head, const std::string& receiverNonce, uint64_t counter) {
  return key.tag({{kSealLabel.data(), kSealLabel.size()},
                  {receiverNonce.data(), receiverNonce.size()},
                  {&counter, sizeof(counter)},
                  {frame, frameBytes},
                  {head, kSealHeadBytes}});
}

}  // namespace

void appendSeal(std::vector<uint8_t>* frame, size_t frameStart, const HealthAuth& auth,
                const std::string& receiverNonce, uint64_t counter) {
  uint8_t head[kSealHeadBytes];
  writeHead(head, auth);
  crypto::Tag tag{};
  if (auth.key) {
    tag = sealTag(*auth.key, frame->data() + frameStart, frame->size() - frameStart, head,
                  receiverNonce, counter);
  }
  frame->insert(frame->end(), head, head + kSealHeadBytes);
  frame->insert(frame->end(), tag.begin(), tag.end());
}

bool readSeal(const uint8_t* seal, HealthAuth* auth) {
  std::memcpy(&auth->comm, seal, 8);
  std::memcpy(&auth->epoch, seal + 8, 4);
  if (seal[12] > static_cast<uint8_t>(KeyKind::kJoin)) return false;
  auth->kind = static_cast<KeyKind>(seal[12]);
  return true;
}

bool sealValid(const crypto::MacKey& key, const uint8_t* frame, size_t frameBytes,
               const uint8_t* seal, const std::string& receiverNonce, uint64_t counter) {
  crypto::Tag tag = sealTag(key, frame, frameBytes, seal, receiverNonce, counter);
  return crypto::equalConstantTime(tag.data(), seal + kSealHeadBytes, crypto::kTagBytes);
}

crypto::Key communicatorRootKey(const uint8_t secret[16], uint64_t comm) {
  return crypto::MacKey(secret, 16).derive("ftccl communicator", {{&comm, sizeof(comm)}});
}

void HealthKeys::hold(uint64_t comm, const crypto::Key* root) {
  Comm& c = comms_[comm];
  ++c.holders;
  if (root != nullptr && !c.hasRoot) {
    c.root = *root;
    c.hasRoot = true;
  }
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
  c.epochs.emplace(epoch, std::make_shared<const crypto::MacKey>(key));
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
  return e == it->second.epochs.end() ? nullptr : e->second;
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
