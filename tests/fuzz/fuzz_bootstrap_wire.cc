// Fuzz target: what the bootstrap root and its clients parse from the network before
// anything is proven (bootstrap/wire.h): frame headers, every frame body (the relay's
// Role and Fetch too), the proofs,
// and the text forms of FTCCL_COMM_ID and FTCCL_COMM_SECRET.
#include <cstdint>
#include <string>
#include <vector>

#include "bootstrap/wire.h"

using namespace ftccl;
using namespace ftccl::bootstrap;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const uint8_t kSecret[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  static const uint8_t kChallenge[kChallengeBytes] = {7};
  std::vector<uint8_t> frame(data, data + size);
  FrameHeader header;
  if (parseFrameHeader(data, size, &header).isOk()) {
    // A whole frame: the decoders as the root and the clients call them.
    Hello hello;
    uint64_t nonce = 0;
    std::vector<std::vector<uint8_t>> blobs;
    ftcclResult_t code = ftcclSuccess;
    std::string message;
    (void)decodeHello(frame, &hello);
    (void)decodeTable(frame, &nonce, &blobs);
    (void)decodeError(frame, &code, &message);
  }
  // Each body on its own (the checksum keeps most mutations of a whole frame out).
  Hello hello;
  if (decodeHelloBody(data, size, &hello).isOk() && hello.blob.size() > kMaxBlobBytes) {
    __builtin_trap();  // the cap is the decoder's promise
  }
  (void)helloProven(data, size, kSecret, kChallenge);
  uint8_t challenge[kChallengeBytes];
  (void)decodeChallengeBody(data, size, challenge);
  uint64_t nonce = 0;
  std::vector<std::vector<uint8_t>> blobs;
  if (decodeTableBody(data, size, &nonce, &blobs).isOk()) {
    size_t total = 0;
    for (const auto& b : blobs) total += b.size();
    if (total > size) __builtin_trap();  // nothing decoded is larger than what came
  }
  ftcclResult_t code = ftcclSuccess;
  std::string message;
  (void)decodeErrorBody(data, size, &code, &message);
  Role role;
  if (decodeRoleBody(data, size, &role).isOk() &&
      (role.parentAddress.size() > kMaxRelayAddressBytes || role.parent < -1)) {
    __builtin_trap();
  }
  int32_t rank = 0;
  (void)fetchProven(data, size, kSecret, kChallenge, replyDigest(frame), &nonce, &rank);
  (void)replyProven(data, size, kSecret, kChallenge, kChallenge, replyDigest(frame));
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::string host;
  uint16_t port = 0;
  (void)parseHostPort(text, &host, &port);
  uint8_t secret[16];
  (void)parseSecretHex(text, secret);
  return 0;
}
