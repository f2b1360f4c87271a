// The health channel's wire format, pinned: one frame of each type encodes to the bytes
// the codec produced when one struct held every type's fields. Processes of both builds
// must understand each other, and the seal covers these bytes.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "health/health_messages.h"
#include "hex_bytes.h"

namespace ftccl {
namespace {

const OpProgress kInOp{0x1122334455667788ull, 7, 12, 11, true, 3, 5, 900, 42};
const OpProgress kIdle{0x99, 2, 4, 4, false, 1, 0, 10, 7};

struct Pinned {
  const char* name;
  HealthMessage message;
  const char* hex;  // from the one-struct codec
};

std::vector<Pinned> pinned() {
  return {
      {"hello",
       HealthHello{"10.0.0.1:7000", "node1", 4242, std::string(kConnectionNonceBytes, 'n')},
       "32000000010d00000031302e302e302e313a37303030050000006e6f64653192100000100000006e6e6e"
       "6e6e6e6e6e6e6e6e6e6e6e6e6e"},
      {"heartbeat", HealthHeartbeat{17, 123456789, {kInOp, kIdle}},
       "6d00000002110000000000000015cd5b0700000000028877665544332211070000000c00000000000000"
       "0b0000000000000001030500000084030000000000002a00000099000000000000000200000004000000"
       "0000000004000000000000000001000000000a0000000000000007000000"},
      {"ack", HealthAck{17, 123456789, 5000},
       "1800000003110000000000000015cd5b07000000008813000000000000"},
      {"failed", HealthFailed{0xABCDEF, 3, 2, "10.0.0.3:7000", 1, 12.5, 0},
       "2e00000004efcdab000000000003000000020000000d00000031302e302e302e333a3730303001000000"
       "000000294000000000"},
      {"leave", HealthLeave{0xABCDEF, 3, 1}, "1000000005efcdab00000000000300000001000000"},
      {"recovery", HealthRecovery{0xABCDEF, {7, 0, 0, 0, 9}},
       "1100000006efcdab0000000000050000000700000009"},
      {"progress query", HealthProgressQuery{0xABCDEF, 3}, "0c00000007efcdab000000000003000000"},
      {"progress", HealthProgress{kInOp},
       "2e000000088877665544332211070000000c000000000000000b00000000000000010305000000840300"
       "00000000002a000000"},
      {"attest", HealthAttest{}, "0000000009"},
  };
}

TEST(HealthWire, EachTypeKeepsTheBytesOfTheOneStructCodec) {
  const std::vector<Pinned> all = pinned();
  ASSERT_EQ(all.size(), std::variant_size_v<HealthBody>);
  for (const Pinned& p : all) {
    const std::vector<uint8_t> frame = encodeHealthMessage(p.message);
    EXPECT_EQ(hexOf(frame), p.hex) << p.name;
    const std::vector<uint8_t> bytes = bytesOf(p.hex);
    HealthMessage back;
    size_t used = 0;
    ASSERT_EQ(decodeHealthMessage(bytes.data(), bytes.size(), &back, &used), 1) << p.name;
    EXPECT_EQ(used, bytes.size()) << p.name;
    EXPECT_EQ(back.type(), p.message.type()) << p.name;
    EXPECT_EQ(back.body.index(), p.message.body.index()) << p.name;
    EXPECT_EQ(hexOf(encodeHealthMessage(back)), p.hex) << p.name;
  }
}

}  // namespace
}  // namespace ftccl
