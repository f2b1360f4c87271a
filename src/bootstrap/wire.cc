// The rendezvous wire format (see wire.h): pure encode/decode, no IO.
#include "bootstrap/wire.h"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "util/crypto.h"

namespace ftccl {
namespace bootstrap {

uint64_t fnv1a64(const void* data, size_t size, uint64_t hash) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) {
    hash ^= p[i];
    hash *= 0x100000001b3ull;
  }
  return hash;
}

namespace {

void put32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put64(std::vector<uint8_t>& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void set32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void set64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t get32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// A bounds-checked little-endian reader.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), left_(size) {}
  bool u32(uint32_t* v) {
    if (left_ < 4) return false;
    *v = get32(p_);
    skip(4);
    return true;
  }
  bool u64(uint64_t* v) {
    if (left_ < 8) return false;
    *v = get64(p_);
    skip(8);
    return true;
  }
  bool bytes(size_t n, const uint8_t** out) {
    if (left_ < n) return false;
    *out = p_;
    skip(n);
    return true;
  }
  size_t left() const { return left_; }

 private:
  void skip(size_t n) {
    p_ += n;
    left_ -= n;
  }
  const uint8_t* p_;
  size_t left_;
};

uint64_t frameChecksum(uint16_t version, uint16_t type, uint32_t length, const uint8_t* body,
                       size_t bodySize) {
  uint8_t head[8];
  head[0] = static_cast<uint8_t>(version);
  head[1] = static_cast<uint8_t>(version >> 8);
  head[2] = static_cast<uint8_t>(type);
  head[3] = static_cast<uint8_t>(type >> 8);
  set32(head + 4, length);
  return fnv1a64(body, bodySize, fnv1a64(head, sizeof(head)));
}

// Reserves the header, lets the caller append the body, then fills the header in.
std::vector<uint8_t> startFrame(size_t bodyHint) {
  std::vector<uint8_t> frame;
  frame.reserve(kFrameHeaderBytes + bodyHint);
  frame.resize(kFrameHeaderBytes);
  return frame;
}

void finishFrame(FrameType type, std::vector<uint8_t>* frame) {
  uint8_t* h = frame->data();
  const uint32_t length = static_cast<uint32_t>(frame->size() - kFrameHeaderBytes);
  set32(h, kFrameMagic);
  h[4] = static_cast<uint8_t>(kWireVersion);
  h[5] = static_cast<uint8_t>(kWireVersion >> 8);
  h[6] = static_cast<uint8_t>(static_cast<uint16_t>(type));
  h[7] = static_cast<uint8_t>(static_cast<uint16_t>(type) >> 8);
  set32(h + 8, length);
  set64(h + 12, frameChecksum(kWireVersion, static_cast<uint16_t>(type), length,
                              frame->data() + kFrameHeaderBytes, length));
}

const char* typeName(FrameType t) {
  switch (t) {
    case FrameType::Hello:
      return "hello";
    case FrameType::Table:
      return "table";
    case FrameType::Error:
      return "error";
    case FrameType::Challenge:
      return "challenge";
    case FrameType::Proof:
      return "proof";
    case FrameType::Role:
      return "role";
    case FrameType::Fetch:
      return "fetch";
  }
  return "?";
}

Status decodeFrame(const std::vector<uint8_t>& frame, FrameType expected, const uint8_t** body,
                   size_t* bodySize) {
  FrameHeader header;
  FTCCL_CHECK(parseFrameHeader(frame.data(), frame.size(), &header));
  if (header.type != expected) {
    return invalidArgument(std::string("bootstrap message: expected a ") + typeName(expected) +
                           ", got a " + typeName(header.type));
  }
  FTCCL_CHECK(
      checkFrameBody(header, frame.data() + kFrameHeaderBytes, frame.size() - kFrameHeaderBytes));
  *body = frame.data() + kFrameHeaderBytes;
  *bodySize = frame.size() - kFrameHeaderBytes;
  return Status::ok();
}

}  // namespace

size_t maxBodyBytes(FrameType type) {
  switch (type) {
    case FrameType::Hello:
      return kProofBytes + kChallengeBytes + 8 + 5 * 4 + kMaxBlobBytes + 4 + kMaxRelayAddressBytes;
    case FrameType::Table:
      return kMaxTableBytes;
    case FrameType::Error:
      return 8 + kMaxErrorMessageBytes;
    case FrameType::Challenge:
      return kChallengeBytes;
    case FrameType::Proof:
      return kProofBytes;
    case FrameType::Role:
      return 8 + 4 + 4 + 32 + 4 + 4 + 4 + 4 + 4 + kMaxRelayAddressBytes;
    case FrameType::Fetch:
      return kProofBytes + 8 + 4;
  }
  return 0;
}

