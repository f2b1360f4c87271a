#include "recovery/agreement_messages.h"

#include <cstring>
#include <random>
#include <type_traits>

#include "util/byte_io.h"
#include "util/crypto.h"
#include "util/run_set.h"

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

uint8_t wireTypeOf(const RecoveryMessage& m) {
  return std::visit([](const auto& one) { return one.kWireType; }, m);
}

uint64_t epochOf(const RecoveryMessage& m) {
  return std::visit(
      [](const auto& one) -> uint64_t {
        if constexpr (std::is_same_v<std::decay_t<decltype(one)>, JoinAccept>) {
          return one.commit.epoch;
        } else {
          return one.epoch;
        }
      },
      m);
}

namespace {

void putJoined(ByteWriter& w, const std::vector<JoiningSpare>& joined) {
  w.put(static_cast<uint32_t>(joined.size()));
  for (const JoiningSpare& j : joined) {
    w.putString(j.key);
    w.putString(j.host);
    w.put(j.pid);
    w.putBlob(j.peerInfo);
  }
}

// Every count is checked against the bytes left before anything is allocated: a
// newcomer takes at least 16 bytes (two empty strings, a pid, an empty blob), while
// its decoded form is about 100, so a 1 MiB frame claiming 1M newcomers cost 100 MB.
bool getJoined(ByteReader& r, std::vector<JoiningSpare>* joined) {
  constexpr size_t kMinJoinedBytes = 4 + 4 + sizeof(int32_t) + 4;
  uint32_t n = 0;
  if (!r.get(&n) || n > r.remaining() / kMinJoinedBytes) return false;
  joined->resize(n);
  for (JoiningSpare& j : *joined) {
    if (!r.getString(&j.key) || !r.getString(&j.host) || !r.get(&j.pid) ||
        !r.getBlob(&j.peerInfo)) {
      return false;
    }
  }
  return true;
}

void putRanges(ByteWriter& w, const PlaceRanges& ranges) {
  w.put(static_cast<uint32_t>(ranges.size()));
  for (uint32_t v : ranges) w.put(v);
}

// Ranges come in pairs, ascending, apart and inside RunSet's bound (what the agreement
// sends): anything else is refused here, so a forged frame cannot make a receiver walk a
// range twice or backwards, and its count cannot claim more than the frame holds.
bool getRanges(ByteReader& r, PlaceRanges* ranges) {
  uint32_t n = 0;
  if (!r.get(&n) || n % 2 != 0 || n > r.remaining() / sizeof(uint32_t)) return false;
  ranges->resize(n);
  uint64_t end = 0;
  for (size_t i = 0; i < n; i += 2) {
    uint32_t& first = (*ranges)[i];
    uint32_t& count = (*ranges)[i + 1];
    if (!r.get(&first) || !r.get(&count) || count == 0 || (i > 0 && first <= end)) return false;
    end = uint64_t{first} + count;
    if (end > RunSet::kEnd) return false;
  }
  return true;
}

// The wire layout, field by field, in the order of the struct all types once shared
// (failed sets were names until issue 27; they are place ranges now). A type points at
// the fields it has; the rest go out as these defaults.
const PlaceRanges kNoPlaces;
const Membership kNoMembership;
const std::vector<int> kNoRanks;
const std::vector<JoiningSpare> kNoneJoined;
const std::vector<uint8_t> kNoBytes;
const EpochSalt kNoSalt{};

struct WireFields {
  uint8_t type = 0;
  uint64_t epoch = 0;
  const PlaceRanges* failed = &kNoPlaces;
  const Membership* next = &kNoMembership;
  const std::vector<int>* failedRanks = &kNoRanks;
  int replaced = 0;
  bool shrunk = false;
  const std::vector<JoiningSpare>* joined = &kNoneJoined;
  const std::vector<uint8_t>* blob = &kNoBytes;
  int64_t ballot = -1;
  const PlaceRanges* acceptedFailed = &kNoPlaces;
  bool wantsReport = false;
  const EpochSalt* salt = &kNoSalt;
  const std::vector<uint8_t>* sealedKey = &kNoBytes;
};

void setCommitFields(const AgreementCommit& c, WireFields* f) {
  f->epoch = c.epoch;
  f->failed = &c.failed;
  f->next = &c.next;
  f->failedRanks = &c.failedRanks;
  f->replaced = c.replaced;
  f->shrunk = c.shrunk;
  f->joined = &c.joined;
  f->salt = &c.salt;
}

std::vector<uint8_t> encodeFields(const WireFields& f) {
  ByteWriter w;
  w.put(f.type);
  w.put(f.epoch);
  putRanges(w, *f.failed);
  w.put(f.next->epoch);
  w.putStrings(f.next->ranks);
  w.putStrings(f.next->spares);
  w.put(static_cast<uint32_t>(f.failedRanks->size()));
  for (int r : *f.failedRanks) w.put(static_cast<int32_t>(r));
  w.put(static_cast<int32_t>(f.replaced));
  w.put(static_cast<uint8_t>(f.shrunk));
  putJoined(w, *f.joined);
  w.putBlob(*f.blob);
  w.put(f.ballot);
  putRanges(w, *f.acceptedFailed);
  w.put(static_cast<uint8_t>(f.wantsReport));
  w.put(*f.salt);
  w.putBlob(*f.sealedKey);
  return w.bytes();
}

// Every field of the layout, decoded, before the type takes its own.
struct DecodedFields {
  uint8_t type = 0;
  uint64_t epoch = 0;
  PlaceRanges failed;
  Membership next;
  std::vector<int> failedRanks;
  int replaced = 0;
  bool shrunk = false;
  std::vector<JoiningSpare> joined;
  std::vector<uint8_t> blob;
  int64_t ballot = -1;
  PlaceRanges acceptedFailed;
  bool wantsReport = false;
  EpochSalt salt{};
  std::vector<uint8_t> sealedKey;
};

bool decodeFields(const std::vector<uint8_t>& frame, DecodedFields* out) {
  ByteReader r(frame);
  DecodedFields& m = *out;
  uint8_t shrunk = 0, wantsReport = 0;
  uint32_t nFailed = 0;
  int32_t replaced = 0;
  if (!r.get(&m.type) || m.type < AgreementReport::kWireType ||
      m.type > AgreementAccept::kWireType || !r.get(&m.epoch) || !getRanges(r, &m.failed) ||
      !r.get(&m.next.epoch) || !r.getStrings(&m.next.ranks) || !r.getStrings(&m.next.spares) ||
      !r.get(&nFailed) || nFailed > r.remaining() / sizeof(int32_t)) {
    return false;
  }
  for (uint32_t i = 0; i < nFailed; ++i) {
    int32_t rank = 0;
    if (!r.get(&rank)) return false;
    m.failedRanks.push_back(rank);
  }
  if (!r.get(&replaced) || !r.get(&shrunk) || !getJoined(r, &m.joined)) return false;
  if (!r.getBlob(&m.blob) || !r.get(&m.ballot) || !getRanges(r, &m.acceptedFailed) ||
      !r.get(&wantsReport) || !r.get(&m.salt) || !r.getBlob(&m.sealedKey) || !r.atEnd()) {
    return false;
  }
  m.replaced = replaced;
  m.shrunk = shrunk != 0;
  m.wantsReport = wantsReport != 0;
  return true;
}

std::vector<uint8_t> encodeVotes(const AgreementVotes& m) {
  ByteWriter w;
  w.put(AgreementVotes::kWireType);
  w.put(m.epoch);
  w.put(m.ballot);
  w.put(static_cast<uint8_t>((m.accepts ? 1 : 0) | (m.toCoordinator ? 2 : 0) | (m.round ? 4 : 0)));
  putRanges(w, m.places);
  putRanges(w, m.failed);
  w.put(m.acceptedBallot);
  putRanges(w, m.acceptedFailed);
  putJoined(w, m.joined);
  w.put(m.salt);
  return w.bytes();
}

bool decodeVotes(ByteReader& r, AgreementVotes* m) {
  uint8_t flags = 0;
  if (!r.get(&m->epoch) || !r.get(&m->ballot) || !r.get(&flags) || flags > 7) return false;
  m->accepts = (flags & 1) != 0;
  m->toCoordinator = (flags & 2) != 0;
  m->round = (flags & 4) != 0;
  return getRanges(r, &m->places) && getRanges(r, &m->failed) && r.get(&m->acceptedBallot) &&
         getRanges(r, &m->acceptedFailed) && getJoined(r, &m->joined) && r.get(&m->salt) &&
         r.atEnd();
}

AgreementCommit takeCommit(DecodedFields& f) {
  AgreementCommit c;
  c.epoch = f.epoch;
  c.failed = std::move(f.failed);
  c.next = std::move(f.next);
  c.failedRanks = std::move(f.failedRanks);
  c.replaced = f.replaced;
  c.shrunk = f.shrunk;
  c.joined = std::move(f.joined);
  c.salt = f.salt;
  return c;
}

}  // namespace

