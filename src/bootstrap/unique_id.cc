// The 128-byte unique id and the FTCCL_COMM_ID / FTCCL_COMM_SECRET parsing.
//
// Layout (little-endian):
//   0  u32 magic 'FCID'        4  u16 format version   6  u8 flags (bit 0: rank 0 starts root)
//   7  u8 family (4 or 6)      8  u16 port            10  u16 reserved (0)
//  12  16 address bytes (IPv4: 4 bytes then zeros)    28  16 secret bytes
//  44  u64 nonce              52..119 zero            120 u64 FNV-1a 64 of bytes 0..119
// FNV-1a detects every single-byte change: each step is a bijection of the running hash.
#include <arpa/inet.h>

#include <cstring>

#include "bootstrap/bootstrap.h"
#include "bootstrap/wire.h"
#include "util/net/socket.h"

namespace ftccl {

namespace {

constexpr size_t kOffMagic = 0, kOffVersion = 4, kOffFlags = 6, kOffFamily = 7, kOffPort = 8,
                 kOffReserved = 10, kOffAddr = 12, kOffSecret = 28, kOffNonce = 44, kOffPad = 52,
                 kOffChecksum = 120;
constexpr uint8_t kFlagRankZeroStartsRoot = 1;

void put(uint8_t* p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t get(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

bool allZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

Status corrupted(const std::string& why) {
  return invalidArgument("corrupted unique id (" + why +
                         "); pass every rank the exact bytes ftcclGetUniqueId produced");
}

}  // namespace

void encodeUniqueId(const UniqueIdContents& contents, ftcclUniqueId* id) {
  uint8_t b[FTCCL_UNIQUE_ID_BYTES];
  std::memset(b, 0, sizeof(b));
  put(b + kOffMagic, bootstrap::kUniqueIdMagic, 4);
  put(b + kOffVersion, bootstrap::kUniqueIdVersion, 2);
  b[kOffFlags] = contents.rankZeroStartsRoot ? kFlagRankZeroStartsRoot : 0;
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, contents.rootHost.c_str(), &v4) == 1) {
    b[kOffFamily] = 4;
    std::memcpy(b + kOffAddr, &v4, 4);
  } else if (inet_pton(AF_INET6, contents.rootHost.c_str(), &v6) == 1) {
    b[kOffFamily] = 6;
    std::memcpy(b + kOffAddr, &v6, 16);
  } else {
    b[kOffFamily] = 0;  // not numeric: decode rejects the id
  }
  put(b + kOffPort, contents.rootPort, 2);
  std::memcpy(b + kOffSecret, contents.secret, 16);
  put(b + kOffNonce, contents.nonce, 8);
  put(b + kOffChecksum, bootstrap::fnv1a64(b, kOffChecksum), 8);
  std::memcpy(id->internal, b, sizeof(b));
}

namespace {
Status decodeUniqueIdImpl(const ftcclUniqueId& id, UniqueIdContents* contents);
}  // namespace

Status decodeUniqueId(const ftcclUniqueId& id, UniqueIdContents* contents) {
  if (contents == nullptr) return invalidArgument("decodeUniqueId: contents is NULL");
  try {
    return decodeUniqueIdImpl(id, contents);
  } catch (const std::exception&) {
    return systemError("out of memory while decoding the unique id");
  }
}

namespace {
Status decodeUniqueIdImpl(const ftcclUniqueId& id, UniqueIdContents* contents) {
  static_assert(sizeof(id.internal) == FTCCL_UNIQUE_ID_BYTES, "id size");
  const auto* b = reinterpret_cast<const uint8_t*>(id.internal);
  if (allZero(b, FTCCL_UNIQUE_ID_BYTES)) {
    return corrupted("all bytes are zero: was it filled by ftcclGetUniqueId?");
  }
  if (get(b + kOffMagic, 4) != bootstrap::kUniqueIdMagic) return corrupted("bad magic");
  const bool checksumOk = get(b + kOffChecksum, 8) == bootstrap::fnv1a64(b, kOffChecksum);
  const auto version = static_cast<unsigned>(get(b + kOffVersion, 2));
  if (version != bootstrap::kUniqueIdVersion) {
    if (checksumOk) {
      return invalidArgument("unique id from another ftccl version (id format " +
                             std::to_string(version) + ", this library reads format " +
                             std::to_string(bootstrap::kUniqueIdVersion) +
                             "): every rank must use the same ftccl version");
    }
    return corrupted("checksum mismatch; or a unique id from another ftccl version, format " +
                     std::to_string(version));
  }
  if (!checksumOk) return corrupted("checksum mismatch");
  if ((b[kOffFlags] & ~kFlagRankZeroStartsRoot) != 0) return corrupted("unknown flags");
  if (get(b + kOffReserved, 2) != 0 || !allZero(b + kOffPad, kOffChecksum - kOffPad)) {
    return corrupted("reserved bytes are not zero");
  }
  const uint16_t port = static_cast<uint16_t>(get(b + kOffPort, 2));
  if (port == 0) return corrupted("port 0");
  char text[INET6_ADDRSTRLEN] = {0};
  if (b[kOffFamily] == 4) {
    if (!allZero(b + kOffAddr + 4, 12)) return corrupted("IPv4 address padding is not zero");
    inet_ntop(AF_INET, b + kOffAddr, text, sizeof(text));
  } else if (b[kOffFamily] == 6) {
    inet_ntop(AF_INET6, b + kOffAddr, text, sizeof(text));
  } else {
    return corrupted("address family " + std::to_string(b[kOffFamily]));
  }
  UniqueIdContents c;
  c.rootHost = text;
  c.rootPort = port;
  std::memcpy(c.secret, b + kOffSecret, 16);
  c.nonce = get(b + kOffNonce, 8);
  c.rankZeroStartsRoot = (b[kOffFlags] & kFlagRankZeroStartsRoot) != 0;
  *contents = std::move(c);
  return Status::ok();
}
}  // namespace

namespace bootstrap {

Status parseHostPort(const std::string& text, std::string* host, uint16_t* port) {
  const std::string usage = "expected host:port, or [IPv6 address]:port";
  std::string h, p;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos || close == 1 || close + 1 >= text.size() ||
        text[close + 1] != ':') {
      return invalidArgument("'" + text + "': " + usage);
    }
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      return invalidArgument("'" + text + "': " + usage);
    }
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
    if (h.find(':') != std::string::npos) {
      return invalidArgument("'" + text + "': an IPv6 address needs brackets, [addr]:port");
    }
  }
  for (char c : h) {
    if (c == ' ' || c == '\t' || c == '[' || c == ']' || c == '/' || c == '\n') {
      return invalidArgument("'" + text + "': bad character in host '" + h + "'");
    }
  }
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) {
    return invalidArgument("'" + text + "': port '" + p + "' is not a number in 1..65535");
  }
  unsigned long value = std::stoul(p);  // at most 5 digits: cannot throw
  if (value < 1 || value > 65535) {
    return invalidArgument("'" + text + "': port " + p + " is not in 1..65535");
  }
  *host = h;
  *port = static_cast<uint16_t>(value);
  return Status::ok();
}