Status parseFrameHeader(const uint8_t* data, size_t size, FrameHeader* out) {
  if (size < kFrameHeaderBytes) {
    return invalidArgument("bootstrap message truncated: " + std::to_string(size) +
                           " header bytes of " + std::to_string(kFrameHeaderBytes));
  }
  if (get32(data) != kFrameMagic) {
    return invalidArgument("not an ftccl bootstrap message (bad magic)");
  }
  FrameHeader h;
  h.version = get16(data + 4);
  if (h.version != kWireVersion) {
    return invalidArgument("bootstrap message from another ftccl version (wire format " +
                           std::to_string(h.version) + ", this library speaks " +
                           std::to_string(kWireVersion) + ")");
  }
  uint16_t type = get16(data + 6);
  if (type < static_cast<uint16_t>(FrameType::Hello) ||
      type > static_cast<uint16_t>(FrameType::Fetch)) {
    return invalidArgument("corrupted bootstrap message: unknown type " + std::to_string(type));
  }
  h.type = static_cast<FrameType>(type);
  h.length = get32(data + 8);
  if (h.length > maxBodyBytes(h.type)) {
    return invalidArgument("corrupted bootstrap message: " + std::string(typeName(h.type)) +
                           " of " + std::to_string(h.length) + " bytes exceeds the limit of " +
                           std::to_string(maxBodyBytes(h.type)));
  }
  h.checksum = get64(data + 12);
  *out = h;
  return Status::ok();
}

Status checkFrameBody(const FrameHeader& header, const uint8_t* body, size_t size) {
  if (size != header.length) {
    return invalidArgument("corrupted bootstrap message: " + std::string(typeName(header.type)) +
                           " body has " + std::to_string(size) + " bytes, header says " +
                           std::to_string(header.length));
  }
  if (frameChecksum(header.version, static_cast<uint16_t>(header.type), header.length, body,
                    size) != header.checksum) {
    return invalidArgument("corrupted bootstrap message: " + std::string(typeName(header.type)) +
                           " checksum mismatch");
  }
  return Status::ok();
}

namespace {

constexpr std::string_view kHelloLabel = "ftccl bootstrap hello";
constexpr std::string_view kReplyLabel = "ftccl bootstrap reply";
constexpr std::string_view kFetchLabel = "ftccl bootstrap fetch";

crypto::Tag helloProof(const uint8_t secret[16], const uint8_t rootChallenge[kChallengeBytes],
                       const uint8_t* afterProof, size_t size) {
  crypto::MacKey key(secret, 16);
  return key.tag({{kHelloLabel.data(), kHelloLabel.size()},
                  {rootChallenge, kChallengeBytes},
                  {afterProof, size}});
}

crypto::Tag replyProof(const uint8_t secret[16], const uint8_t rootChallenge[kChallengeBytes],
                       const uint8_t clientChallenge[kChallengeBytes],
                       const std::array<uint8_t, 32>& digest) {
  crypto::MacKey key(secret, 16);
  return key.tag({{kReplyLabel.data(), kReplyLabel.size()},
                  {rootChallenge, kChallengeBytes},
                  {clientChallenge, kChallengeBytes},
                  {digest.data(), digest.size()}});
}

crypto::Tag fetchProof(const uint8_t secret[16], const uint8_t serverChallenge[kChallengeBytes],
                       const std::array<uint8_t, 32>& tableDigest, const uint8_t* afterProof,
                       size_t size) {
  crypto::MacKey key(secret, 16);
  return key.tag({{kFetchLabel.data(), kFetchLabel.size()},
                  {serverChallenge, kChallengeBytes},
                  {tableDigest.data(), tableDigest.size()},
                  {afterProof, size}});
}

}  // namespace

std::array<uint8_t, 32> replyDigest(const std::vector<uint8_t>& replyFrame) {
  return crypto::sha256(replyFrame.data(), replyFrame.size());
}

std::vector<uint8_t> encodeChallenge(const uint8_t challenge[kChallengeBytes]) {
  std::vector<uint8_t> f = startFrame(kChallengeBytes);
  f.insert(f.end(), challenge, challenge + kChallengeBytes);
  finishFrame(FrameType::Challenge, &f);
  return f;
}

