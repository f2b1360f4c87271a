// Single copy between the ranks of a node (transports/shm/peer_reader.h, the broadcast
// and all-gather of src/algorithms/shm_*.cc): reads through the kernel from another
// process, which fail (never return another process's bytes) once it has exited, and
// the promise that a reader never keeps bytes their owner may have reused.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "algorithms/collective.h"
#include "gtest/gtest.h"
#include "shm_collectives_fixture.h"
#include "transports/shm/node_arena.h"
#include "transports/shm/peer_reader.h"

namespace ftccl {
namespace shm_test {
namespace {

#define SKIP_WITHOUT_SINGLE_COPY()                                    \
  do {                                                                \
    const std::string why = singleCopyUnavailable();                  \
    if (!why.empty()) GTEST_SKIP() << "no single copy here: " << why; \
  } while (0)

// A child that keeps `value` at the address of `word` (the same in the fork) until
// killed, or until this process ends however it ends (PR_SET_PDEATHSIG); the guard kills
// and reaps it when a failed assertion leaves the test early.
struct Child {
  pid_t pid = -1;
  ~Child() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

void forkHolding(volatile uint64_t* word, uint64_t value, Child* child) {
  *word = value;
  const pid_t parent = getpid();
  child->pid = fork();
  if (child->pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);  // the parent died before the line above
    for (;;) pause();
  }
  *word = 0;  // the parent's copy changes; the child's does not
}

TEST(PeerReader, ReadsAnotherProcessUntilItExits) {
  SKIP_WITHOUT_SINGLE_COPY();
  static volatile uint64_t word = 0;
  Child guard;
  forkHolding(&word, 0x1234567890abcdefULL, &guard);
  const pid_t child = guard.pid;
  ASSERT_GT(child, 0);
  shm::PeerReader reader;
  Status opened = reader.open({getpid(), child});
  ASSERT_TRUE(opened.isOk()) << opened.message();
  uint64_t got = 0;
  Status read = reader.read(1, reinterpret_cast<uintptr_t>(&word), &got, sizeof(got));
  EXPECT_TRUE(read.isOk()) << read.message();
  EXPECT_EQ(got, 0x1234567890abcdefULL);
  // An address the child has not mapped: refused, nothing read.
  read = reader.read(1, 8, &got, sizeof(got));
  EXPECT_FALSE(read.isOk());
  EXPECT_NE(read.message().find("Bad address"), std::string::npos) << read.message();
  // Killed: a zombie (its pid still taken, its memory gone), then reaped (the pid free
  // for another process). Neither may read as the child.
  ASSERT_EQ(kill(child, SIGKILL), 0);
  siginfo_t info{};
  ASSERT_EQ(waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT), 0);
  read = reader.read(1, reinterpret_cast<uintptr_t>(&word), &got, sizeof(got));
  EXPECT_FALSE(read.isOk());
  EXPECT_EQ(read.code(), ftcclRemoteError) << read.message();
  // Known alive a moment ago (the pidfd is then not looked at): the read itself fails.
  read = reader.read(1, reinterpret_cast<uintptr_t>(&word), &got, sizeof(got), nodeClockNs());
  EXPECT_EQ(read.code(), ftcclRemoteError) << read.message();
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  guard.pid = -1;
  read = reader.read(1, reinterpret_cast<uintptr_t>(&word), &got, sizeof(got));
  EXPECT_FALSE(read.isOk());
  EXPECT_EQ(read.code(), ftcclRemoteError) << read.message();
  read = reader.read(1, reinterpret_cast<uintptr_t>(&word), &got, sizeof(got), nodeClockNs());
  EXPECT_EQ(read.code(), ftcclRemoteError) << read.message();
  EXPECT_FALSE(reader.read(2, 0, &got, 0).isOk());  // no such local rank
}

// The pidfd may be skipped only within the reuse window after a stamp, never for a stamp
// from the future (a peer in another time namespace) or none.
TEST(PeerReader, SkipsThePidCheckOnlyRightAfterTheOwnerWasSeenAlive) {
  using shm::PeerReader;
  const int64_t t = 5'000'000'000;
  EXPECT_TRUE(PeerReader::pidStillItsOwn(t, t));
  EXPECT_TRUE(PeerReader::pidStillItsOwn(t, t + PeerReader::kPidReuseWindowNs - 1));
  EXPECT_FALSE(PeerReader::pidStillItsOwn(t, t + PeerReader::kPidReuseWindowNs));
  EXPECT_FALSE(PeerReader::pidStillItsOwn(t, t + 60'000'000'000));
  EXPECT_FALSE(PeerReader::pidStillItsOwn(t + 1, t));
  EXPECT_FALSE(PeerReader::pidStillItsOwn(PeerReader::kAliveUnknown, t));
  const int64_t now = nodeClockNs();
  EXPECT_GT(now, 0);
  EXPECT_GE(nodeClockNs(), now);
}

TEST(PeerReader, RefusesAGonePid) {
  SKIP_WITHOUT_SINGLE_COPY();
  pid_t child = fork();
  if (child == 0) _exit(0);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  shm::PeerReader reader;
  EXPECT_FALSE(reader.open({getpid(), child}).isOk());
  EXPECT_FALSE(reader.isOpen());
}

// Two ranks over one segment with single copy on, stepped by hand. `reader` may be
// wrapped (below) to act during the reader's read.
struct TwoRanks {
  shm::NodeSegment segment;
  std::unique_ptr<shm::NodeArena> arenas[2];
  uint32_t nextSeq[2] = {1, 1};

  void setUp() {
    ASSERT_NO_FATAL_FAILURE(makeSegment(2, 2, &segment));
    for (int r = 0; r < 2; ++r) arenas[r] = std::make_unique<shm::NodeArena>(segment, r);
    for (auto& arena : arenas) arena->publishProbe();
    for (auto& arena : arenas) {
      Status probed = arena->probeSingleCopy({getpid(), getpid()});
      ASSERT_TRUE(probed.isOk()) << probed.message();
      arena->useSingleCopy(true);
      ASSERT_TRUE(arena->singleCopy());
    }
  }
};

// 640 KiB: one op however large the slot, read in 3 pieces of 16 slots (256 KiB here).
constexpr size_t kFloats = 160 * 1024;

struct Broadcast {
  std::vector<float> in = std::vector<float>(kFloats), out = std::vector<float>(kFloats, -1.0f);
  CollectiveArgs root, reader;
  explicit Broadcast(bool inPlace) {
    for (size_t i = 0; i < kFloats; ++i) in[i] = static_cast<float>(i) * 0.5f;
    root.sendbuff = in.data();
    root.recvbuff = inPlace ? in.data() : out.data();
    reader.recvbuff = out.data();
    root.count = reader.count = kFloats;
    root.type = reader.type = ftcclFloat32;
  }
};

// A NodeMemory (over a NodeArena) whose readPeer runs `during` after the read: what
// the root does while the kernel copies.
class ReadHook final : public NodeMemory {
 public:
  ReadHook(NodeMemory& inner, std::function<void()> during)
      : inner_(inner), during_(std::move(during)) {}
  int localRank() const override { return inner_.localRank(); }
  int localSize() const override { return inner_.localSize(); }
  size_t slotBytes() const override { return inner_.slotBytes(); }
  int slotsPerRank() const override { return inner_.slotsPerRank(); }
  uint8_t* slot(int r, int i) const override { return inner_.slot(r, i); }
  void describe(int i, const OpDescriptor& d) override { inner_.describe(i, d); }
  OpDescriptor descriptor(int r, int i) const override { return inner_.descriptor(r, i); }
  void writeLines(int i, const OpDescriptor& d, const void* data, size_t n) override {
    inner_.writeLines(i, d, data, n);
  }
  bool linesReached(int r, int i, uint32_t seq, size_t n) const override {
    return inner_.linesReached(r, i, seq, n);
  }
  OpDescriptor lineDescriptor(int r, int i) const override { return inner_.lineDescriptor(r, i); }
  void readLines(int r, int i, void* out, size_t n) const override {
    inner_.readLines(r, i, out, n);
  }
  void publishReady(uint32_t seq) override { inner_.publishReady(seq); }
  bool readyReached(int r, uint32_t seq) const override { return inner_.readyReached(r, seq); }
  void publishDone(uint32_t seq) override { inner_.publishDone(seq); }
  void publishDoneUnwaited(uint32_t seq) override { inner_.publishDoneUnwaited(seq); }
  bool doneReached(int r, uint32_t seq) const override { return inner_.doneReached(r, seq); }
  bool sleepUntilReady(int r, uint32_t seq, int us) const override {
    return inner_.sleepUntilReady(r, seq, us);
  }
  bool sleepUntilDone(int r, uint32_t seq, int us) const override {
    return inner_.sleepUntilDone(r, seq, us);
  }
  bool singleCopy() const override { return inner_.singleCopy(); }
  Status readPeer(int r, uint64_t address, void* out, size_t bytes,
                  int64_t aliveAtNs) const override {
    Status read = inner_.readPeer(r, address, out, bytes, aliveAtNs);
    during_();
    return failWith_.isOk() ? read : failWith_;
  }
  // Every read fails with `why` from now on (an EFAULT on a bad output, say).
  void failReads(Status why) { failWith_ = std::move(why); }

 private:
  NodeMemory& inner_;
  std::function<void()> during_;
  Status failWith_;
};

// The reader's next step fails because the owner released its buffer before or during
// the read (whatever bytes it got are not used), and the failed op stays failed, quietly.
void expectReleasedFailure(Collective& reader) {
  bool done = false;
  Status read = reader.progress(&done);
  EXPECT_FALSE(done);
  ASSERT_FALSE(read.isOk());
  EXPECT_EQ(read.code(), ftcclRemoteError);
  EXPECT_NE(read.message().find("released its buffer"), std::string::npos) << read.message();
  ASSERT_TRUE(reader.progress(&done).isOk()) << "a failed op stays failed, quietly";
  EXPECT_FALSE(done);
}

TEST(ShmSingleCopy, BroadcastReadsTheRootsBufferAndTheRootWaitsForIt) {
  SKIP_WITHOUT_SINGLE_COPY();
  TwoRanks two;
  ASSERT_NO_FATAL_FAILURE(two.setUp());
  Broadcast b(true);
  std::unique_ptr<Collective> rootOp = makeShmBroadcast(*two.arenas[0], b.root, &two.nextSeq[0]);
  // While the reader reads (its ready published, its done not yet), the root must wait.
  int rootStepsDuringRead = 0;
  ReadHook reader(*two.arenas[1], [&] {
    bool rootDone = false;
    EXPECT_TRUE(rootOp->progress(&rootDone).isOk());
    EXPECT_FALSE(rootDone) << "the root returned while its reader read";
    ++rootStepsDuringRead;
  });
  std::unique_ptr<Collective> readerOp = makeShmBroadcast(reader, b.reader, &two.nextSeq[1]);
  EXPECT_EQ(two.nextSeq[0], 2u) << "one sequence for the whole op";
  bool done = false;
  ASSERT_TRUE(rootOp->progress(&done).isOk());
  ASSERT_FALSE(done);
  uint64_t published = 0;  // the root's slot holds its buffer's address, not its bytes
  std::memcpy(&published, two.arenas[0]->slot(0, 1), sizeof(published));
  EXPECT_EQ(published, reinterpret_cast<uintptr_t>(b.in.data()));
  uint64_t mark = readerOp->progressMark();
  for (int piece = 1; piece <= 3; ++piece) {
    ASSERT_TRUE(readerOp->progress(&done).isOk());
    EXPECT_EQ(done, piece == 3) << "a reader waits for no done, and returns between pieces";
    EXPECT_GT(readerOp->progressMark(), mark) << "each piece is progress";
    mark = readerOp->progressMark();
  }
  EXPECT_EQ(rootStepsDuringRead, 3);
  EXPECT_EQ(std::memcmp(b.in.data(), b.out.data(), kFloats * sizeof(float)), 0);
  ASSERT_TRUE(rootOp->progress(&done).isOk());
  EXPECT_TRUE(done);
}

// The root's op ends (revoked, timed out) before or while its reader reads: it publishes
// done as it aborts, and may then reuse its buffer, so the reader fails however its read
// went.
TEST(ShmSingleCopy, ARootThatAbortsReleasesAndItsReaderFails) {
  SKIP_WITHOUT_SINGLE_COPY();
  for (bool duringTheRead : {false, true}) {
    SCOPED_TRACE(duringTheRead ? "aborted during the read" : "aborted before the read");
    TwoRanks two;
    ASSERT_NO_FATAL_FAILURE(two.setUp());
    Broadcast b(false);
    std::unique_ptr<Collective> rootOp = makeShmBroadcast(*two.arenas[0], b.root, &two.nextSeq[0]);
    ReadHook reader(*two.arenas[1], [&] {
      if (duringTheRead) rootOp->abort();
    });
    std::unique_ptr<Collective> readerOp = makeShmBroadcast(reader, b.reader, &two.nextSeq[1]);
    bool done = false;
    ASSERT_TRUE(rootOp->progress(&done).isOk());
    if (!duringTheRead) {
      rootOp->abort();
      EXPECT_TRUE(two.arenas[1]->doneReached(0, 1));
    }
    ASSERT_NO_FATAL_FAILURE(expectReleasedFailure(*readerOp));
  }
}

// An all-gather between two ranks out of place, each part read in 2 pieces (20 slots).
struct AllGather {
  size_t count;
  std::vector<float> in[2], out[2];
  CollectiveArgs args[2];
  explicit AllGather(size_t slotBytes) : count(20 * slotBytes / sizeof(float)) {
    for (int r = 0; r < 2; ++r) {
      in[r].resize(count);
      for (size_t i = 0; i < count; ++i) in[r][i] = static_cast<float>(r * 1000000 + i);
      out[r].assign(2 * count, -1.0f);
      args[r].sendbuff = in[r].data();
      args[r].recvbuff = out[r].data();
      args[r].count = count;
      args[r].type = ftcclFloat32;
    }
  }
};

// Each rank reads the other's part from its process and must not return while the other
// still reads its own: done from both, whoever finishes first.
TEST(ShmSingleCopy, AllGatherReadsEachOthersPartAndWaitsForTheOthersRead) {
  SKIP_WITHOUT_SINGLE_COPY();
  TwoRanks two;
  ASSERT_NO_FATAL_FAILURE(two.setUp());
  AllGather g(two.arenas[0]->slotBytes());
  std::unique_ptr<Collective> ops[2];
  for (int r = 0; r < 2; ++r) ops[r] = makeShmAllGather(*two.arenas[r], g.args[r], &two.nextSeq[r]);
  EXPECT_EQ(two.nextSeq[0], 2u) << "one sequence for the whole op";
  bool done[2] = {false, false};
  auto step = [&](int r) { ASSERT_TRUE(ops[r]->progress(&done[r]).isOk()); };
  ASSERT_NO_FATAL_FAILURE(step(0));  // published its part's address; waits for rank 1
  EXPECT_FALSE(done[0]);
  uint64_t published = 0;
  std::memcpy(&published, two.arenas[0]->slot(0, 1), sizeof(published));
  EXPECT_EQ(published, reinterpret_cast<uintptr_t>(g.in[0].data()));
  ASSERT_NO_FATAL_FAILURE(step(1));  // first piece of rank 0's part
  ASSERT_NO_FATAL_FAILURE(step(1));  // second: done published, waits for rank 0's read
  EXPECT_FALSE(done[1]);
  EXPECT_TRUE(two.arenas[0]->doneReached(1, 1));
  for (int i = 0; i < 3; ++i) {
    ASSERT_NO_FATAL_FAILURE(step(1));
    EXPECT_FALSE(done[1]) << "rank 1 returned while rank 0 still had its part to read";
  }
  ASSERT_NO_FATAL_FAILURE(step(0));  // first piece
  EXPECT_FALSE(done[0]);
  ASSERT_NO_FATAL_FAILURE(step(0));  // second, and rank 1's done is there
  EXPECT_TRUE(done[0]);
  ASSERT_NO_FATAL_FAILURE(step(1));
  EXPECT_TRUE(done[1]);
  for (int r = 0; r < 2; ++r) {
    for (int part = 0; part < 2; ++part) {
      EXPECT_EQ(
          std::memcmp(g.out[r].data() + part * g.count, g.in[part].data(), g.count * sizeof(float)),
          0)
          << "rank " << r << ", part " << part;
    }
  }
}

// A rank's op ends (revoked, timed out) before the other reads its part, while it
// reads, or after this rank finished its own read (its done published, waiting for the
// other's): done already says "finished reading", so it marks its buffer released, and
// the reader fails however its read went.
TEST(ShmSingleCopy, AnAllGatherRankThatAbortsReleasesAndTheOtherFails) {
  SKIP_WITHOUT_SINGLE_COPY();
  enum When { kBefore, kDuring, kAfterItsOwnRead };
  for (When when : {kBefore, kDuring, kAfterItsOwnRead}) {
    SCOPED_TRACE(when == kBefore   ? "before the read"
                 : when == kDuring ? "during the read"
                                   : "after its own read");
    TwoRanks two;
    ASSERT_NO_FATAL_FAILURE(two.setUp());
    AllGather g(two.arenas[0]->slotBytes());
    std::unique_ptr<Collective> owner =
        makeShmAllGather(*two.arenas[0], g.args[0], &two.nextSeq[0]);
    bool ownerDone = false;
    ReadHook hooked(*two.arenas[1], [&] {
      if (when == kAfterItsOwnRead) {  // two pieces of rank 1's part, then done
        for (int piece = 0; piece < 2; ++piece) EXPECT_TRUE(owner->progress(&ownerDone).isOk());
        EXPECT_FALSE(ownerDone) << "rank 1 still reads";
        EXPECT_TRUE(two.arenas[1]->doneReached(0, 1));
      }
      if (when != kBefore) owner->abort();
    });
    std::unique_ptr<Collective> reader = makeShmAllGather(hooked, g.args[1], &two.nextSeq[1]);
    bool done = false;
    ASSERT_TRUE(owner->progress(&done).isOk());
    if (when == kBefore) {
      owner->abort();
      EXPECT_FALSE(two.arenas[1]->doneReached(0, 1)) << "released, not done: it read nothing";
    }
    ASSERT_NO_FATAL_FAILURE(expectReleasedFailure(*reader));
  }
}

// A rank whose own read fails ends its op, and releases its buffer as it does: the other,
// which may still read it, fails instead of waiting for a done that never comes.
TEST(ShmSingleCopy, ARankWhoseOwnReadFailsReleasesItsBuffer) {
  SKIP_WITHOUT_SINGLE_COPY();
  TwoRanks two;
  ASSERT_NO_FATAL_FAILURE(two.setUp());
  AllGather g(two.arenas[0]->slotBytes());
  std::unique_ptr<Collective> other = makeShmAllGather(*two.arenas[0], g.args[0], &two.nextSeq[0]);
  ReadHook failing(*two.arenas[1], [] {});
  failing.failReads(systemError("injected: the read failed"));
  std::unique_ptr<Collective> failed = makeShmAllGather(failing, g.args[1], &two.nextSeq[1]);
  bool done = false;
  ASSERT_TRUE(other->progress(&done).isOk());
  Status own = failed->progress(&done);
  ASSERT_FALSE(own.isOk());
  EXPECT_NE(own.message().find("injected"), std::string::npos) << own.message();
  ASSERT_NO_FATAL_FAILURE(expectReleasedFailure(*other)) << "read a buffer its owner had given up";
}

// A reduce-scatter between two ranks: each reads its part of the other's input, a slot's
// worth per call, reduces it with its own into its output (in rank order), and waits for
// the other's read of its input. 2.5 slots per part: 3 pieces.
TEST(ShmSingleCopy, ReduceScatterReadsItsPartOfTheOthersInput) {
  SKIP_WITHOUT_SINGLE_COPY();
  for (bool inPlace : {false, true}) {
    SCOPED_TRACE(inPlace ? "in place" : "out of place");
    TwoRanks two;
    ASSERT_NO_FATAL_FAILURE(two.setUp());
    const size_t count = two.arenas[0]->slotBytes() * 5 / 2 / sizeof(float);
    ASSERT_GE(count * sizeof(float), kShmSingleCopyReducePartBytes);
    ASSERT_LE(count * sizeof(float), kShmSingleCopyReduceMaxPartBytes);
    std::vector<float> in[2], out[2];
    CollectiveArgs args[2];
    std::unique_ptr<Collective> ops[2];
    for (int r = 0; r < 2; ++r) {
      in[r].resize(2 * count);
      for (size_t i = 0; i < 2 * count; ++i) in[r][i] = static_cast<float>(i % 1000) + r * 0.25f;
      out[r].assign(count, -1.0f);
      args[r].sendbuff = in[r].data();
      args[r].recvbuff = inPlace ? in[r].data() + r * count : out[r].data();
      args[r].count = count;
      args[r].type = ftcclFloat32;
      args[r].op = ftcclSum;
    }
    const std::vector<float> input0 = in[0], input1 = in[1];
    for (int r = 0; r < 2; ++r) {
      ops[r] = makeShmReduceScatter(*two.arenas[r], args[r], &two.nextSeq[r]);
    }
    EXPECT_EQ(two.nextSeq[0], 2u) << "one sequence for the whole op";
    bool done[2] = {false, false};
    auto step = [&](int r) { ASSERT_TRUE(ops[r]->progress(&done[r]).isOk()); };
    ASSERT_NO_FATAL_FAILURE(step(0));  // published; waits for rank 1's ready
    for (int piece = 0; piece < 3; ++piece) ASSERT_NO_FATAL_FAILURE(step(1));
    EXPECT_FALSE(done[1]) << "rank 0 has not read rank 1's input yet";
    ASSERT_NO_FATAL_FAILURE(step(1));
    EXPECT_FALSE(done[1]);
    for (int piece = 0; piece < 3; ++piece) ASSERT_NO_FATAL_FAILURE(step(0));
    EXPECT_TRUE(done[0]);
    ASSERT_NO_FATAL_FAILURE(step(1));
    EXPECT_TRUE(done[1]);
    for (int r = 0; r < 2; ++r) {
      const auto* got = static_cast<const float*>(args[r].recvbuff);
      for (size_t i = 0; i < count; ++i) {
        const size_t at = static_cast<size_t>(r) * count + i;
        ASSERT_EQ(got[i], input0[at] + input1[at]) << "rank " << r << ", element " << i;
      }
    }
  }
}

// As the all-gather's: an aborted rank marks its input released, and the other fails.
TEST(ShmSingleCopy, AReduceScatterRankThatAbortsReleasesAndTheOtherFails) {
  SKIP_WITHOUT_SINGLE_COPY();
  TwoRanks two;
  ASSERT_NO_FATAL_FAILURE(two.setUp());
  const size_t count = two.arenas[0]->slotBytes() * 2 / sizeof(float);
  std::vector<float> in[2] = {std::vector<float>(2 * count, 1.0f),
                              std::vector<float>(2 * count, 2.0f)};
  std::vector<float> out[2] = {std::vector<float>(count), std::vector<float>(count)};
  CollectiveArgs args[2];
  for (int r = 0; r < 2; ++r) {
    args[r].sendbuff = in[r].data();
    args[r].recvbuff = out[r].data();
    args[r].count = count;
    args[r].type = ftcclFloat32;
  }
  std::unique_ptr<Collective> owner =
      makeShmReduceScatter(*two.arenas[0], args[0], &two.nextSeq[0]);
  ReadHook hooked(*two.arenas[1], [&] { owner->abort(); });
  std::unique_ptr<Collective> reader = makeShmReduceScatter(hooked, args[1], &two.nextSeq[1]);
  bool done = false;
  ASSERT_TRUE(owner->progress(&done).isOk());
  ASSERT_NO_FATAL_FAILURE(expectReleasedFailure(*reader));
  EXPECT_FALSE(two.arenas[1]->doneReached(0, 1)) << "released, not done";
}

// Parts below kShmSingleCopyPartBytes go through the slots (the part's bytes in the slot).
TEST(ShmSingleCopy, SmallAllGatherPartsStayInTheSlots) {
  SKIP_WITHOUT_SINGLE_COPY();
  TwoRanks two;
  ASSERT_NO_FATAL_FAILURE(two.setUp());
  std::vector<float> in(kShmSingleCopyPartBytes / sizeof(float) - 1, 3.0f), out(2 * in.size());
  CollectiveArgs args;
  args.sendbuff = in.data();
  args.recvbuff = out.data();
  args.count = in.size();
  args.type = ftcclFloat32;
  std::unique_ptr<Collective> op = makeShmAllGather(*two.arenas[0], args, &two.nextSeq[0]);
  bool done = false;
  ASSERT_TRUE(op->progress(&done).isOk());
  const size_t first = std::min(in.size(), two.arenas[0]->slotBytes() / sizeof(float));
  EXPECT_EQ(std::memcmp(two.arenas[0]->slot(0, 1), in.data(), first * sizeof(float)), 0);
}

// Reduce-scatter parts outside kShmSingleCopyReducePartBytes..kShmSingleCopyReduceMaxPartBytes
// go through the slots (no address published), those inside do not.
TEST(ShmSingleCopy, ReduceScatterPartsOutsideTheRangeStayInTheSlots) {
  SKIP_WITHOUT_SINGLE_COPY();
  const size_t lo = kShmSingleCopyReducePartBytes / sizeof(float);
  const size_t hi = kShmSingleCopyReduceMaxPartBytes / sizeof(float);
  for (size_t count : {lo - 1, lo, hi, hi + 1}) {
    SCOPED_TRACE(std::to_string(count) + " floats per part");
    TwoRanks two;
    ASSERT_NO_FATAL_FAILURE(two.setUp());
    std::vector<float> in(2 * count, 3.0f), out(count);
    CollectiveArgs args;
    args.sendbuff = in.data();
    args.recvbuff = out.data();
    args.count = count;
    args.type = ftcclFloat32;
    std::unique_ptr<Collective> op = makeShmReduceScatter(*two.arenas[0], args, &two.nextSeq[0]);
    bool done = false;
    ASSERT_TRUE(op->progress(&done).isOk());
    uint64_t published = 0;
    std::memcpy(&published, two.arenas[0]->slot(0, 1), sizeof(published));
    EXPECT_EQ(published == reinterpret_cast<uintptr_t>(in.data()), count == lo || count == hi);
  }
}

// Below kShmSingleCopyBytes and above kShmSingleCopyMaxBytes a broadcast goes through
// the slots, and an aborted root releases nothing (nobody reads its buffer).
class ShmSingleCopyBounds : public ::testing::TestWithParam<size_t> {};

TEST_P(ShmSingleCopyBounds, BroadcastsOutsideThemStayInTheSlots) {
  SKIP_WITHOUT_SINGLE_COPY();
  TwoRanks two;
  ASSERT_NO_FATAL_FAILURE(two.setUp());
  std::vector<float> in(GetParam() / sizeof(float), 3.0f);
  CollectiveArgs root;
  root.sendbuff = root.recvbuff = in.data();
  root.count = in.size();
  root.type = ftcclFloat32;
  std::unique_ptr<Collective> rootOp = makeShmBroadcast(*two.arenas[0], root, &two.nextSeq[0]);
  bool done = false;
  ASSERT_TRUE(rootOp->progress(&done).isOk());
  const size_t first = std::min(in.size(), two.arenas[0]->slotBytes() / sizeof(float));
  EXPECT_EQ(std::memcmp(two.arenas[0]->slot(0, 1), in.data(), first * sizeof(float)), 0);
  rootOp->abort();
  EXPECT_FALSE(two.arenas[1]->doneReached(0, 1)) << "only a single-copy root releases";
}

INSTANTIATE_TEST_SUITE_P(Sizes, ShmSingleCopyBounds,
                         ::testing::Values(kShmSingleCopyBytes - sizeof(float),
                                           kShmSingleCopyMaxBytes + sizeof(float)));

}  // namespace
}  // namespace shm_test
}  // namespace ftccl
