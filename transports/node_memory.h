// What an algorithm sees of the shared memory of its node for one epoch (issue 26): the
// data slots of every local rank and their "ready" and "done" sequence flags. The
// implementation (transports/shm/node_arena.h) maps a NodeSegment; the algorithms see
// only this interface, so they keep including no concrete transport.
//
// Ranks here are LOCAL ranks, 0..localSize()-1 on this node; the caller maps them to
// communicator ranks. Flags are 32-bit sequence numbers compared modulo 2^32 (a flag
// "reaches" seq when it is at or past it); every flag starts at 0, so the ops over one
// memory number their sequences 1, 2, 3, ... with no gaps. Each rank publishes only its
// own flags; anyone may read anyone's.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ftccl {

class NodeMemory {
 public:
  virtual ~NodeMemory() = default;

  /// This process's local rank.
  virtual int localRank() const = 0;
  /// Ranks sharing the memory (on this node, in this epoch).
  virtual int localSize() const = 0;
  /// Bytes of one data slot (a multiple of 4 KiB; every slot starts on a page).
  virtual size_t slotBytes() const = 0;
  /// Data slots of each rank (double buffering with 2).
  virtual int slotsPerRank() const = 0;
  /// Slot `index` (0..slotsPerRank()-1) of `localRank`: read anyone's, write only one's own.
  virtual uint8_t* slot(int localRank, int index) const = 0;

  /// Stores `seq` into this rank's "ready" flag (its data for op `seq` is in its slot),
  /// releasing every write made before; wakes sleepers.
  virtual void publishReady(uint32_t seq) = 0;
  /// Whether `localRank`'s "ready" flag is at or past `seq` (acquire). Never blocks.
  virtual bool readyReached(int localRank, uint32_t seq) const = 0;
  /// Stores `seq` into this rank's "done" flag (it has finished reading its peers'
  /// slots for op `seq`), releasing those reads; wakes sleepers.
  virtual void publishDone(uint32_t seq) = 0;
  /// Whether `localRank`'s "done" flag is at or past `seq` (acquire). Never blocks.
  virtual bool doneReached(int localRank, uint32_t seq) const = 0;
  /// Sleeps until `localRank`'s "ready" flag reaches `seq` or `timeoutUs` microseconds
  /// pass (a signal or a spurious wake-up ends it early); returns readyReached(). For the
  /// op driver between progress() calls: it must loop, checking revocation and the op
  /// timeout, since a dead peer's flag never advances.
  virtual bool sleepUntilReady(int localRank, uint32_t seq, int timeoutUs) const = 0;
};

}  // namespace ftccl