std::vector<uint8_t> encodeHello(const Hello& hello, const uint8_t secret[16],
                                 const uint8_t rootChallenge[kChallengeBytes]) {
  std::vector<uint8_t> f = startFrame(kProofBytes + kChallengeBytes + 28 + hello.blob.size());
  f.insert(f.end(), kProofBytes, 0);  // filled in below
  f.insert(f.end(), hello.challenge, hello.challenge + kChallengeBytes);
  put64(f, hello.nonce);
  put32(f, static_cast<uint32_t>(hello.rank));
  put32(f, static_cast<uint32_t>(hello.nranks));
  put32(f, hello.timeoutMs);
  put32(f, hello.remainingMs);
  put32(f, static_cast<uint32_t>(hello.blob.size()));
  f.insert(f.end(), hello.blob.begin(), hello.blob.end());
  put32(f, static_cast<uint32_t>(hello.relay.size()));
  f.insert(f.end(), hello.relay.begin(), hello.relay.end());
  const size_t proofAt = kFrameHeaderBytes;
  crypto::Tag proof = helloProof(secret, rootChallenge, f.data() + proofAt + kProofBytes,
                                 f.size() - proofAt - kProofBytes);
  std::memcpy(f.data() + proofAt, proof.data(), kProofBytes);
  finishFrame(FrameType::Hello, &f);
  return f;
}

std::vector<uint8_t> encodeReplyProof(const uint8_t secret[16],
                                      const uint8_t rootChallenge[kChallengeBytes],
                                      const uint8_t clientChallenge[kChallengeBytes],
                                      const std::array<uint8_t, 32>& digest) {
  crypto::Tag proof = replyProof(secret, rootChallenge, clientChallenge, digest);
  std::vector<uint8_t> f = startFrame(kProofBytes);
  f.insert(f.end(), proof.begin(), proof.end());
  finishFrame(FrameType::Proof, &f);
  return f;
}

Status decodeChallengeBody(const uint8_t* body, size_t size, uint8_t challenge[kChallengeBytes]) {
  if (size != kChallengeBytes) return invalidArgument("corrupted bootstrap challenge");
  std::memcpy(challenge, body, kChallengeBytes);
  return Status::ok();
}

bool helloProven(const uint8_t* body, size_t size, const uint8_t secret[16],
                 const uint8_t rootChallenge[kChallengeBytes]) {
  if (size < kProofBytes) return false;
  crypto::Tag proof = helloProof(secret, rootChallenge, body + kProofBytes, size - kProofBytes);
  return crypto::equalConstantTime(proof.data(), body, kProofBytes);
}

bool replyProven(const uint8_t* proofBody, size_t size, const uint8_t secret[16],
                 const uint8_t rootChallenge[kChallengeBytes],
                 const uint8_t clientChallenge[kChallengeBytes],
                 const std::array<uint8_t, 32>& digest) {
  if (size != kProofBytes) return false;
  crypto::Tag proof = replyProof(secret, rootChallenge, clientChallenge, digest);
  return crypto::equalConstantTime(proof.data(), proofBody, kProofBytes);
}

std::vector<uint8_t> encodeTable(uint64_t nonce, const std::vector<std::vector<uint8_t>>& blobs) {
  size_t total = 12;
  for (const auto& b : blobs) total += 4 + b.size();
  std::vector<uint8_t> f = startFrame(total);
  put64(f, nonce);
  put32(f, static_cast<uint32_t>(blobs.size()));
  for (const auto& b : blobs) {
    put32(f, static_cast<uint32_t>(b.size()));
    f.insert(f.end(), b.begin(), b.end());
  }
  finishFrame(FrameType::Table, &f);
  return f;
}

std::vector<uint8_t> encodeError(ftcclResult_t code, const std::string& message) {
  size_t n = std::min(message.size(), kMaxErrorMessageBytes);
  std::vector<uint8_t> f = startFrame(8 + n);
  put32(f, static_cast<uint32_t>(code));
  put32(f, static_cast<uint32_t>(n));
  f.insert(f.end(), message.begin(), message.begin() + static_cast<std::ptrdiff_t>(n));
  finishFrame(FrameType::Error, &f);
  return f;
}

std::vector<uint8_t> encodeRole(const Role& role) {
  const size_t n = std::min(role.parentAddress.size(), kMaxRelayAddressBytes);
  std::vector<uint8_t> f = startFrame(68 + n);
  put64(f, role.nonce);
  put32(f, role.nranks);
  put32(f, role.tableBytes);
  f.insert(f.end(), role.tableDigest.begin(), role.tableDigest.end());
  put32(f, role.children);
  put32(f, role.depth);
  put32(f, role.hopMs);
  put32(f, static_cast<uint32_t>(role.parent));
  put32(f, static_cast<uint32_t>(n));
  f.insert(f.end(), role.parentAddress.begin(), role.parentAddress.begin() + n);
  finishFrame(FrameType::Role, &f);
  return f;
}

