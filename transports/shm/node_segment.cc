#include "transports/shm/node_segment.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <linux/mempolicy.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <new>
#include <string>
#include <utility>

namespace ftccl {
namespace shm {
namespace {

constexpr int kRequiredSeals = F_SEAL_SHRINK | F_SEAL_GROW;

// "what: strerror(errno)"; the default argument reads errno before anything can change it.
std::string failed(const char* what, int err = errno) {
  return std::string(what) + ": " + net::errnoString(err);
}

// The futex is the atomic's own 32-bit word (asserted in the header). Never
// FUTEX_PRIVATE_FLAG: the word is shared between processes, and a shared futex is keyed
// by the file page, so every process's mapping meets on the same one.
uint32_t* futexWord(std::atomic<uint32_t>* word) { return reinterpret_cast<uint32_t*>(word); }

void futexWake(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, futexWord(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

// Returns when woken, when *word != expected (EAGAIN), on a signal (EINTR) or a spurious
// wake-up, or after the timeout: in every case the caller checks the word again.
void futexWait(std::atomic<uint32_t>* word, uint32_t expected, std::chrono::microseconds timeout) {
  timespec ts;
  ts.tv_sec = static_cast<time_t>(timeout.count() / 1000000);
  ts.tv_nsec = static_cast<long>(timeout.count() % 1000000) * 1000;
  syscall(SYS_futex, futexWord(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}

}  // namespace

Status NodeLayout::make(int localSize, size_t slotBytes, int slotsPerRank, uint32_t epoch,
                        NodeLayout* out) {
  if (localSize < 1 || localSize > kMaxLocalRanks) {
    return invalidArgument("shm layout: " + std::to_string(localSize) +
                           " local ranks, must be 1.." + std::to_string(kMaxLocalRanks));
  }
  if (slotBytes < 1 || slotBytes > kMaxSlotBytes) {
    return invalidArgument("shm layout: slot of " + std::to_string(slotBytes) +
                           " bytes, must be 1.." + std::to_string(kMaxSlotBytes));
  }
  // A power of two: slots are picked as seq % slotsPerRank with a 32-bit seq, which stays
  // in step across the wrap only when slotsPerRank divides 2^32 (with 3, ops 0xFFFFFFFF
  // and 0 would share a slot while the reuse wait looked at another).
  if (slotsPerRank < 1 || slotsPerRank > kMaxSlotsPerRank ||
      (slotsPerRank & (slotsPerRank - 1)) != 0) {
    return invalidArgument("shm layout: " + std::to_string(slotsPerRank) +
                           " slots per rank, must be 1, 2 or 4");
  }
  // Each factor is bounded above, so this cannot overflow.
  const size_t total = segmentBytesPerNode(localSize, slotBytes, slotsPerRank);
  if (total > kMaxSegmentBytes) {
    return invalidArgument("shm layout: " + std::to_string(total) + " bytes exceed the bound of " +
                           std::to_string(kMaxSegmentBytes));
  }
  out->localSize_ = localSize;
  out->slotsPerRank_ = slotsPerRank;
  out->slotBytes_ = roundUp(slotBytes, kSlotAlign);
  out->epoch_ = epoch;
  out->totalBytes_ = total;
  return Status::ok();
}

// Why no wake-up is lost. A waiter registers (the seq_cst increment) and then sleeps only
// if FUTEX_WAIT, which reads the word after a full barrier and under the futex's lock,
// still finds the value the waiter saw below `want`. A publisher stores the new value and
// then reads the count, both seq_cst: Dekker's pattern, where release/acquire would let
// the load pass the store (x86's store buffer does) and both sides miss each other. In
// the single seq_cst order, either the increment precedes the publisher's load, which
// sees the waiter and calls FUTEX_WAKE (the kernel then wakes the waiter or the waiter
// finds the new value), or the load precedes the increment, so the store precedes the
// kernel's read, which finds the new value and does not sleep (EAGAIN). The load after
// the increment only saves that syscall. Keep the seq_cst: a weaker order loses wake-ups
// in a window of nanoseconds that no test here reliably hits.
void SeqFlag::publish(uint32_t seq) {
  line_->seq.store(seq, std::memory_order_seq_cst);
  // No syscall when nobody sleeps: the common case when every rank has a core.
  if (line_->waiters.load(std::memory_order_seq_cst) != 0) futexWake(&line_->seq);
}

bool SeqFlag::sleepUntil(uint32_t want, std::chrono::microseconds timeout) const {
  if (reached(want)) return true;  // without touching the shared waiter count
  if (timeout.count() <= 0) return false;
  // A waiter killed while registered leaves the count one high for the rest of the
  // epoch: publishes then make a needless FUTEX_WAKE, never a wrong result.
  line_->waiters.fetch_add(1, std::memory_order_seq_cst);
  const uint32_t seen = line_->seq.load(std::memory_order_seq_cst);
  if (!seqReached(seen, want)) futexWait(&line_->seq, seen, timeout);
  // Relaxed: a publisher that still sees this waiter only makes one needless wake.
  line_->waiters.fetch_sub(1, std::memory_order_relaxed);
  return reached(want);
}

NodeSegment& NodeSegment::operator=(NodeSegment&& other) noexcept {
  if (this != &other) {
    NodeSegment gone(std::move(*this));  // unmapped at the end of this scope
    swap(other);
  }
  return *this;
}

NodeSegment::~NodeSegment() {
  if (base_ != nullptr) munmap(base_, layout_.totalBytes());
}

void NodeSegment::swap(NodeSegment& other) noexcept {
  std::swap(fd_, other.fd_);
  std::swap(base_, other.base_);
  std::swap(layout_, other.layout_);
  std::swap(placementProblem_, other.placementProblem_);
}

// MPOL_PREFERRED over each rank's slots (all of them, up to the next rank's): on a
// mapping of a memfd the policy belongs to the file's pages, so the fallocate that
// follows allocates them there, whoever maps them later. Preferred, not bound: a full
// node spills over instead of failing the allocation. Control blocks and header stay
// where the kernel puts them (they share pages between ranks).
void NodeSegment::place(const std::vector<int>& numaNodeOfRank) {
  constexpr int kMaxNodes = 1024;  // as many as the mask below holds
  for (int r = 0; r < layout_.localSize() && r < static_cast<int>(numaNodeOfRank.size()); ++r) {
    const int node = numaNodeOfRank[static_cast<size_t>(r)];
    if (node < 0) continue;
    auto report = [this](const std::string& problem) {
      placementProblem_ += (placementProblem_.empty() ? "" : "; ") + problem;
    };
    if (node >= kMaxNodes) {
      report("local rank " + std::to_string(r) + "'s NUMA node " + std::to_string(node) +
             " is beyond " + std::to_string(kMaxNodes));
      continue;
    }
    unsigned long mask[kMaxNodes / (8 * sizeof(unsigned long))] = {};
    mask[static_cast<size_t>(node) / (8 * sizeof(unsigned long))] |=
        1ul << (static_cast<size_t>(node) % (8 * sizeof(unsigned long)));
    const size_t first = layout_.slotOffset(r, 0);
    const size_t end =
        r + 1 < layout_.localSize() ? layout_.slotOffset(r + 1, 0) : layout_.totalBytes();
    // maxnode counts one more than the mask's bits: the kernel reads maxnode - 1 of them.
    if (syscall(SYS_mbind, base_ + first, end - first, MPOL_PREFERRED, mask, kMaxNodes + 1, 0) !=
        0) {
      const int err = errno;
      const std::string what = "placing local rank " + std::to_string(r) +
                               "'s slots on NUMA node " + std::to_string(node);
      report(failed(what.c_str(), err));
    }
  }
}

Status NodeSegment::mapFd(const NodeLayout& layout) {
  void* base = mmap(nullptr, layout.totalBytes(), PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
  if (base == MAP_FAILED) return systemError(failed("shm: mmap"));
  base_ = static_cast<uint8_t*>(base);
  layout_ = layout;
  return Status::ok();
}

// One read per page: maps every page into this process now, not during an op (the pages
// themselves were allocated by the creator's fallocate).
void NodeSegment::prefault() const {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  for (size_t offset = 0; offset < layout_.totalBytes(); offset += page) {
    (void)*static_cast<const volatile uint8_t*>(base_ + offset);
  }
}

Status NodeSegment::create(const NodeLayout& layout, NodeSegment* out,
                           const std::vector<int>& numaNodeOfRank) {
  const size_t bytes = layout.totalBytes();
  if (bytes == 0) return invalidArgument("shm: create with a layout that was not made");
  NodeSegment segment;
  // Unnamed: nothing to unlink, nothing left if this process dies at any point.
  segment.fd_.reset(memfd_create("ftccl-node", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!segment.fd_.valid()) return systemError(failed("shm: memfd_create"));
  const int fd = segment.fd_.get();
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) return systemError(failed("shm: ftruncate"));
  FTCCL_CHECK(segment.mapFd(layout));  // first: the placement is set through a mapping
  segment.place(numaNodeOfRank);
  // Allocates every page now: a shortage is ENOMEM/ENOSPC here, not a SIGBUS later.
  int rc;
  do {
    rc = fallocate(fd, 0, 0, static_cast<off_t>(bytes));
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int err = errno;
    return systemError(failed("shm: fallocate", err) + " (" + std::to_string(bytes) + " bytes)");
  }
  if (fcntl(fd, F_ADD_SEALS, kRequiredSeals | F_SEAL_SEAL) != 0) {
    return systemError(failed("shm: sealing the segment"));
  }
  for (int r = 0; r < layout.localSize(); ++r) {
    new (segment.base_ + layout.readyOffset(r)) FlagLine();
    new (segment.base_ + layout.doneOffset(r)) FlagLine();
  }
  // Plain stores: mappers read the header only after the fd reached them through a
  // syscall (fork, sendmsg), which orders these writes before their reads.
  SegmentHeader header{};
  header.magic = kSegmentMagic;
  header.version = kSegmentVersion;
  header.epoch = layout.epoch();
  header.localSize = static_cast<uint32_t>(layout.localSize());
  header.slotsPerRank = static_cast<uint32_t>(layout.slotsPerRank());
  header.slotBytes = layout.slotBytes();
  header.totalBytes = bytes;
  *reinterpret_cast<SegmentHeader*>(segment.base_ + NodeLayout::headerOffset()) = header;
  segment.prefault();
  *out = std::move(segment);
  return Status::ok();
}

Status NodeSegment::map(int fd, const NodeLayout& layout, NodeSegment* out) {
  const size_t bytes = layout.totalBytes();
  if (bytes == 0) return invalidArgument("shm: map with a layout that was not made");
  // Seals first: once the size cannot change, the size read next stays true, and no
  // truncation can turn a later access into a SIGBUS.
  const int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0) return invalidArgument(failed("shm: fd is not a sealable memfd"));
  if ((seals & kRequiredSeals) != kRequiredSeals) {
    return invalidArgument("shm: fd " + std::to_string(fd) + " is not sealed against resizing");
  }
  struct stat st;
  if (fstat(fd, &st) != 0) return systemError(failed("shm: fstat"));
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size > kMaxSegmentBytes) {
    return invalidArgument("shm: segment of " + std::to_string(size) +
                           " bytes exceeds the bound of " + std::to_string(kMaxSegmentBytes));
  }
  if (size != bytes) {
    return invalidArgument("shm: segment of " + std::to_string(size) + " bytes, the layout has " +
                           std::to_string(bytes));
  }
  NodeSegment segment;
  segment.fd_.reset(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!segment.fd_.valid()) return systemError(failed("shm: dup of the segment's fd"));
  FTCCL_CHECK(segment.mapFd(layout));
  const auto* header =
      reinterpret_cast<const SegmentHeader*>(segment.base_ + NodeLayout::headerOffset());
  if (header->magic != kSegmentMagic || header->version != kSegmentVersion) {
    return invalidArgument("shm: not an ftccl segment of version " +
                           std::to_string(kSegmentVersion) + " (version " +
                           std::to_string(header->version) + ")");
  }
  if (header->epoch != layout.epoch() ||
      header->localSize != static_cast<uint32_t>(layout.localSize()) ||
      header->slotsPerRank != static_cast<uint32_t>(layout.slotsPerRank()) ||
      header->slotBytes != layout.slotBytes() || header->totalBytes != bytes) {
    return invalidArgument(
        "shm: segment of epoch " + std::to_string(header->epoch) + ", " +
        std::to_string(header->localSize) + " ranks x " + std::to_string(header->slotsPerRank) +
        " x " + std::to_string(header->slotBytes) + " B; expected epoch " +
        std::to_string(layout.epoch()) + ", " + std::to_string(layout.localSize()) + " x " +
        std::to_string(layout.slotsPerRank()) + " x " + std::to_string(layout.slotBytes()) + " B");
  }
  segment.prefault();  // after the checks: a foreign segment costs no page walk
  *out = std::move(segment);
  return Status::ok();
}

}  // namespace shm
}  // namespace ftccl
