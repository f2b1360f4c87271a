#include "algorithms/shm_steps.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

#include "reduce/reduce.h"

namespace ftccl {
namespace {

// Slices and blocks start on cache lines, so two ranks never write one line.
constexpr size_t kLineBytes = 64;

const char* const kNames[kCollectiveKinds] = {"all-reduce", "broadcast", "reduce", "all-gather",
                                              "reduce-scatter"};

bool reduces(CollectiveKind kind) {
  return kind != CollectiveKind::kBroadcast && kind != CollectiveKind::kAllGather;
}
bool rooted(CollectiveKind kind) {
  return kind == CollectiveKind::kBroadcast || kind == CollectiveKind::kReduce;
}

// The descriptor's op is the collective (above 8 bits) and its reduction op (0 where it
// reduces nothing), so ranks that call different collectives fail as well, whatever
// the signature; an all-reduce's is its reduction op alone.
uint32_t describedOp(CollectiveKind kind, ftcclRedOp_t op) {
  return static_cast<uint32_t>(kind) << 8 | (reduces(kind) ? static_cast<uint32_t>(op) : 0);
}

std::string what(const NodeMemory::OpDescriptor& d) {
  uint32_t kind = d.op >> 8;
  return std::string(kind < kCollectiveKinds ? kNames[kind] : "unknown collective") + " (op " +
         std::to_string(d.opSeq) + ", sequence " + std::to_string(d.seq) + ") of " +
         std::to_string(d.count) + " elements, type " + std::to_string(d.type) + ", op " +
         std::to_string(d.op & 0xff) + ", root " + std::to_string(d.root) + ", signature " +
         std::to_string(d.signature);
}

}  // namespace

ShmCollective::ShmCollective(NodeMemory& memory, const CollectiveArgs& args, CollectiveKind kind)
    : memory_(memory),
      me_(memory.localRank()),
      ranks_(memory.localSize()),
      slotMask_(static_cast<uint32_t>(std::max(1, memory.slotsPerRank())) - 1),
      args_(args),
      kind_(kind),
      elemSize_(dataTypeSize(args.type)) {}

void ShmCollective::plan(size_t chunkElems, uint32_t* nextSeq) {
  chunkElems_ = chunkElems;
  chunks_ = chunkElems ? std::max<size_t>(1, (args_.count + chunkElems - 1) / chunkElems) : 1;
  seq_ = *nextSeq;
  *nextSeq += static_cast<uint32_t>(chunks_);
}

Status ShmCollective::progress(bool* done) {
  *done = false;
  if (stage_ == Stage::kAborted) return Status::ok();
  if (!checked_) {
    FTCCL_CHECK(checkArgs());
    checked_ = true;
  }
  while (chunk_ < chunks_) {
    if (stage_ == Stage::kContribute) {
      // Described where the ranks that called the op alike look: in line 0 with the
      // bytes, or in the ready line with the slots (checkPeersAgree finds either).
      if (inLines_) {
        memory_.writeLines(slotIndex(), mine(), lineData_, lineBytes_);
      } else {
        contribute();
        memory_.describe(slotIndex(), mine());
      }
      memory_.publishReady(seq_);
      ++mark_;
      copyLocal();
      stage_ = Stage::kReady;
      cursor_ = 0;
    }
    if (stage_ == Stage::kReady) {
      if (!allReached(false)) return Status::ok();
      FTCCL_CHECK(checkPeersAgree());
      const bool secondPhase = readPeers();
      if (!failure_.isOk()) {
        releasePublished();
        stage_ = Stage::kAborted;
        return failure_;
      }
      if (again_) {  // every flag it waited for stays seen: the next call reads on
        again_ = false;
        ++mark_;
        return Status::ok();
      }
      if (!secondPhase) {
        finishChunk();
        continue;
      }
      ++mark_;
      stage_ = Stage::kDone;
      cursor_ = 0;
    }
    if (stage_ == Stage::kDone) {
      if (!allReached(true)) return Status::ok();
      finishChunk();
    }
  }
  *done = true;
  return Status::ok();
}

void ShmCollective::abort() {
  if (chunk_ >= chunks_) return;
  releasePublished();
  stage_ = Stage::kAborted;
}

// A buffer peers may be reading is released before this rank's op ends, however it
// ends (aborted from outside, or its own read failed). The full fence orders the
// release before whatever the caller then writes into the buffer: a release store
// orders only what came before it.
void ShmCollective::releasePublished() {
  if (!releaseOnAbort_ || (stage_ != Stage::kReady && stage_ != Stage::kDone)) return;
  if (releaseByMark_) {
    __atomic_store_n(&reinterpret_cast<PublishedBuffer*>(slotOf(me()))->released, 1u,
                     __ATOMIC_RELEASE);
  } else {
    memory_.publishDone(seq_);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

std::vector<int> ShmCollective::pendingPeers() const {
  std::vector<int> pending;
  if (stage_ != Stage::kReady && stage_ != Stage::kDone) return pending;
  for (int r = 0; r < ranks(); ++r) {
    if (r != me() && !waitedReached(r)) pending.push_back(r);
  }
  return pending;
}

bool ShmCollective::waitForPeers(int timeoutUs) {
  if (stage_ != Stage::kReady && stage_ != Stage::kDone) return false;
  // Only asked what it waits for: touching a peer's ready line here would cost a line
  // crossing per op (the peer's next publish then misses too).
  if (timeoutUs <= 0) return true;
  lookAtReady_ = true;
  for (int r = cursor_; r < ranks(); ++r) {
    if (r == me() || waitedReached(r)) continue;
    if (stage_ == Stage::kReady) {
      (void)memory_.sleepUntilReady(r, seq_, timeoutUs);
    } else {
      (void)memory_.sleepUntilDone(r, seq_, timeoutUs);
    }
    return true;
  }
  return true;  // what it waited for came meanwhile: progress() goes on at once
}

size_t ShmCollective::chunkCount() const {
  return std::min(chunkElems_, args_.count - std::min(args_.count, chunkFirst()));
}

void ShmCollective::slice(int r, size_t total, size_t* first, size_t* count) const {
  size_t n = static_cast<size_t>(ranks());
  size_t align = std::max<size_t>(1, kLineBytes / elemSize_);
  size_t each = (total + n - 1) / n;
  each = (each + align - 1) / align * align;
  *first = std::min(total, each * static_cast<size_t>(r));
  *count = std::min(total, *first + each) - *first;
}

size_t ShmCollective::blockElems(int blocks) const {
  size_t each = slotElems() / static_cast<size_t>(blocks);
  size_t align = elemSize_ ? std::max<size_t>(1, kLineBytes / elemSize_) : 1;
  return each >= align ? each / align * align : each;
}

void ShmCollective::collect(int rank) {
  size_t first = 0, count = 0;
  slice(rank, chunkCount(), &first, &count);
  copyOut(at(args_.recvbuff, chunkFirst() + first), at(slotOf(rank), first), count);
}

void ShmCollective::sendInLines(const void* data, size_t bytes) {
  if (chunks_ != 1 || bytes > NodeMemory::kLineMessageBytes) return;  // stays in the slots
  inLines_ = true;
  lineData_ = data;
  lineBytes_ = bytes;
}

void ShmCollective::readLinesOf(int rank, void* out) const {
  memory_.readLines(rank, slotIndex(), out, lineBytes_);
}

void ShmCollective::reduceLines(void* out, size_t count) const {
  if (count == 0) return;
  alignas(kLineBytes) uint8_t acc[NodeMemory::kLineMessageBytes];
  alignas(kLineBytes) uint8_t next[NodeMemory::kLineMessageBytes];
  const size_t bytes = count * elemSize_;
  readLinesOf(0, acc);
  for (int r = 1; r < ranks(); ++r) {
    readLinesOf(r, next);
    reduce(acc, acc, next, count, args_.type, args_.op);
  }
  if (args_.op == ftcclAvg) divideBy(acc, count, args_.type, ranks());
  std::memcpy(out, acc, bytes);
}

void ShmCollective::publishBuffer(const void* data, size_t bytes) {
  const PublishedBuffer mine{reinterpret_cast<uintptr_t>(data), bytes, nodeClockNs(), 0};
  std::memcpy(slotOf(me()), &mine, sizeof(mine));
}

Status ShmCollective::readPublished(int owner, size_t total, size_t offset, void* out,
                                    size_t bytes) const {
  auto* published = reinterpret_cast<const PublishedBuffer*>(slotOf(owner));
  // Named only on failure: this runs once per piece of every single-copy op.
  auto name = [this] { return std::string("shm ") + kNames[static_cast<int>(kind_)] + ": "; };
  if (published->bytes != total) {
    return internalError(name() + "local rank " + std::to_string(owner) + " published " +
                         std::to_string(published->bytes) + " bytes for " + std::to_string(total));
  }
  FTCCL_CHECK(
      memory_.readPeer(owner, published->address + offset, out, bytes, published->aliveAtNs));
  // The kernel's loads above come before the look at done or the mark (an acquire load
  // alone would let them pass it on a weakly ordered CPU).
  std::atomic_thread_fence(std::memory_order_acquire);
  const bool released = releaseByMark_
                            ? __atomic_load_n(&published->released, __ATOMIC_ACQUIRE) != 0
                            : memory_.doneReached(owner, seq_);
  if (!released) return Status::ok();
  return remoteError(name() + "local rank " + std::to_string(owner) +
                     " released its buffer while local rank " + std::to_string(me()) +
                     " read it (its op ended)");
}

void ShmCollective::copy(void* dst, const void* src, size_t count) const {
  if (count) std::memcpy(dst, src, count * elemSize_);
}

void ShmCollective::copyOut(void* dst, const void* src, size_t count) const {
  if (!streamOutput_) return copy(dst, src, count);
  if (count) copyStreaming(dst, src, count * elemSize_);
}

void ShmCollective::reduceSlots(void* out, size_t first, size_t count, const void* mine) const {
  if (count == 0) return;
  int n = ranks();
  auto part = [&](int r) -> const uint8_t* {
    return r == me() && mine ? static_cast<const uint8_t*>(mine) : at(slotOf(r), first);
  };
  if (n == 1) {
    std::memmove(out, part(0), count * elemSize_);
  } else {
    reduce(out, part(0), part(1), count, args_.type, args_.op);
    for (int r = 2; r < n; ++r) reduce(out, out, part(r), count, args_.type, args_.op);
  }
  if (args_.op == ftcclAvg) divideBy(out, count, args_.type, n);
}

Status ShmCollective::checkArgs() const {
  // Named only on failure: this runs once per op, small ones included.
  auto name = [this] { return std::string("shm ") + kNames[static_cast<int>(kind_)] + ": "; };
  if (elemSize_ == 0) return invalidArgument(name() + "invalid data type");
  if (reduces(kind_) && !isValidRedOp(args_.op)) {
    return invalidArgument(name() + "invalid reduction op");
  }
  if (rooted(kind_) && (args_.root < 0 || args_.root >= ranks())) {
    return invalidArgument(name() + "root " + std::to_string(args_.root) + " is not one of the " +
                           std::to_string(ranks()) + " local ranks");
  }
  const int slots = memory_.slotsPerRank();
  if (slots < 2 || (slots & (slots - 1)) != 0 || slotElems() == 0 ||
      (chunkElems_ == 0 && args_.count > 0)) {
    return invalidArgument(name() + "needs 2, 4, ... slots per rank of at least one element (" +
                           std::to_string(ranks()) + " for reduce-scatter)");
  }
  return Status::ok();
}

NodeMemory::OpDescriptor ShmCollective::mine() const {
  NodeMemory::OpDescriptor d;
  d.count = args_.count;
  d.seq = seq_;
  d.opSeq = args_.opSeq;
  d.signature = args_.signature;
  d.type = static_cast<uint32_t>(args_.type);
  d.op = describedOp(kind_, args_.op);
  d.root = rooted(kind_) ? static_cast<uint32_t>(args_.root) : 0;
  return d;
}

// Every peer called this op as this rank did. Each rank compares all: if they differ,
// every rank differs from some rank, so all fail alike (ready was published by all
// before any compares, so nobody is left waiting for a rank that failed).
Status ShmCollective::checkPeersAgree() {
  const NodeMemory::OpDescriptor want = mine();
  for (int r = 0; r < ranks(); ++r) {
    bool viaLines = inLines_ && memory_.linesReached(r, slotIndex(), seq_, lineBytes_);
    NodeMemory::OpDescriptor got =
        viaLines ? memory_.lineDescriptor(r, slotIndex()) : memory_.descriptor(r, slotIndex());
    // Not this sequence's description in r's ready line: r sent the op in lines (line 0
    // reached it before r's ready did) and described it only there.
    if (!viaLines && got.seq != seq_ && memory_.linesReached(r, slotIndex(), seq_, 0)) {
      viaLines = true;
      got = memory_.lineDescriptor(r, slotIndex());
    }
    if (got == want && viaLines == inLines_) continue;
    stage_ = Stage::kAborted;
    const char* name = kNames[static_cast<int>(kind_)];
    return invalidUsage(std::string("shm ") + name + ": local rank " + std::to_string(r) +
                        " called " + what(got) + ", but local rank " + std::to_string(me()) +
                        " called " + what(want) + " (the ranks called one " + name +
                        " differently)");
  }
  return Status::ok();
}

// In lines, a peer's ready flag is looked at once the spin is over (waitForPeers with a
// timeout) and every kReadyLookEvery looks before: a peer that called the op differently
// may have taken the slots and will never write lines, and must not hang this rank
// (checkPeersAgree fails both), even where the driver's spin never ends (a transport
// that keeps reporting activity restarts it).
bool ShmCollective::waitedReached(int rank) const {
  constexpr uint32_t kReadyLookEvery = 64;
  if (stage_ != Stage::kReady) return memory_.doneReached(rank, seq_);
  if (!inLines_) return memory_.readyReached(rank, seq_);
  if (memory_.linesReached(rank, slotIndex(), seq_, lineBytes_)) return true;
  return (lookAtReady_ || ++lineLooks_ % kReadyLookEvery == 0) && memory_.readyReached(rank, seq_);
}

// Whether every other rank's flag reached seq_; ranks seen there are not checked again
// (flags only advance), and each one seen advances the progress mark.
bool ShmCollective::allReached(bool collecting) {
  for (; cursor_ < ranks(); ++cursor_) {
    if (cursor_ == me()) continue;
    if (!waitedReached(cursor_)) return false;
    if (collecting) collect(cursor_);
    ++mark_;
  }
  return true;
}

void ShmCollective::finishChunk() {
  // Nobody waits for a line message's done (a rank that took the slots for it fails
  // in checkPeersAgree): stored without the full fence and the look for sleepers.
  if (inLines_) {
    memory_.publishDoneUnwaited(seq_);
  } else {
    memory_.publishDone(seq_);
  }
  ++chunk_;
  ++seq_;
  ++mark_;
  stage_ = Stage::kContribute;
}

}  // namespace ftccl