std::vector<uint8_t> encodeFetch(uint64_t nonce, int32_t rank, const uint8_t secret[16],
                                 const uint8_t serverChallenge[kChallengeBytes],
                                 const std::array<uint8_t, 32>& tableDigest) {
  std::vector<uint8_t> f = startFrame(kProofBytes + 12);
  f.insert(f.end(), kProofBytes, 0);
  put64(f, nonce);
  put32(f, static_cast<uint32_t>(rank));
  const size_t proofAt = kFrameHeaderBytes;
  crypto::Tag proof =
      fetchProof(secret, serverChallenge, tableDigest, f.data() + proofAt + kProofBytes, 12);
  std::memcpy(f.data() + proofAt, proof.data(), kProofBytes);
  finishFrame(FrameType::Fetch, &f);
  return f;
}

Status decodeRoleBody(const uint8_t* body, size_t size, Role* out) {
  Reader r(body, size);
  Role role;
  const uint8_t* digest = nullptr;
  const uint8_t* address = nullptr;
  uint32_t parent = 0, n = 0;
  if (!r.u64(&role.nonce) || !r.u32(&role.nranks) || !r.u32(&role.tableBytes) ||
      !r.bytes(32, &digest) || !r.u32(&role.children) || !r.u32(&role.depth) ||
      !r.u32(&role.hopMs) || !r.u32(&parent) || !r.u32(&n) || n > kMaxRelayAddressBytes ||
      !r.bytes(n, &address) || r.left() != 0) {
    return invalidArgument("corrupted bootstrap role");
  }
  std::memcpy(role.tableDigest.data(), digest, 32);
  role.parent = static_cast<int32_t>(parent);
  role.parentAddress.assign(reinterpret_cast<const char*>(address), n);
  if (role.parent < -1 || (role.parent >= 0 && role.parentAddress.empty()) ||
      role.depth > kMaxRelayDepth || role.hopMs > kMaxRelayHopMs ||
      role.tableBytes < kFrameHeaderBytes || role.tableBytes - kFrameHeaderBytes > kMaxTableBytes) {
    return invalidArgument("corrupted bootstrap role");
  }
  *out = std::move(role);
  return Status::ok();
}

bool fetchProven(const uint8_t* body, size_t size, const uint8_t secret[16],
                 const uint8_t serverChallenge[kChallengeBytes],
                 const std::array<uint8_t, 32>& tableDigest, uint64_t* nonce, int32_t* rank) {
  if (size != kProofBytes + 12) return false;
  crypto::Tag proof = fetchProof(secret, serverChallenge, tableDigest, body + kProofBytes, 12);
  if (!crypto::equalConstantTime(proof.data(), body, kProofBytes)) return false;
  *nonce = get64(body + kProofBytes);
  *rank = static_cast<int32_t>(get32(body + kProofBytes + 8));
  return true;
}

Status decodeHelloBody(const uint8_t* body, size_t size, Hello* out) {
  Reader r(body, size);
  Hello h;
  const uint8_t* proof = nullptr;
  const uint8_t* challenge = nullptr;
  uint64_t nonce = 0;
  uint32_t rank = 0, nranks = 0, timeoutMs = 0, remainingMs = 0, blobLen = 0;
  if (!r.bytes(kProofBytes, &proof) || !r.bytes(kChallengeBytes, &challenge) || !r.u64(&nonce) ||
      !r.u32(&rank) || !r.u32(&nranks) || !r.u32(&timeoutMs) || !r.u32(&remainingMs) ||
      !r.u32(&blobLen)) {
    return invalidArgument("corrupted bootstrap hello: truncated fixed fields");
  }
  if (blobLen > kMaxBlobBytes) {
    return invalidArgument("corrupted bootstrap hello: blob of " + std::to_string(blobLen) +
                           " bytes exceeds the limit of " + std::to_string(kMaxBlobBytes));
  }
  const uint8_t* blob = nullptr;
  const uint8_t* relay = nullptr;
  uint32_t relayLen = 0;
  if (!r.bytes(blobLen, &blob) || !r.u32(&relayLen) || relayLen > kMaxRelayAddressBytes ||
      !r.bytes(relayLen, &relay) || r.left() != 0) {
    return invalidArgument("corrupted bootstrap hello: blob of " + std::to_string(blobLen) +
                           " bytes and a relay address do not fill its body");
  }
  std::memcpy(h.proof, proof, kProofBytes);
  std::memcpy(h.challenge, challenge, kChallengeBytes);
  h.nonce = nonce;
  h.rank = static_cast<int32_t>(rank);
  h.nranks = static_cast<int32_t>(nranks);
  h.timeoutMs = timeoutMs;
  h.remainingMs = remainingMs;
  h.blob.assign(blob, blob + blobLen);
  h.relay.assign(reinterpret_cast<const char*>(relay), relayLen);
  *out = std::move(h);
  return Status::ok();
}

