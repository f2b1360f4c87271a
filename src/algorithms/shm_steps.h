// The steps every shared-memory collective takes per chunk (shm_*.cc), over the flags
// and slots of transports/node_memory.h, keeping its contract once for all of them:
//
//   contribute   write this rank's part of chunk t into its slot t % k (it may: having
//                completed t - 1 it saw every ready reach t - 1, so nobody reads that
//                slot for t - k any more), describe the op there, publish ready = t;
//                every rank does, contributing or not;
//   copyLocal    what needs no peer (the root's own output), while peers catch up;
//   readPeers    once every rank's ready reached t and every rank's description of the
//                op matches this rank's (ranks that called it differently all fail):
//                read the slots (reduce, copy out). This rank's slot for t + 1 is free
//                to write by then (every peer has finished reading older sequences), as
//                scratch for instance. It may end the chunk there, or ask for
//   collect(r)   for each other rank r once r's done reached t (r published it early:
//                "my reduced slice is in my slot"; copy it out); then
//   finish       publish done = t ("finished reading": every flag advances every
//                chunk, so none lags 2^31 behind and reads as ahead), next chunk.
//
// A collective is then only the data movement of those hooks. Ranks in here are LOCAL
// ranks of the memory's node; the root is one (on a communicator of one node, local
// rank = communicator rank; the hierarchical all-reduce maps them).
// Never blocks: progress() checks flags and returns; waitForPeers() sleeps on the flag
// of the first rank it waits for. abort() only stops: what this rank published stays,
// and a peer waiting on it is revoked by health (but a rank whose buffer peers read
// directly publishes done as it leaves: releaseOnAbort()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "algorithms/collective.h"
#include "transports/node_memory.h"

namespace ftccl {

// A buffer a rank lets its peers read straight from its process (single copy,
// NodeMemory::readPeer), described in its slot for the op.
struct PublishedBuffer {
  uint64_t address;
  uint64_t bytes;
  int64_t aliveAtNs;  // the owner ran then (the reader's pid check: PeerReader::read)
  // Set by an owner whose op ended before its readers finished, where its done flag
  // cannot say so because it also means "finished reading" (all-gather, reduce-scatter).
  uint32_t released;
};

class ShmCollective : public Collective {
 public:
  Status progress(bool* done) final;
  void abort() final;
  // LOCAL ranks (0..localSize-1): the memory does not know the communicator's numbering.
  std::vector<int> pendingPeers() const final;
  uint64_t progressMark() const final { return mark_; }
  bool waitForPeers(int timeoutUs) final;  // not const: a wait with a timeout ends the spin

 protected:
  ShmCollective(NodeMemory& memory, const CollectiveArgs& args, CollectiveKind kind);

  // Takes the op's sequences from *nextSeq: one per chunk of `chunkElems` elements (at
  // least one, for count 0 too), so the number depends only on what every rank passes
  // alike. A chunk must carry an element: 0 with a count is refused in progress().
  void plan(size_t chunkElems, uint32_t* nextSeq);

  // An op of one chunk whose `bytes` (<= NodeMemory::kLineMessageBytes) from `data` are
  // all this rank contributes may travel in lines (the latency path, node_memory.h):
  // called from the constructor, after plan(). contribute() is then not called; readPeers()
  // gets each rank's bytes with readLinesOf().
  void sendInLines(const void* data, size_t bytes);
  bool inLines() const { return inLines_; }
  void readLinesOf(int rank, void* out) const;

  // What this rank does with chunk chunk_ (sequence seq_) at each step (above).
  virtual void contribute() = 0;
  virtual void copyLocal() {}
  // true: a second phase follows (done published). A read that fails calls fail().
  virtual bool readPeers() = 0;
  // By default: `rank`'s reduced slice of the chunk (slice(), by chunkCount()) from its
  // slot into the output, the second phase of the pipelined all-reduce and split reduce.
  virtual void collect(int rank);

  int me() const { return me_; }
  int ranks() const { return ranks_; }
  int slotIndex() const { return slotIndexOf(seq_); }
  int slotIndexOf(uint32_t seq) const {
    return static_cast<int>(seq & slotMask_);  // slotsPerRank is a power of two
  }
  uint8_t* slotOf(int rank) const { return memory_.slot(rank, slotIndex()); }
  // Elements of one slot (0 for an invalid type).
  size_t slotElems() const { return elemSize_ ? memory_.slotBytes() / elemSize_ : 0; }
  // Elements [chunkFirst(), chunkFirst() + chunkCount()) of a part travel in this chunk.
  size_t chunkFirst() const { return chunk_ * chunkElems_; }
  size_t chunkCount() const;
  // Slice r of `total` elements split n ways on cache lines: [*first, *first + *count).
  void slice(int r, size_t total, size_t* first, size_t* count) const;
  // Elements per block when a slot is cut into `blocks`, each on a cache line if it can.
  size_t blockElems(int blocks) const;

