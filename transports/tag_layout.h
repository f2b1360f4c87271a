// The one place where the wire tag of a message is laid out.
//
//  63     56 55            40 39                24 23  20 19                   0
// +---------+----------------+--------------------+------+----------------------+
// |  sig    |     epoch      |   op sequence      | chan |     source rank      |
// | 8 bits  |    16 bits     |     16 bits        | 4 b  |       20 bits        |
// +---------+----------------+--------------------+------+----------------------+
//
// - signature: a digest of the op's arguments that every rank must pass alike (count,
//   type, reduction, root, algorithm). Ranks that disagree post tags that never match,
//   even when every message happens to have the same length on both sides; the
//   receiver finds the stranded message by probing with this field masked out and
//   fails the op by name (UcxTransport::findMismatchedMessage). Send/Recv uses 0.
// - epoch: membership generation; receives are posted with the current epoch, so a
//   message of an old epoch never matches. It never wraps: a communicator that would
//   enter epoch kEpochs fails its rebuild (Communicator::applyCommit), because the
//   leftovers of old epochs (a failed op's messages) are not flushed: receiving one
//   from a dead sender is unsafe (UcxTransport::drainUnexpected), so they stay
//   unmatched until teardown.
// - op sequence: wraps at 65536. Ops on one communicator run in issue order and
//   each needs every rank, so no rank is ever 2^16 ops ahead of its peers.
// - channel: independent in-order lanes inside one op (ring slices in flight).
// - source rank: up to 1,048,576 ranks. Receives match it exactly.
// No communicator field: every communicator has a UCX worker of its own.
// Ordering: UCX matches messages of one sender with one tag in send order.
// 100k+ ranks fit; beyond 2^20 ranks this layout moves to active-message headers.
#pragma once

#include <cstdint>

namespace ftccl {

constexpr uint64_t tagField(uint64_t value, int bits, int shift) {
  return (value & ((1ull << bits) - 1)) << shift;
}

struct TagLayout {
  static constexpr int kRankBits = 20;
  static constexpr int kChannelBits = 4;
  static constexpr int kSeqBits = 16;
  static constexpr int kEpochBits = 16;
  static constexpr int kSignatureBits = 8;

  static constexpr int kRankShift = 0;
  static constexpr int kChannelShift = kRankShift + kRankBits;
  static constexpr int kSeqShift = kChannelShift + kChannelBits;
  static constexpr int kEpochShift = kSeqShift + kSeqBits;
  static constexpr int kSignatureShift = kEpochShift + kEpochBits;
  static_assert(kSignatureShift + kSignatureBits == 64, "the tag must use exactly 64 bits");

  static constexpr uint64_t kMaxRanks = 1ull << kRankBits;
  static constexpr uint32_t kChannels = 1u << kChannelBits;
  static constexpr uint64_t kEpochs = 1ull << kEpochBits;

  static constexpr uint64_t make(uint64_t signature, uint64_t epoch, uint64_t seq, uint64_t channel,
                                 uint64_t srcRank) {
    return tagField(signature, kSignatureBits, kSignatureShift) |
           tagField(epoch, kEpochBits, kEpochShift) | tagField(seq, kSeqBits, kSeqShift) |
           tagField(channel, kChannelBits, kChannelShift) |
           tagField(srcRank, kRankBits, kRankShift);
  }
  // Receives match every bit: one exact sender, op, channel, epoch and signature.
  static constexpr uint64_t kFullMask = ~0ull;
  // Every field but the signature: the same sender, op and channel with any arguments.
  static constexpr uint64_t kAnySignatureMask = ~tagField(~0ull, kSignatureBits, kSignatureShift);
  // Every message of one epoch (drained at teardown).
  static constexpr uint64_t kEpochMask = tagField(~0ull, kEpochBits, kEpochShift);

  static constexpr uint32_t rankOf(uint64_t tag) {
    return static_cast<uint32_t>((tag >> kRankShift) & ((1ull << kRankBits) - 1));
  }
  static constexpr uint32_t seqOf(uint64_t tag) {
    return static_cast<uint32_t>((tag >> kSeqShift) & ((1ull << kSeqBits) - 1));
  }
  static constexpr uint32_t epochOf(uint64_t tag) {
    return static_cast<uint32_t>((tag >> kEpochShift) & ((1ull << kEpochBits) - 1));
  }
  static constexpr uint32_t channelOf(uint64_t tag) {
    return static_cast<uint32_t>((tag >> kChannelShift) & ((1ull << kChannelBits) - 1));
  }
  static constexpr uint32_t signatureOf(uint64_t tag) {
    return static_cast<uint32_t>((tag >> kSignatureShift) & ((1ull << kSignatureBits) - 1));
  }
};

}  // namespace ftccl
