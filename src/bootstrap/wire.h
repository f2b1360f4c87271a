// Bootstrap internals: the unique id helpers and the rendezvous wire format.
//
// Everything here is pure (no sockets, no threads) so that it can be unit tested with
// truncated and corrupted input. Integers are little-endian on the wire.
//
// Frame = header (20 bytes) + body:
//   u32 magic 'FTBS' | u16 version | u16 type | u32 body length | u64 checksum
// The checksum is FNV-1a 64 over version, type, length and the body, so any single
// corrupted byte of a frame is detected. Nothing proves who sent a frame but the
// proofs, HMAC-SHA-256 under the job's secret (which never travels), truncated to 16:
//   Challenge (root -> client, at accept): challenge[16]
//   Hello (client -> root): proof[16] | challenge[16] | u64 nonce | u32 rank |
//          u32 nranks | u32 timeoutMs | u32 remainingMs | u32 blobLen | blob |
//          u32 len | relay address (where it serves the table; empty: nowhere)
//          proof = HMAC(secret, "hello" label | root's challenge | body after the proof)
//   Table (root -> client): u64 nonce | u32 nranks | nranks x (u32 len | bytes)
//   Error (root -> client): u32 ftcclResult_t | u32 msgLen | msg
//   Proof (root -> client, after a Role or an Error): proof[16]
//          proof = HMAC(secret, "reply" label | root's challenge | client's challenge |
//                       SHA-256 of the reply frame)
//   Role (root -> client): u64 nonce | u32 nranks | u32 table frame bytes |
//          table frame SHA-256[32] | u32 children | u32 depth | u32 hop ms | i32 parent
//          rank (-1: the root) | u32 len | parent's relay address
//   Fetch (client -> parent or root, for the table): proof[16] | u64 nonce | u32 rank
//          proof = HMAC(secret, "fetch" label | the server's challenge | the table's
//                       SHA-256 | nonce | rank): only a rank of this rendezvous knows the
//                       digest, so a process of another job that holds the same secret
//                       (a reused FTCCL_COMM_ID) cannot fetch this one's table
// The table travels down a tree of ranks (relay.h): the root sends it whole to a few,
// and every rank its Role, whose proof covers the table's digest, so a table from a
// parent is as authentic as one from the root.
// A fresh challenge on each side per connection: a recorded hello or reply is worth
// nothing on another connection, and a process that does not hold the secret can
// neither join nor pose as the root.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "bootstrap/bootstrap.h"
#include "ftccl.h"
#include "util/status.h"

