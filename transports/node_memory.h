// What an algorithm sees of the shared memory of its node for one epoch (issue 26): the
// data slots of every local rank and their "ready" and "done" sequence flags. The
// implementation (transports/shm/node_arena.h) maps a NodeSegment; the algorithms see
// only this interface, so they keep including no concrete transport.
//
// Ranks here are LOCAL ranks, 0..localSize()-1 on this node; the caller maps them to
// communicator ranks. Flags are 32-bit sequence numbers compared modulo 2^32 (a flag
// "reaches" seq when it is at or past it); every flag starts at 0. Each rank publishes
// only its own flags; anyone may read anyone's.
//
// The contract every shared-memory collective keeps (docs/shared-memory.md), so that
// collectives of any kind may follow one another over one memory:
//  - Sequences. An op uses consecutive sequences, one per chunk, taken from a counter
//    the caller keeps (1, 2, 3, ... with no gaps, the same on every local rank: the
//    number an op takes depends only on what every rank passes alike). The chunk with
//    sequence t uses slot t % slotsPerRank() of every rank; slotsPerRank() >= 2, a power
//    of two (so t % slotsPerRank() stays in step across the wrap of t).
//  - ready(r) >= t: rank r's slot for t holds whatever r contributes to chunk t, and r
//    has finished every read of any slot for sequences before t. Every rank publishes
//    ready = t for every t, contributing or not.
//  - A rank completes chunk t only after it has seen every rank's ready reach t.
//  Together: a rank that completed t - 1 may overwrite its slot for t at once (every
//  peer has finished reading it for t - 2, the last sequence that used it), with no
//  wait of its own. done(r) >= t is the collective's second phase of chunk t on rank r
//  (e.g. "r's reduced slice is in its slot"), or just "r has finished reading".
#pragma once

#include <time.h>

#include <cstddef>
#include <cstdint>

#include "util/status.h"

namespace ftccl {

// CLOCK_MONOTONIC in ns, one clock for every process of a node: what a rank stamps when
// it publishes a buffer for single copy (readPeer's aliveAtNs).
inline int64_t nodeClockNs() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
}

class NodeMemory {
 public:
  virtual ~NodeMemory() = default;

  /// This process's local rank.
  virtual int localRank() const = 0;
  /// Ranks sharing the memory (on this node, in this epoch).
  virtual int localSize() const = 0;
  /// Bytes of one data slot (each starts on a cache line).
  virtual size_t slotBytes() const = 0;
  /// Data slots of each rank (double buffering with 2).
  virtual int slotsPerRank() const = 0;
  /// Slot `index` (0..slotsPerRank()-1) of `localRank`: read anyone's, write only one's own.
  virtual uint8_t* slot(int localRank, int index) const = 0;

  /// What one op is, as a rank saw it when it called it. Nothing travels between the
  /// ranks that would carry the op's signature (as the transport's tags do), so each rank
  /// publishes this with its slot and every peer compares it: ranks that called one op
  /// differently all fail instead of reducing each other's unrelated bytes. Each slot has
  /// its own, kept like the slot's data: a peer may already describe op seq + 1 while a
  /// slower rank checks op seq, but rewrites the one of seq only for seq + 2 at the earliest,
  /// once every rank published ready seq + 1 (the contract above). Signature, type, op and root
  /// may be narrowed to 8 or 16 bits (all ranks alike).
  struct OpDescriptor {
    uint64_t count = 0;
    uint32_t seq = 0, opSeq = 0, signature = 0, type = 0, op = 0, root = 0;
    bool operator==(const OpDescriptor& o) const {
      return count == o.count && seq == o.seq && opSeq == o.opSeq && signature == o.signature &&
             type == o.type && op == o.op && root == o.root;
    }
    bool operator!=(const OpDescriptor& o) const { return !(*this == o); }
  };
  /// Writes this rank's descriptor of the op that uses its slot `index` (before
  /// publishReady, which releases it).
  virtual void describe(int index, const OpDescriptor& descriptor) = 0;
  /// `localRank`'s descriptor for its slot `index` (read after readyReached).
  virtual OpDescriptor descriptor(int localRank, int index) const = 0;