Status parseSecretHex(const std::string& text, uint8_t secret[16]) {
  // The value is a secret: describe what is wrong without echoing it.
  if (text.size() != 32) {
    return invalidArgument("FTCCL_COMM_SECRET must be exactly 32 hex digits (128 bits), got " +
                           std::to_string(text.size()) + " characters");
  }
  uint8_t out[16];
  for (size_t i = 0; i < 32; ++i) {
    char c = text[i];
    int v = (c >= '0' && c <= '9')   ? c - '0'
            : (c >= 'a' && c <= 'f') ? c - 'a' + 10
            : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                     : -1;
    if (v < 0) {
      return invalidArgument("FTCCL_COMM_SECRET must be exactly 32 hex digits: character " +
                             std::to_string(i + 1) + " is not a hex digit");
    }
    if (i % 2 == 0)
      out[i / 2] = static_cast<uint8_t>(v << 4);
    else
      out[i / 2] = static_cast<uint8_t>(out[i / 2] | v);
  }
  std::memcpy(secret, out, 16);
  return Status::ok();
}

uint64_t deriveCommIdNonce(const std::string& commIdText, const uint8_t secret[16]) {
  static const char kDomain[] = "ftccl FTCCL_COMM_ID nonce v1";
  uint64_t h = fnv1a64(kDomain, sizeof(kDomain) - 1);
  h = fnv1a64(commIdText.data(), commIdText.size(), h);
  h = fnv1a64(secret, 16, h);
  // splitmix64 finalizer: spread the bits.
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

Status commIdContents(const std::string& commIdText, const std::string& secretText,
                      UniqueIdContents* contents, bool* insecure) {
  std::string host;
  uint16_t port = 0;
  Status st = parseHostPort(commIdText, &host, &port);
  if (!st.isOk()) return invalidArgument("FTCCL_COMM_ID=" + st.message());
  net::SockAddr addr;
  st = net::resolveSockAddr(host, port, &addr);
  if (!st.isOk()) return invalidArgument("FTCCL_COMM_ID=" + commIdText + ": " + st.message());
  UniqueIdContents c;
  c.rootHost = addr.host();
  c.rootPort = port;
  c.rankZeroStartsRoot = true;
  // Without a secret anyone who reaches the address joins: refused, unless asked for
  // in so many words.
  if (secretText.empty()) {
    return invalidArgument(
        "FTCCL_COMM_ID=" + commIdText +
        " is set without FTCCL_COMM_SECRET: any process that reaches it could join the job. "
        "Set FTCCL_COMM_SECRET to the same 32 hex digits on every rank (for example the "
        "output of: od -An -N16 -tx1 /dev/urandom | tr -d ' \\n'), or to '" +
        std::string(kInsecureSecret) + "' to run without one");
  }
  *insecure = secretText == kInsecureSecret;
  if (!*insecure) FTCCL_CHECK(parseSecretHex(secretText, c.secret));
  c.nonce = deriveCommIdNonce(commIdText, c.secret);
  *contents = std::move(c);
  return Status::ok();
}

}  // namespace bootstrap
}  // namespace ftccl