std::vector<uint8_t> encodeRecoveryMessage(const RecoveryMessage& message) {
  if (const auto* votes = std::get_if<AgreementVotes>(&message)) return encodeVotes(*votes);
  WireFields f;
  f.type = wireTypeOf(message);
  std::vector<JoiningSpare> candidate;  // a join request's, as the list it travels in
  if (const auto* m = std::get_if<AgreementReport>(&message)) {
    f.epoch = m->epoch;
    f.failed = &m->failed;
    f.joined = &m->joined;
    f.ballot = m->ballot;
    f.acceptedFailed = &m->acceptedFailed;
    f.wantsReport = m->wantsReport;
    f.salt = &m->salt;
  } else if (const auto* m = std::get_if<AgreementCommit>(&message)) {
    setCommitFields(*m, &f);
  } else if (const auto* m = std::get_if<AgreementExpelled>(&message)) {
    f.epoch = m->epoch;
  } else if (const auto* m = std::get_if<JoinRequest>(&message)) {
    f.epoch = m->epoch;
    if (m->candidate) candidate.push_back(*m->candidate);
    f.joined = &candidate;
    f.blob = &m->secret;
  } else if (const auto* m = std::get_if<JoinAccept>(&message)) {
    setCommitFields(m->commit, &f);
    f.blob = &m->package;
    f.sealedKey = &m->sealedKey;
  } else if (const auto* m = std::get_if<AgreementProposal>(&message)) {
    f.epoch = m->epoch;
    f.ballot = m->ballot;
    f.failed = &m->failed;
    f.joined = &m->joined;
    f.salt = &m->salt;
  } else if (const auto* m = std::get_if<AgreementAccept>(&message)) {
    f.epoch = m->epoch;
    f.ballot = m->ballot;
  }
  return encodeFields(f);
}