  /// Small messages, the latency path: up to kLineMessageBytes bytes travel with the
  /// op's descriptor in lines that carry the sequence next to the bytes, one set per slot
  /// parity, kept like a slot (the contract above: lines of sequence t are rewritten for
  /// t + 2 at the earliest). A reader that sees them at t has the bytes and the
  /// descriptor, one cache line crossing per 56 bytes, all at once, where a flag then a
  /// slot cost two crossings one after the other on each side. publishReady still follows
  /// (sleepers wait on the ready flag; the contract's promise holds for the lines too).
  static constexpr size_t kLineMessageBytes = 200;
  /// Writes `descriptor` and `bytes` (<= kLineMessageBytes) of `data` into this rank's
  /// lines for slot `index`, each line released with sequence descriptor.seq.
  virtual void writeLines(int index, const OpDescriptor& descriptor, const void* data,
                          size_t bytes) = 0;
  /// Whether every line of `localRank`'s message of `bytes` for slot `index` is at or
  /// past `seq` (acquire). Never blocks.
  virtual bool linesReached(int localRank, int index, uint32_t seq, size_t bytes) const = 0;
  /// `localRank`'s descriptor and bytes from its lines for slot `index` (after linesReached).
  virtual OpDescriptor lineDescriptor(int localRank, int index) const = 0;
  virtual void readLines(int localRank, int index, void* out, size_t bytes) const = 0;

  /// Stores `seq` into this rank's "ready" flag (its data for op `seq` is in its slot),
  /// releasing every write made before; wakes sleepers.
  virtual void publishReady(uint32_t seq) = 0;
  /// Whether `localRank`'s "ready" flag is at or past `seq` (acquire). Never blocks.
  virtual bool readyReached(int localRank, uint32_t seq) const = 0;
  /// Stores `seq` into this rank's "done" flag (it has finished reading its peers'
  /// slots for op `seq`), releasing those reads; wakes sleepers.
  virtual void publishDone(uint32_t seq) = 0;
  /// The same for a sequence no peer waits on: a release store, no sleeper woken.
  virtual void publishDoneUnwaited(uint32_t seq) = 0;
  /// Whether `localRank`'s "done" flag is at or past `seq` (acquire). Never blocks.
  virtual bool doneReached(int localRank, uint32_t seq) const = 0;
  /// Sleeps until `localRank`'s "ready" flag reaches `seq` or `timeoutUs` microseconds
  /// pass (a signal or a spurious wake-up ends it early); returns readyReached(). For the
  /// op driver between progress() calls: it must loop, checking revocation and the op
  /// timeout, since a dead peer's flag never advances.
  virtual bool sleepUntilReady(int localRank, uint32_t seq, int timeoutUs) const = 0;
  /// The same for `localRank`'s "done" flag.
  virtual bool sleepUntilDone(int localRank, uint32_t seq, int timeoutUs) const = 0;

  /// Single copy, for large messages: whether readPeer() works towards every local rank.
  /// Agreed by all ranks when the memory is set up, so that all take the same path.
  virtual bool singleCopy() const { return false; }
  /// Copies `bytes` at `address` in `localRank`'s process (an address it published in its
  /// slot) into `out`. An error when the kernel refuses, the range is not mapped there, or
  /// `localRank` exited (its pid may since name another process: the bytes are not used).
  /// The owner must keep those bytes unchanged until it sees the reader's done flag; an
  /// owner whose op ends first (aborted) publishes its own done as it leaves (or, where
  /// its done means "finished reading" too, marks what it published released: the
  /// all-gather's and reduce-scatter's PublishedBuffer), and a reader that sees it after
  /// its read must not use what it read. `aliveAtNs`: when the owner was last known alive
  /// (PeerReader::read), -1 if not known.
  virtual Status readPeer(int /*localRank*/, uint64_t /*address*/, void* /*out*/, size_t /*bytes*/,
                          int64_t /*aliveAtNs*/ = -1) const {
    return invalidUsage("this node memory has no single copy");
  }
};

}  // namespace ftccl
