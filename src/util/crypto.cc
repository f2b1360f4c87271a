#include "util/crypto.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sys/random.h>

#include <cstring>

namespace ftccl {
namespace crypto {
namespace {

// OpenSSL frees its state at exit unless told not to; threads of ours (a bootstrap
// client woken by a root that stops at exit, the health thread) may still use it then.
bool initialized() {
  static const bool ok = OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr) == 1;
  return ok;
}

EVP_MAC* hmacAlgorithm() {
  static EVP_MAC* algorithm = initialized() ? EVP_MAC_fetch(nullptr, "HMAC", nullptr) : nullptr;
  return algorithm;
}

}  // namespace

struct MacKey::Ctx {
  EVP_MAC_CTX* keyed = nullptr;
};

MacKey::MacKey() = default;

MacKey::MacKey(const uint8_t* key, size_t size) {
  EVP_MAC* algorithm = hmacAlgorithm();
  if (algorithm == nullptr) return;
  EVP_MAC_CTX* keyed = EVP_MAC_CTX_new(algorithm);
  if (keyed == nullptr) return;
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(keyed, key, size, params) != 1) {
    EVP_MAC_CTX_free(keyed);
    return;
  }
  ctx_ = new Ctx{keyed};
}

MacKey::~MacKey() {
  if (ctx_ == nullptr) return;
  EVP_MAC_CTX_free(ctx_->keyed);
  delete ctx_;
}

MacKey::MacKey(MacKey&& other) noexcept : ctx_(other.ctx_) { other.ctx_ = nullptr; }

MacKey& MacKey::operator=(MacKey&& other) noexcept {
  if (this != &other) {
    this->~MacKey();
    ctx_ = other.ctx_;
    other.ctx_ = nullptr;
  }
  return *this;
}

// A copy of the keyed context per call: the key schedule is done once, and concurrent
// callers (the health thread, a communicator) never share a running hash.
static bool hmac(const EVP_MAC_CTX* keyed, std::initializer_list<Bytes> parts, uint8_t out[32]) {
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_dup(keyed);
  if (ctx == nullptr) return false;
  bool ok = true;
  for (const Bytes& p : parts) {
    ok = ok && EVP_MAC_update(ctx, static_cast<const unsigned char*>(p.data), p.size) == 1;
  }
  size_t length = 0;
  ok = ok && EVP_MAC_final(ctx, out, &length, 32) == 1 && length == 32;
  EVP_MAC_CTX_free(ctx);
  return ok;
}

Tag MacKey::tag(std::initializer_list<Bytes> parts) const {
  Tag tag{};
  uint8_t full[32];
  if (ctx_ != nullptr && hmac(ctx_->keyed, parts, full)) std::memcpy(tag.data(), full, kTagBytes);
  return tag;
}

bool MacKey::verify(std::initializer_list<Bytes> parts, const uint8_t* tag) const {
  uint8_t full[32];
  if (ctx_ == nullptr || !hmac(ctx_->keyed, parts, full)) return false;
  return equalConstantTime(full, tag, kTagBytes);
}

Key MacKey::derive(std::string_view label, std::initializer_list<Bytes> context) const {
  // HMAC(key, label | 0 | context...): the label's terminator keeps label and context
  // from sliding into each other.
  Key out{};
  if (ctx_ == nullptr) return out;
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_dup(ctx_->keyed);
  if (ctx == nullptr) return out;
  const uint8_t zero = 0;
  bool ok = EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(label.data()),
                           label.size()) == 1 &&
            EVP_MAC_update(ctx, &zero, 1) == 1;
  for (const Bytes& p : context) {
    ok = ok && EVP_MAC_update(ctx, static_cast<const unsigned char*>(p.data), p.size) == 1;
  }
  size_t length = 0;
  ok = ok && EVP_MAC_final(ctx, out.data(), &length, out.size()) == 1;
  EVP_MAC_CTX_free(ctx);
  if (!ok) out.fill(0);
  return out;
}

bool equalConstantTime(const uint8_t* a, const uint8_t* b, size_t size) {
  return CRYPTO_memcmp(a, b, size) == 0;
}

Digest sha256(const void* data, size_t size) {
  Digest out{};
  if (!initialized()) return out;
  unsigned int length = 0;
  EVP_Digest(data, size, out.data(), &length, EVP_sha256(), nullptr);
  return out;
}

uint64_t oneWayId(uint64_t value) {
  Digest digest = sha256(&value, sizeof(value));
  uint64_t id = 0;
  std::memcpy(&id, digest.data(), sizeof(id));
  return id;
}

Status randomBytes(void* data, size_t size) {
  auto* p = static_cast<uint8_t*>(data);
  size_t done = 0;
  while (done < size) {
    ssize_t n = getrandom(p + done, size - done, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return systemError(std::string("getrandom: ") + std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
  return Status::ok();
}

Key randomKey() {
  Key key{};
  if (!randomBytes(key.data(), key.size()).isOk()) std::abort();  // no entropy: nothing is safe
  return key;
}

constexpr size_t kNonceBytes = 12;

std::vector<uint8_t> seal(const Key& key, const std::vector<uint8_t>& plain,
                          std::string_view associated) {
  std::vector<uint8_t> out(kNonceBytes + plain.size() + kTagBytes);
  if (!initialized() || !randomBytes(out.data(), kNonceBytes).isOk()) return {};
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int n = 0;
  bool ok =
      ctx != nullptr &&
      EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.data(), out.data()) == 1 &&
      EVP_EncryptUpdate(ctx, nullptr, &n, reinterpret_cast<const unsigned char*>(associated.data()),
                        static_cast<int>(associated.size())) == 1 &&
      EVP_EncryptUpdate(ctx, out.data() + kNonceBytes, &n, plain.data(),
                        static_cast<int>(plain.size())) == 1 &&
      EVP_EncryptFinal_ex(ctx, out.data() + kNonceBytes + n, &n) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kTagBytes,
                          out.data() + kNonceBytes + plain.size()) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) return {};
  return out;
}

bool open(const Key& key, const uint8_t* sealed, size_t size, std::string_view associated,
          std::vector<uint8_t>* plain) {
  if (!initialized() || size < kNonceBytes + kTagBytes) return false;
  size_t length = size - kNonceBytes - kTagBytes;
  std::vector<uint8_t> out(length);
  uint8_t tag[kTagBytes];
  std::memcpy(tag, sealed + kNonceBytes + length, kTagBytes);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int n = 0;
  bool ok =
      ctx != nullptr &&
      EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.data(), sealed) == 1 &&
      EVP_DecryptUpdate(ctx, nullptr, &n, reinterpret_cast<const unsigned char*>(associated.data()),
                        static_cast<int>(associated.size())) == 1 &&
      EVP_DecryptUpdate(ctx, out.data(), &n, sealed + kNonceBytes, static_cast<int>(length)) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, kTagBytes, tag) == 1 &&
      EVP_DecryptFinal_ex(ctx, out.data() + n, &n) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) return false;
  *plain = std::move(out);
  return true;
}

}  // namespace crypto
}  // namespace ftccl
