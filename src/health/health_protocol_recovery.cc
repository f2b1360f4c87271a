// HealthProtocol, recovery: the agreement's messages on the health channel and its
// decisions told to the communicator; newcomers asking to join the spare pool, and the
// keys their sponsor seals for them.
#include <algorithm>
#include <cstring>
#include <string_view>

#include "health/health_protocol.h"
#include "recovery/agreement.h"
#include "util/log.h"

namespace ftccl {

// Tells the communicator once when its agreement has decided.
void HealthProtocol::checkAgreement(Registration& r) {
  if (r.agreementDone || r.info.listener == nullptr) return;
  // Failures the agreement heard of (its round, a proposal, a commit): every
  // communicator containing them is told, as of a FAILED notice.
  const uint64_t commKey = r.info.commKey;  // deliver() may replace r's table
  learntFailures(commKey, r.agreement->takeLearnedFailures());
  if (r.agreementDone) return;  // told inside (learntFailures delivers, which checks again)
  switch (r.agreement->state()) {
    case Agreement::State::kStable: {
      // Each new epoch is told (a second failure may be agreed on before the
      // application calls ftcclCommRebuild: the newest commit then wins). A commit that
      // only adds spares to the pool changes nothing for the ranks: it is taken in here.
      uint64_t epoch = r.agreement->membership().epoch;
      if (epoch > r.info.epoch && epoch > r.notifiedEpoch) {
        r.notifiedEpoch = epoch;
        const AgreementCommit& commit = r.agreement->lastCommit();
        adoptJoined(r, commit);
        // No failed rank: the ranks are unchanged (Agreement::decide), only the pool.
        if (commit.failedRanks.empty()) {
          r.info.epoch = static_cast<uint32_t>(epoch);
        } else {
          r.info.listener->onRebuilt(r.agreement->lastCommitShared());
        }
      }
      break;
    }
    case Agreement::State::kFailed:
    case Agreement::State::kExpelled:
      r.agreementDone = true;
      r.info.listener->onRecoveryFailed(r.agreement->why());
      break;
    case Agreement::State::kRecovering:
      break;
  }
}

void HealthProtocol::allowJoin(RegistrationId id, std::vector<uint8_t> secret) {
  auto it = registrations_.find(id);
  if (it == registrations_.end()) return;
  keys_.addJoinSecret(it->second.info.commKey, secret);
  it->second.info.joinSecrets.push_back(std::move(secret));
}

void HealthProtocol::sendRecovery(const ProcessKey& to, uint64_t commKey,
                                  const RecoveryMessage& message) {
  send(to, HealthRecovery{commKey, encodeRecoveryMessage(message)}, &message);
}

// What a sponsor seals for its newcomer under the key of its join id: the root key, and
// the epoch before the pool commit with its salt (members that have not adopted the
// commit yet still speak in it: their LEAVE and FAILED notices).
struct SealedForNewcomer {
  crypto::Key root{};
  uint32_t previousEpoch = 0;
  EpochSalt previousSalt{};
};
constexpr std::string_view kNewcomerLabel = "ftccl keys for a newcomer";

static std::vector<uint8_t> sealForNewcomer(const crypto::Key& joinKey,
                                            const SealedForNewcomer& keys) {
  std::vector<uint8_t> plain(keys.root.begin(), keys.root.end());
  const auto* epoch = reinterpret_cast<const uint8_t*>(&keys.previousEpoch);
  plain.insert(plain.end(), epoch, epoch + sizeof(keys.previousEpoch));
  plain.insert(plain.end(), keys.previousSalt.begin(), keys.previousSalt.end());
  return crypto::seal(joinKey, plain, kNewcomerLabel);
}

static bool openForNewcomer(const HealthKeys& keys, uint64_t comm, const JoinAccept& accept,
                            SealedForNewcomer* out) {
  for (const auto& [key, secret] : keys.joinKeys(comm)) {
    std::vector<uint8_t> plain;
    if (crypto::open(HealthKeys::joinKeyBytes(comm, secret), accept.sealedKey.data(),
                     accept.sealedKey.size(), kNewcomerLabel, &plain) &&
        plain.size() == out->root.size() + sizeof(out->previousEpoch) + out->previousSalt.size()) {
      const uint8_t* p = plain.data();
      std::copy(p, p + out->root.size(), out->root.begin());
      std::memcpy(&out->previousEpoch, p + out->root.size(), sizeof(out->previousEpoch));
      std::memcpy(out->previousSalt.data(), p + out->root.size() + sizeof(out->previousEpoch),
                  out->previousSalt.size());
      return true;
    }
  }
  return false;
}

void HealthProtocol::onRecoveryMessage(const ProcessKey& from, const HealthRecovery& frame,
                                       const HealthAuth& auth, const RecoveryMessage& m) {
  const uint64_t commKey = frame.commKey;
  for (auto& [id, r] : registrations_) {
    if (r.info.commKey != commKey) continue;
    if (r.info.joining) {  // a newcomer waits only for its answer
      const auto* accept = std::get_if<JoinAccept>(&m);
      if (accept == nullptr || !r.info.listener) continue;
      SealedForNewcomer sealed;
      if (authenticated_) {
        if (!openForNewcomer(keys_, commKey, *accept, &sealed)) {
          FTCCL_LOG(Warn, Recovery,
                    "join answer from {} without keys sealed for this newcomer: ignored", from);
          continue;
        }
        // Held at once: the members watch this process from the pool commit on, and its
        // acks must not wait until the communicator registers as a spare.
        keys_.setRoot(commKey, sealed.root);
        keys_.addEpoch(commKey, sealed.previousEpoch, sealed.previousSalt);
        keys_.addEpoch(commKey, static_cast<uint32_t>(accept->commit.next.epoch),
                       accept->commit.salt);
      }
      r.info.listener->onJoinAccepted(*accept, sealed.root);
      continue;
    }
    if (!r.agreement) continue;
    if (isNewcomersJoin(m)) {
      // Straight from a newcomer (members forward it without secret).
      acceptJoin(r, from, auth, std::get<JoinRequest>(m));
    } else {
      r.agreement->onMessage(from, m);
    }
    FTCCL_LOG(Debug, Recovery, "rank {}: agreement message {} (epoch {}) from {}: state {}",
              r.info.myRank, wireTypeOf(m), epochOf(m), from,
              static_cast<int>(r.agreement->state()));
    checkAgreement(r);
  }
}

// A newcomer's JOIN, checked against the secrets of the join ids this member handed
// out, goes to the agreement; this member answers the newcomer once the pool commit
// is adopted (adoptJoined).
bool HealthProtocol::acceptJoin(Registration& r, const ProcessKey& from, const HealthAuth& auth,
                                const JoinRequest& m) {
  // Which join id: the one whose key sealed the request (authenticated), else the one
  // the request names (simulator).
  std::vector<uint8_t> secret;
  for (const auto& [key, joinSecret] : keys_.joinKeys(r.info.commKey)) {
    if (authenticated_ ? key == auth.key : joinSecret == m.secret) secret = joinSecret;
  }
  if (!authenticated_ && secret.empty()) {
    for (const auto& s : r.info.joinSecrets) {
      if (s == m.secret) secret = s;
    }
  }
  const auto& secrets = r.info.joinSecrets;
  if (!m.candidate || m.candidate->key != from || secret.empty() ||
      std::find(secrets.begin(), secrets.end(), secret) == secrets.end()) {
    FTCCL_LOG(Warn, Recovery,
              "rank {}: rejected a join request from {}: not a join id of this communicator",
              r.info.myRank, from);
    return false;
  }
  const JoiningSpare& spare = *m.candidate;
  if (r.agreement->state() != Agreement::State::kStable) {
    FTCCL_LOG(Warn, Recovery,
              "rank {}: join request from {} (host {}, pid {}) dropped: a recovery is under way",
              r.info.myRank, from, spare.host, spare.pid);
    return false;
  }
  FTCCL_LOG(Info, Recovery, "rank {}: {} (host {}, pid {}) asks to join the spare pool",
            r.info.myRank, from, spare.host, spare.pid);
  r.sponsored[from] = secret;
  r.agreement->requestJoin(spare);
  return true;
}

// Spares that joined late, named by a commit: the core learns how to reach them, the
// health registration lists (and, for one rank, monitors) each new one, and the member
// that accepted a newcomer sends it the pool commit and the member table.
void HealthProtocol::adoptJoined(Registration& r, const AgreementCommit& commit) {
  int nRanks = r.info.members->nRanks;
  for (const JoiningSpare& spare : commit.joined) {
    if (r.info.listener) r.info.listener->onSpareJoined(spare);
    const bool listed = memberOf(r.info, spare.key) != nullptr;
    if (!listed && std::find(commit.next.spares.begin(), commit.next.spares.end(), spare.key) !=
                       commit.next.spares.end()) {
      int index = r.info.members->size();
      std::vector<MemberInfo> grown = r.info.members->members;  // copy on write
      grown.push_back(MemberInfo{{spare.key, spare.host, spare.pid}, index});
      r.info.members = MemberTable::make(std::move(grown), nRanks);
      if (r.info.myRank >= 0 && r.info.myRank < nRanks && nRanks > 0 &&
          (index - nRanks) % nRanks == r.info.myRank) {
        r.info.monitored.push_back(index);
      }
    }
    auto sponsored = r.sponsored.find(spare.key);
    if (sponsored != r.sponsored.end() && r.info.listener) {
      JoinAccept answer{commit, r.info.listener->joinPackage(), {}};
      HealthRecovery frame;
      frame.commKey = r.info.commKey;
      HealthAuth auth;
      if (authenticated_) {
        // The root key, sealed under the newcomer's join key; the frame, under that key.
        const crypto::Key* root = keys_.root(r.info.commKey);
        const crypto::Key joinKey = HealthKeys::joinKeyBytes(r.info.commKey, sponsored->second);
        SealedForNewcomer sealed;
        sealed.previousEpoch = static_cast<uint32_t>(commit.epoch - 1);
        if (root == nullptr ||
            !keys_.saltOf(r.info.commKey, sealed.previousEpoch, &sealed.previousSalt)) {
          continue;
        }
        sealed.root = *root;
        answer.sealedKey = sealForNewcomer(joinKey, sealed);
        auth.comm = r.info.commKey;
        auth.kind = KeyKind::kJoin;
        auth.key = std::make_shared<const crypto::MacKey>(joinKey);
      }
      const RecoveryMessage accept = std::move(answer);
      frame.payload = encodeRecoveryMessage(accept);
      HealthMessage m = std::move(frame);
      m.auth = std::move(auth);
      r.sponsored.erase(sponsored);
      send(spare.key, m, &accept);
    }
  }
  if (!commit.joined.empty()) syncWatched(lastNow_);
}

}  // namespace ftccl