Status decodeTableBody(const uint8_t* body, size_t size, uint64_t* nonce,
                       std::vector<std::vector<uint8_t>>* blobs) {
  Reader r(body, size);
  uint64_t n64 = 0;
  uint32_t nranks = 0;
  if (!r.u64(&n64) || !r.u32(&nranks)) {
    return invalidArgument("corrupted bootstrap table: truncated header");
  }
  if (nranks < 1 || nranks > static_cast<uint32_t>(kMaxRanks)) {
    return invalidArgument("corrupted bootstrap table: nranks " + std::to_string(nranks) +
                           " out of range");
  }
  // Each entry needs at least its 4-byte length: reject before allocating.
  if (r.left() / 4 < nranks) {
    return invalidArgument("corrupted bootstrap table: " + std::to_string(r.left()) +
                           " bytes cannot hold " + std::to_string(nranks) + " entries");
  }
  std::vector<std::vector<uint8_t>> out(nranks);
  for (uint32_t i = 0; i < nranks; ++i) {
    uint32_t len = 0;
    const uint8_t* p = nullptr;
    if (!r.u32(&len) || len > kMaxBlobBytes || !r.bytes(len, &p)) {
      return invalidArgument("corrupted bootstrap table: entry " + std::to_string(i) +
                             " truncated or too large");
    }
    out[i].assign(p, p + len);
  }
  if (r.left() != 0) {
    return invalidArgument("corrupted bootstrap table: " + std::to_string(r.left()) +
                           " trailing bytes");
  }
  *nonce = n64;
  *blobs = std::move(out);
  return Status::ok();
}

Status decodeErrorBody(const uint8_t* body, size_t size, ftcclResult_t* code,
                       std::string* message) {
  Reader r(body, size);
  uint32_t c = 0, len = 0;
  const uint8_t* text = nullptr;
  if (!r.u32(&c) || !r.u32(&len) || len > kMaxErrorMessageBytes || !r.bytes(len, &text) ||
      r.left() != 0) {
    return invalidArgument("corrupted bootstrap error reply");
  }
  switch (c) {
    case ftcclSystemError:
    case ftcclInternalError:
    case ftcclInvalidArgument:
    case ftcclInvalidUsage:
    case ftcclRemoteError:
    case ftcclTimeout:
      *code = static_cast<ftcclResult_t>(c);
      break;
    default:
      return invalidArgument("corrupted bootstrap error reply: result code " + std::to_string(c));
  }
  message->assign(reinterpret_cast<const char*>(text), len);
  return Status::ok();
}

Status decodeHello(const std::vector<uint8_t>& frame, Hello* out) {
  const uint8_t* body = nullptr;
  size_t size = 0;
  FTCCL_CHECK(decodeFrame(frame, FrameType::Hello, &body, &size));
  return decodeHelloBody(body, size, out);
}

Status decodeTable(const std::vector<uint8_t>& frame, uint64_t* nonce,
                   std::vector<std::vector<uint8_t>>* blobs) {
  const uint8_t* body = nullptr;
  size_t size = 0;
  FTCCL_CHECK(decodeFrame(frame, FrameType::Table, &body, &size));
  return decodeTableBody(body, size, nonce, blobs);
}

Status decodeError(const std::vector<uint8_t>& frame, ftcclResult_t* code, std::string* message) {
  const uint8_t* body = nullptr;
  size_t size = 0;
  FTCCL_CHECK(decodeFrame(frame, FrameType::Error, &body, &size));
  return decodeErrorBody(body, size, code, message);
}

std::string formatRankList(const std::vector<int>& ranks) {
  constexpr size_t kMaxChars = 200;
  std::string list;
  size_t i = 0;
  while (i < ranks.size()) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    std::string item;
    if (j - i >= 2) {
      item = std::to_string(ranks[i]) + "-" + std::to_string(ranks[j]);
    } else {
      j = i;
      item = std::to_string(ranks[i]);
    }
    if (list.size() + item.size() > kMaxChars) {
      list += ",...";
      break;
    }
    if (!list.empty()) list += ",";
    list += item;
    i = j + 1;
  }
  return (ranks.size() == 1 ? "rank " : "ranks ") + list;
}

}  // namespace bootstrap
}  // namespace ftccl