namespace ftccl {
namespace bootstrap {

// ---- limits (garbage guards) ---------------------------------------------------
constexpr size_t kMaxBlobBytes = size_t{1} << 20;           // one rank's blob
constexpr int kMaxRanks = 1 << 20;                          // nranks of one rendezvous
constexpr size_t kMaxTableBytes = size_t{1} << 30;          // the whole table body
constexpr size_t kMaxErrorMessageBytes = size_t{64} << 10;  // an error reply's text
constexpr int kMaxTimeoutMs = 86400000;
constexpr size_t kMaxRelayAddressBytes = 128;  // "[v6 address]:port" fits
constexpr uint32_t kMaxRelayDepth = 64;        // deeper ranks get the root's table
constexpr uint32_t kMaxRelayHopMs = 60000;

// ---- hashing -------------------------------------------------------------------
constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;
uint64_t fnv1a64(const void* data, size_t size, uint64_t hash = kFnvOffset);

// ---- unique id -------------------------------------------------------------------
constexpr uint32_t kUniqueIdMagic = 0x44494346u;  // "FCID" little-endian
constexpr uint16_t kUniqueIdVersion = 1;

// "host:port", "[v6addr]:port"; host non-empty, port 1..65535. Names are not resolved.
Status parseHostPort(const std::string& text, std::string* host, uint16_t* port);
// Exactly 32 hex digits (either case) -> 16 bytes.
Status parseSecretHex(const std::string& text, uint8_t secret[16]);
// The nonce every rank derives alike from FTCCL_COMM_ID's text and the secret.
uint64_t deriveCommIdNonce(const std::string& commIdText, const uint8_t secret[16]);
// FTCCL_COMM_SECRET's value that opts out of a secret (all-zero; a warning at init).
constexpr const char* kInsecureSecret = "insecure";
// Builds the FTCCL_COMM_ID id contents from the variables' values: an empty secretText is
// refused, kInsecureSecret gives the all-zero secret with *insecure true. Resolves a host
// name.
Status commIdContents(const std::string& commIdText, const std::string& secretText,
                      UniqueIdContents* contents, bool* insecure);

// ---- frames ------------------------------------------------------------------------
constexpr uint32_t kFrameMagic = 0x53425446u;  // "FTBS" little-endian
constexpr uint16_t kWireVersion = 3;  // 2: challenge-response; 3: the table relayed by ranks
constexpr size_t kFrameHeaderBytes = 20;

enum class FrameType : uint16_t {
  Hello = 1,
  Table = 2,
  Error = 3,
  Challenge = 4,
  Proof = 5,
  Role = 6,
  Fetch = 7
};
constexpr size_t kChallengeBytes = 16;
constexpr size_t kProofBytes = 16;

struct FrameHeader {
  uint16_t version = 0;
  FrameType type = FrameType::Hello;
  uint32_t length = 0;  // body bytes
  uint64_t checksum = 0;
};

struct Hello {
  uint8_t proof[kProofBytes] = {0};          // set by encodeHello
  uint8_t challenge[kChallengeBytes] = {0};  // the client's, for the root's proof
  uint64_t nonce = 0;
  int32_t rank = -1;
  int32_t nranks = 0;
  uint32_t timeoutMs = 0;    // the client's whole rendezvous timeout
  uint32_t remainingMs = 0;  // what was left of it when the hello was sent
  std::vector<uint8_t> blob;
  std::string relay;  // "host:port" of its relay listener, or empty
};

// Where a rank gets the table, and how many ranks get it from this one.
struct Role {
  uint64_t nonce = 0;
  uint32_t nranks = 0;
  uint32_t tableBytes = 0;                // the whole Table frame
  std::array<uint8_t, 32> tableDigest{};  // its SHA-256 (replyDigest)
  uint32_t children = 0;                  // Fetches this rank is to answer
  uint32_t depth = 0;                     // hops from the root's own children
  uint32_t hopMs = 0;                     // its wait per hop (relay.h)
  int32_t parent = -1;                    // -1: the table follows from the root
  std::string parentAddress;              // the parent's relay listener
};

// Largest acceptable body for a frame type.
size_t maxBodyBytes(FrameType type);

// Parses the first kFrameHeaderBytes of data: magic, version, known type, length cap.
// A version mismatch says so ("another ftccl version").
Status parseFrameHeader(const uint8_t* data, size_t size, FrameHeader* out);
// Checks the body against a parsed header (length, checksum).
Status checkFrameBody(const FrameHeader& header, const uint8_t* body, size_t size);

// Encoders return complete frames (header + body). They throw only std::bad_alloc.
std::vector<uint8_t> encodeChallenge(const uint8_t challenge[kChallengeBytes]);
// Computes the proof from the secret and the root's challenge.
std::vector<uint8_t> encodeHello(const Hello& hello, const uint8_t secret[16],
                                 const uint8_t rootChallenge[kChallengeBytes]);
// The root's proof that it holds the secret, for one reply (by its digest: a table sent
// to every rank is hashed once) on one connection.
std::array<uint8_t, 32> replyDigest(const std::vector<uint8_t>& replyFrame);
std::vector<uint8_t> encodeReplyProof(const uint8_t secret[16],
                                      const uint8_t rootChallenge[kChallengeBytes],
                                      const uint8_t clientChallenge[kChallengeBytes],
                                      const std::array<uint8_t, 32>& digest);
std::vector<uint8_t> encodeTable(uint64_t nonce, const std::vector<std::vector<uint8_t>>& blobs);
std::vector<uint8_t> encodeError(ftcclResult_t code, const std::string& message);
std::vector<uint8_t> encodeRole(const Role& role);
std::vector<uint8_t> encodeFetch(uint64_t nonce, int32_t rank, const uint8_t secret[16],
                                 const uint8_t serverChallenge[kChallengeBytes],
                                 const std::array<uint8_t, 32>& tableDigest);

// Body decoders (structure only: lengths and caps; the root checks the meaning).
Status decodeHelloBody(const uint8_t* body, size_t size, Hello* out);
Status decodeChallengeBody(const uint8_t* body, size_t size, uint8_t challenge[kChallengeBytes]);
// Whether a hello body's proof was made with `secret` for `rootChallenge` (constant time).
bool helloProven(const uint8_t* body, size_t size, const uint8_t secret[16],
                 const uint8_t rootChallenge[kChallengeBytes]);
// Whether a proof frame's body proves `replyFrame` for this connection (constant time).
bool replyProven(const uint8_t* proofBody, size_t size, const uint8_t secret[16],
                 const uint8_t rootChallenge[kChallengeBytes],
                 const uint8_t clientChallenge[kChallengeBytes],
                 const std::array<uint8_t, 32>& digest);
Status decodeTableBody(const uint8_t* body, size_t size, uint64_t* nonce,
                       std::vector<std::vector<uint8_t>>* blobs);
Status decodeErrorBody(const uint8_t* body, size_t size, ftcclResult_t* code, std::string* message);
Status decodeRoleBody(const uint8_t* body, size_t size, Role* out);
// Whether a Fetch body proves the secret and the table's digest for `serverChallenge`;
// its nonce and rank.
bool fetchProven(const uint8_t* body, size_t size, const uint8_t secret[16],
                 const uint8_t serverChallenge[kChallengeBytes],
                 const std::array<uint8_t, 32>& tableDigest, uint64_t* nonce, int32_t* rank);

// Whole-frame decoders: header, exact length, checksum, type, then body.
Status decodeHello(const std::vector<uint8_t>& frame, Hello* out);
Status decodeTable(const std::vector<uint8_t>& frame, uint64_t* nonce,
                   std::vector<std::vector<uint8_t>>* blobs);
Status decodeError(const std::vector<uint8_t>& frame, ftcclResult_t* code, std::string* message);

// "rank 2", "ranks 2,3", "ranks 0,4-9,12" (runs of 3+ as ranges; long lists elided).
std::string formatRankList(const std::vector<int>& ranks);

}  // namespace bootstrap
}  // namespace ftccl
