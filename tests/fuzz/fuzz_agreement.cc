// Fuzz target: agreement messages (recovery/agreement.h). Each input is a sequence of
// messages from members and strangers, decoded and handed to a member's agreement, with
// failures and stalls in between: no crash, no undefined behaviour, and every message
// that decodes encodes to bytes that decode to the same message.
#include <cstdint>
#include <string>
#include <vector>

#include "recovery/agreement.h"

using namespace ftccl;

namespace {

struct CountingNetwork final : AgreementNetwork {
  void send(const Member&, const RecoveryMessage& m) override {
    ++sent;
    bytes += encodeRecoveryMessage(m).size();
  }
  size_t sent = 0, bytes = 0;
};

const char* const kSenders[] = {"p0", "p1", "p2", "p3", "s0", "stranger"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  setEpochSaltSource([] { return EpochSalt{}; });  // a run is a function of its input
  Membership m;
  m.ranks = {"p0", "p1", "p2", "p3"};
  m.spares = {"s0"};
  CountingNetwork net;
  Agreement agreement("p1", std::make_shared<const Membership>(m), /*shrinkWhenNoSpares=*/true,
                      &net, std::make_shared<EpochStore>());
  size_t at = 0;
  while (size - at >= 3) {
    const uint8_t op = data[at];
    const size_t left = size - at - 3;  // after this op's 3 bytes
    const size_t length = (size_t{data[at + 1]} << 8 | data[at + 2]) % (left + 1);
    at += 3;
    const Member from = kSenders[op % 6];
    if (op >= 0xF0) {
      agreement.onFailure(from);
    } else if (op >= 0xE0) {
      agreement.onStalled();
    } else {
      std::vector<uint8_t> frame(data + at, data + at + length);
      RecoveryMessage message;
      if (decodeRecoveryMessage(frame, &message)) {
        const std::vector<uint8_t> once = encodeRecoveryMessage(message);
        RecoveryMessage back;
        if (!decodeRecoveryMessage(once, &back) || encodeRecoveryMessage(back) != once) {
          __builtin_trap();
        }
        agreement.onMessage(from, message);
      }
      at += length;
    }
    (void)agreement.describeWait();
  }
  // What one input can make a member send is bounded by what it was sent.
  if (net.bytes > 64 * (size + 4096)) __builtin_trap();
  return 0;
}