bool decodeRecoveryMessage(const std::vector<uint8_t>& frame, RecoveryMessage* out) {
  if (!frame.empty() && frame[0] == AgreementVotes::kWireType) {
    ByteReader r(frame);
    uint8_t type = 0;
    AgreementVotes votes;
    if (!r.get(&type) || !decodeVotes(r, &votes)) return false;
    *out = std::move(votes);
    return true;
  }
  DecodedFields f;
  if (!decodeFields(frame, &f)) return false;
  switch (f.type) {
    case AgreementReport::kWireType:
      *out = AgreementReport{
          f.epoch, std::move(f.failed), f.ballot, std::move(f.acceptedFailed), std::move(f.joined),
          f.salt,  f.wantsReport};
      break;
    case AgreementCommit::kWireType:
      *out = takeCommit(f);
      break;
    case AgreementExpelled::kWireType:
      *out = AgreementExpelled{f.epoch};
      break;
    case JoinRequest::kWireType: {
      JoinRequest m{f.epoch, std::nullopt, std::move(f.blob)};
      if (f.joined.size() == 1) m.candidate = std::move(f.joined.front());
      *out = std::move(m);
      break;
    }
    case JoinAccept::kWireType: {
      std::vector<uint8_t> package = std::move(f.blob);
      std::vector<uint8_t> sealedKey = std::move(f.sealedKey);
      *out = JoinAccept{takeCommit(f), std::move(package), std::move(sealedKey)};
      break;
    }
    case AgreementProposal::kWireType:
      *out = AgreementProposal{f.epoch, f.ballot, std::move(f.failed), std::move(f.joined), f.salt};
      break;
    default:  // decodeFields admits no other type
      *out = AgreementAccept{f.epoch, f.ballot};
      break;
  }
  return true;
}

}  // namespace ftccl
