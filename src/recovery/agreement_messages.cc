#include "recovery/agreement_messages.h"

#include <cstring>
#include <random>

#include "util/byte_io.h"
#include "util/crypto.h"

namespace ftccl {

static std::function<EpochSalt()>& saltSource() {
  static auto* source = new std::function<EpochSalt()>;  // never destroyed: safe at exit
  return *source;
}

void setEpochSaltSource(std::function<EpochSalt()> source) { saltSource() = std::move(source); }

EpochSalt freshEpochSalt() {
  if (saltSource()) return saltSource()();
  EpochSalt salt{};
  if (!crypto::randomBytes(salt.data(), salt.size()).isOk()) std::abort();  // no entropy
  return salt;
}

std::vector<uint8_t> encodeRecoveryMessage(const RecoveryMessage& m) {
  ByteWriter w;
  w.put(static_cast<uint8_t>(m.type));
  w.put(m.epoch);
  w.putStrings(m.failed);
  w.put(m.next.epoch);
  w.putStrings(m.next.ranks);
  w.putStrings(m.next.spares);
  w.put(static_cast<uint32_t>(m.failedRanks.size()));
  for (int r : m.failedRanks) w.put(static_cast<int32_t>(r));
  w.put(static_cast<int32_t>(m.replaced));
  w.put(static_cast<uint8_t>(m.shrunk));
  w.put(static_cast<uint32_t>(m.joined.size()));
  for (const JoiningSpare& j : m.joined) {
    w.putString(j.key);
    w.putString(j.host);
    w.put(j.pid);
    w.putBlob(j.peerInfo);
  }
  w.putBlob(m.blob);
  w.put(m.ballot);
  w.putStrings(m.acceptedFailed);
  w.put(static_cast<uint8_t>(m.wantsReport));
  w.put(m.salt);
  w.putBlob(m.sealedKey);
  return w.bytes();
}

bool decodeRecoveryMessage(const std::vector<uint8_t>& frame, RecoveryMessage* out) {
  ByteReader r(frame);
  RecoveryMessage m;
  uint8_t type = 0, shrunk = 0, wantsReport = 0;
  uint32_t nFailed = 0;
  int32_t replaced = 0;
  if (!r.get(&type) || type < RecoveryMessage::kReport || type > RecoveryMessage::kAccept ||
      !r.get(&m.epoch) || !r.getStrings(&m.failed) || !r.get(&m.next.epoch) ||
      !r.getStrings(&m.next.ranks) || !r.getStrings(&m.next.spares) || !r.get(&nFailed) ||
      nFailed > r.remaining() / sizeof(int32_t)) {
    return false;
  }
  for (uint32_t i = 0; i < nFailed; ++i) {
    int32_t rank = 0;
    if (!r.get(&rank)) return false;
    m.failedRanks.push_back(rank);
  }
  uint32_t nJoined = 0;
  // Every count is checked against the bytes left before anything is allocated: a
  // newcomer takes at least 16 bytes (two empty strings, a pid, an empty blob), while
  // its decoded form is about 100, so a 1 MiB frame claiming 1M newcomers cost 100 MB.
  constexpr size_t kMinJoinedBytes = 4 + 4 + sizeof(int32_t) + 4;
  if (!r.get(&replaced) || !r.get(&shrunk) || !r.get(&nJoined) ||
      nJoined > r.remaining() / kMinJoinedBytes) {
    return false;
  }
  m.joined.resize(nJoined);
  for (JoiningSpare& j : m.joined) {
    if (!r.getString(&j.key) || !r.getString(&j.host) || !r.get(&j.pid) ||
        !r.getBlob(&j.peerInfo)) {
      return false;
    }
  }
  if (!r.getBlob(&m.blob) || !r.get(&m.ballot) || !r.getStrings(&m.acceptedFailed) ||
      !r.get(&wantsReport) || !r.get(&m.salt) || !r.getBlob(&m.sealedKey) || !r.atEnd()) {
    return false;
  }
  m.type = static_cast<RecoveryMessage::Type>(type);
  m.replaced = replaced;
  m.shrunk = shrunk != 0;
  m.wantsReport = wantsReport != 0;
  *out = std::move(m);
  return true;
}

}  // namespace ftccl
