// The few cryptographic primitives ftccl uses, all from OpenSSL's libcrypto (no
// home-made cryptography): HMAC-SHA-256 (truncated to 128 bits) to authenticate
// frames, SHA-256 for one-way ids, AES-256-GCM to hand a key to a newcomer, and the
// kernel's random numbers.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace ftccl {
namespace crypto {

constexpr size_t kTagBytes = 16;  // a truncated HMAC-SHA-256: 2^-128 to forge one
using Tag = std::array<uint8_t, kTagBytes>;
using Key = std::array<uint8_t, 32>;
using Digest = std::array<uint8_t, 32>;

struct Bytes {
  const void* data;
  size_t size;
};

// HMAC-SHA-256 under one key, kept ready so that each tag costs no key setup.
class MacKey {
 public:
  MacKey();
  explicit MacKey(const Key& key) : MacKey(key.data(), key.size()) {}
  MacKey(const uint8_t* key, size_t size);
  ~MacKey();
  MacKey(MacKey&&) noexcept;
  MacKey& operator=(MacKey&&) noexcept;
  MacKey(const MacKey&) = delete;
  MacKey& operator=(const MacKey&) = delete;

  bool valid() const { return ctx_ != nullptr; }
  // The tag of the concatenation of `parts`; all zero when the key is not valid.
  Tag tag(std::initializer_list<Bytes> parts) const;
  // Constant time: whether `tag` is the tag of `parts`.
  bool verify(std::initializer_list<Bytes> parts, const uint8_t* tag) const;
  // The full 256-bit HMAC: a key derived from this one (label and context bound in).
  Key derive(std::string_view label, std::initializer_list<Bytes> context) const;

 private:
  struct Ctx;
  Ctx* ctx_ = nullptr;
};

bool equalConstantTime(const uint8_t* a, const uint8_t* b, size_t size);
Digest sha256(const void* data, size_t size);
// The first 8 bytes of SHA-256(value): an id that names a value without revealing it.
uint64_t oneWayId(uint64_t value);
Status randomBytes(void* data, size_t size);
Key randomKey();

// AES-256-GCM with a random 96-bit nonce: nonce | ciphertext | 128-bit tag. `open`
// returns false for anything not sealed under `key` with the same associated data.
std::vector<uint8_t> seal(const Key& key, const std::vector<uint8_t>& plain,
                          std::string_view associated);
bool open(const Key& key, const uint8_t* sealed, size_t size, std::string_view associated,
          std::vector<uint8_t>* plain);

}  // namespace crypto
}  // namespace ftccl