  uint8_t* at(void* base, size_t element) const {
    return static_cast<uint8_t*>(base) + element * elemSize_;
  }
  const uint8_t* at(const void* base, size_t element) const {
    return static_cast<const uint8_t*>(base) + element * elemSize_;
  }
  // memcpy of `count` elements (nothing for 0: a null buffer may come with count 0).
  void copy(void* dst, const void* src, size_t count) const;
  // The same into the op's output, with stores that bypass the cache once
  // streamOutput() was called (an output far larger than the cache).
  void copyOut(void* dst, const void* src, size_t count) const;
  void streamOutput() { streamOutput_ = true; }
  // out = slot 0 (op) slot 1 (op) ... over elements [first, first + count) of every
  // rank's slot for this chunk, in local rank order, so every rank that reduces an
  // element gets the same bits; Avg divides the finished sum by the local size once.
  // `out` must not overlap any part read but may be anywhere else. With `mine`, this
  // rank's part is read from there (`count` elements) instead of from its slot.
  void reduceSlots(void* out, size_t first, size_t count, const void* mine = nullptr) const;
  // The same over every rank's line message of `count` elements (sendInLines).
  void reduceLines(void* out, size_t count) const;
  // Ends the op with `why` once the hook that calls it returns (readPeers).
  void fail(Status why) { failure_ = std::move(why); }
  // From readPeers: call it again at the next progress() (a read in pieces), the op's
  // progress mark advanced.
  void readAgain() { again_ = true; }
  // Single copy (NodeMemory::readPeer), one sequence for the op: publishBuffer() puts
  // `bytes` at `data` in this rank's slot for its peers to read (from contribute());
  // readPublished() reads `bytes` at `offset` of `owner`'s, which must have published
  // `total`, and fails, the bytes not to be used, if the owner released it meanwhile.
  // An owner must not return while peers may read: with releaseOnAbort(), abort()
  // releases the buffer by publishing done (a broadcast's root, whose done means
  // nothing else); with releaseByMark(), where done already means "finished reading
  // yours" (every rank reads and is read), by marking its PublishedBuffer released.
  void publishBuffer(const void* data, size_t bytes);
  Status readPublished(int owner, size_t total, size_t offset, void* out, size_t bytes) const;
  void releaseOnAbort() { releaseOnAbort_ = true; }
  void releaseByMark() { releaseOnAbort_ = releaseByMark_ = true; }
  // A single-copy reader reads a piece per progress() call (between them the driver
  // sees revocation and the op's progress mark moves): after each, whether more of
  // `total` remains (readAgain() asked). readBytes(): what came so far.
  bool morePieces(size_t piece, size_t total) {
    readBytes_ += piece;
    if (readBytes_ >= total) return false;
    readAgain();
    return true;
  }
  size_t readBytes() const { return readBytes_; }
  // The end of a read of every peer's buffer (all-gather, reduce-scatter): done says
  // "finished reading yours", and true has the steps wait for every other rank's.
  bool finishedReading() {
    memory_.publishDone(seq_);
    return true;
  }

  NodeMemory& memory_;
  // The memory's shape, asked once: a virtual call each time cost a small op ~2%.
  const int me_, ranks_;
  const uint32_t slotMask_;
  const CollectiveArgs args_;
  const CollectiveKind kind_;
  const size_t elemSize_;
  size_t chunkElems_ = 0;
  size_t chunks_ = 1;
  size_t chunk_ = 0;  // the chunk in progress
  uint32_t seq_ = 0;  // its sequence

 private:
  enum class Stage { kContribute, kReady, kDone, kAborted };

  Status checkArgs() const;
  NodeMemory::OpDescriptor mine() const;
  Status checkPeersAgree();
  bool waitedReached(int rank) const;
  bool allReached(bool collecting);
  void finishChunk();
  void releasePublished();

  Status failure_;
  bool again_ = false;
  bool checked_ = false;
  bool releaseOnAbort_ = false;
  bool releaseByMark_ = false;
  size_t readBytes_ = 0;  // of what this rank reads by single copy (morePieces)
  bool streamOutput_ = false;
  bool inLines_ = false;
  bool lookAtReady_ = false;        // the spin is over: in lines, look at ready flags too
  mutable uint32_t lineLooks_ = 0;  // looks at lines not yet reached (waitedReached)
  const void* lineData_ = nullptr;
  size_t lineBytes_ = 0;
  Stage stage_ = Stage::kContribute;
  int cursor_ = 0;  // the first rank whose flag is not yet seen at the wanted sequence
  uint64_t mark_ = 0;
};

}  // namespace ftccl
