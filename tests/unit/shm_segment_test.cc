// The shared-memory segment and its flags (transports/shm/node_segment.h): the layout's
// arithmetic for every rank count, then real processes: a forked child maps the fd it
// inherited (by number, as after fd passing), ping-pongs on the flags, dies while its
// peer waits on it, and leaves no file and no fd behind. No timing asserts beyond
// seconds-long bounds: the machine may be oversubscribed.
#include <dirent.h>
#include <fcntl.h>
#include <linux/mempolicy.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "transports/shm/node_segment.h"

namespace ftccl {
namespace shm {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

static_assert(!std::is_copy_constructible<NodeSegment>::value, "move-only");
static_assert(std::is_nothrow_move_constructible<NodeSegment>::value, "movable");
static_assert(seqReached(5, 5) && seqReached(6, 5) && !seqReached(4, 5), "plain order");
static_assert(seqReached(0, 0xffffffffu) && !seqReached(0xffffffffu, 0), "wraps around");
static_assert(seqReached(0x7fffffffu, 0) && !seqReached(0x80000000u, 0), "half the range");

// A forked child running `body`, whose return value is its exit status. The destructor
// kills and reaps it, so a failing test never leaves one behind; it also dies with us.
class Child {
 public:
  explicit Child(const std::function<int()>& body) {
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(100);
      _exit(body());  // no atexit handlers of the test runner in the child
    }
  }
  ~Child() { killAndReap(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  bool started() const { return pid_ > 0; }
  // Waits for the child; its wait status.
  int wait() {
    if (pid_ > 0) reap(0);
    return status_;
  }
  void killAndReap() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    reap(0);
  }
  // Whether the child has ended (without blocking).
  bool ended() { return pid_ <= 0 || reap(WNOHANG); }

 private:
  bool reap(int flags) {
    pid_t got;
    do {
      got = waitpid(pid_, &status_, flags);
    } while (got < 0 && errno == EINTR);
    if (got == 0) return false;
    pid_ = -1;
    return true;
  }

  pid_t pid_ = -1;
  int status_ = -1;
};

bool exitedWith(int status, int code) { return WIFEXITED(status) && WEXITSTATUS(status) == code; }

NodeLayout layoutOf(int localSize, size_t slotBytes = 8192, int slots = 2, uint32_t epoch = 7) {
  NodeLayout layout;
  Status status = NodeLayout::make(localSize, slotBytes, slots, epoch, &layout);
  EXPECT_TRUE(status.isOk()) << status.message();
  return layout;
}

std::vector<std::string> listDir(const char* path) {
  std::vector<std::string> names;
  if (DIR* dir = opendir(path)) {
    while (dirent* entry = readdir(dir)) names.emplace_back(entry->d_name);
    closedir(dir);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Sleeps on `flag` in 1 ms steps until it reaches `want`; fails if `child` ended without
// publishing it, or after a minute.
::testing::AssertionResult awaitFlag(SeqFlag flag, uint32_t want, Child* child) {
  const Clock::time_point deadline = Clock::now() + seconds(60);
  while (!flag.sleepUntil(want, milliseconds(1))) {
    if (child->ended() && !flag.reached(want)) {
      return ::testing::AssertionFailure() << "the child ended first, status " << child->wait();
    }
    if (Clock::now() > deadline) return ::testing::AssertionFailure() << "no flag in 60 s";
  }
  return ::testing::AssertionSuccess();
}

// Two local ranks: this process creates the segment; children map it.
class ShmPair : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(NodeSegment::create(layout_, &segment_).isOk()); }

  // A child's body: maps the segment from the fd number alone, as a receiver would after
  // fd passing, and runs `body` on that mapping (exit status 10 if mapping fails).
  std::function<int()> mapped(std::function<int(NodeSegment&)> body) const {
    return [fd = segment_.fd(), layout = layout_, body] {
      NodeSegment mine;
      if (!NodeSegment::map(fd, layout, &mine).isOk()) return 10;
      return body(mine);
    };
  }

  const NodeLayout layout_ = layoutOf(2, 3 * 4096 + 5);
  NodeSegment segment_;
};

TEST(ShmLayout, OffsetsAlignedAndDisjointForEveryRankCount) {
  for (int n = 1; n <= kMaxLocalRanks; ++n) {
    for (size_t slotBytes : {size_t{1}, size_t{4096}, size_t{4097}, kDefaultSlotBytes}) {
      for (int slots = 1; slots <= kMaxSlotsPerRank; slots *= 2) {
        NodeLayout layout = layoutOf(n, slotBytes, slots);
        ASSERT_EQ(layout.totalBytes(), segmentBytesPerNode(n, slotBytes, slots));
        ASSERT_EQ(layout.slotBytes() % kSlotAlign, 0u);
        ASSERT_GE(layout.slotBytes(), slotBytes);
        std::vector<std::pair<size_t, size_t>> spans = {{0, sizeof(SegmentHeader)}};
        for (int r = 0; r < n; ++r) {
          std::vector<size_t> lines = {layout.readyOffset(r), layout.doneOffset(r)};
          for (int parity = 0; parity < 2; ++parity) {
            for (int l = 0; l < kMessageLines; ++l)
              lines.push_back(layout.lineOffset(r, parity, l));
          }
          for (size_t line : lines) {
            ASSERT_EQ(line % kCacheLine, 0u) << n << " ranks, rank " << r;
            ASSERT_LE(line + kCacheLine, segmentMetaBytes(n));
            spans.emplace_back(line, line + kCacheLine);
          }
          for (int s = 0; s < slots; ++s) {
            const size_t offset = layout.slotOffset(r, s);
            ASSERT_EQ(offset % kSlotAlign, 0u) << n << " ranks, rank " << r << " slot " << s;
            spans.emplace_back(offset, offset + layout.slotBytes());
          }
        }
        std::sort(spans.begin(), spans.end());
        for (size_t i = 1; i < spans.size(); ++i) {
          ASSERT_LE(spans[i - 1].second, spans[i].first) << n << " ranks: overlap";
        }
        ASSERT_LE(spans.back().second, layout.totalBytes());
      }
    }
  }
}

TEST(ShmLayout, RefusesWhatIsOutOfBounds) {
  NodeLayout layout;
  EXPECT_FALSE(NodeLayout::make(0, 4096, 2, 0, &layout).isOk());
  EXPECT_FALSE(NodeLayout::make(kMaxLocalRanks + 1, 4096, 2, 0, &layout).isOk());
  EXPECT_FALSE(NodeLayout::make(2, 0, 2, 0, &layout).isOk());
  EXPECT_FALSE(NodeLayout::make(2, kMaxSlotBytes + 1, 2, 0, &layout).isOk());
  EXPECT_FALSE(NodeLayout::make(2, 4096, 0, 0, &layout).isOk());
  EXPECT_FALSE(NodeLayout::make(2, 4096, kMaxSlotsPerRank + 1, 0, &layout).isOk());
  EXPECT_FALSE(NodeLayout::make(2, 4096, 3, 0, &layout).isOk());  // does not divide 2^32
  // Each value within its own bound, the whole beyond kMaxSegmentBytes.
  Status big = NodeLayout::make(kMaxLocalRanks, kMaxSlotBytes, kMaxSlotsPerRank, 0, &layout);
  EXPECT_FALSE(big.isOk());
  EXPECT_NE(big.message().find("bound"), std::string::npos) << big.message();
  EXPECT_TRUE(NodeLayout::make(kMaxLocalRanks, kMaxSlotBytes, 1, 0, &layout).isOk() ==
              (segmentBytesPerNode(kMaxLocalRanks, kMaxSlotBytes, 1) <= kMaxSegmentBytes));
  NodeSegment segment;
  EXPECT_FALSE(NodeSegment::create(NodeLayout(), &segment).isOk());  // never made
  EXPECT_FALSE(NodeSegment::map(0, NodeLayout(), &segment).isOk());
}

TEST_F(ShmPair, ForkedChildSeesTheCreatorsBytesAndViceVersa) {
  const size_t n = layout_.slotBytes();
  for (size_t i = 0; i < n; ++i) segment_.slot(0, 1)[i] = static_cast<uint8_t>(i * 7 + 1);
  Child child(mapped([n](NodeSegment& mine) {
    for (size_t i = 0; i < n; ++i) {
      if (mine.slot(0, 1)[i] != static_cast<uint8_t>(i * 7 + 1)) return 11;
      mine.slot(1, 0)[i] = static_cast<uint8_t>(i * 3 + 2);
    }
    mine.ready(1).publish(1);
    return 0;
  }));
  ASSERT_TRUE(child.started());
  ASSERT_TRUE(awaitFlag(segment_.ready(1), 1, &child));
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(segment_.slot(1, 0)[i], static_cast<uint8_t>(i * 3 + 2)) << i;
  }
  EXPECT_TRUE(exitedWith(child.wait(), 0));
}

// 20,000 rounds, each waiter sleeping with a long timeout: a lost wake-up would show as a
// call that ran into its full timeout. Early false returns are legitimate: a publisher's
// FUTEX_WAKE delayed past its peer's next wait wakes that wait for nothing.
TEST_F(ShmPair, PingPongNeverLosesAWakeUp) {
  constexpr uint32_t kRounds = 20000;
  constexpr auto kSleep = std::chrono::microseconds(seconds(5));
  struct Stats {
    uint32_t badSeq = 0, early = 0;
  };
  // Waits for `flag` to reach exactly `want`; false at the first call that ran into its
  // timeout (so a lost wake-up fails the test in seconds, not at ctest's timeout).
  auto await = [kSleep](SeqFlag flag, uint32_t want, Stats* stats) {
    for (;;) {
      const Clock::time_point start = Clock::now();
      if (flag.sleepUntil(want, kSleep)) {
        if (flag.load() != want) ++stats->badSeq;
        return true;
      }
      if (Clock::now() - start >= kSleep) return false;
      ++stats->early;
    }
  };
  Child child(mapped([await](NodeSegment& mine) {
    Stats stats;
    for (uint32_t i = 1; i <= kRounds; ++i) {
      if (!await(mine.ready(0), i, &stats)) return 11;
      mine.ready(1).publish(i);
    }
    std::memcpy(mine.slot(1, 0), &stats, sizeof(stats));  // for the parent to check
    mine.done(1).publish(1);
    return 0;
  }));
  ASSERT_TRUE(child.started());
  Stats stats;
  for (uint32_t i = 1; i <= kRounds; ++i) {
    segment_.ready(0).publish(i);
    ASSERT_TRUE(await(segment_.ready(1), i, &stats)) << "round " << i << ": a wake-up lost?";
  }
  ASSERT_TRUE(await(segment_.done(1), 1, &stats));
  Stats childStats;
  std::memcpy(&childStats, segment_.slot(1, 0), sizeof(childStats));
  EXPECT_EQ(stats.badSeq + childStats.badSeq, 0u);
  EXPECT_TRUE(exitedWith(child.wait(), 0));
  std::printf("[ info     ] %u rounds; early false returns: parent %u, child %u\n", kRounds,
              stats.early, childStats.early);
}

// The writer dies while the survivor sleeps on its flag: every sleepUntil returns false,
// promptly, for as long as the survivor keeps asking; the mapping stays valid.
TEST_F(ShmPair, WaiterSurvivesAWriterKilledWhileItSleeps) {
  Child child(mapped([](NodeSegment& mine) {
    mine.ready(1).publish(1);
    usleep(20000);  // the parent is asleep on flag 2 by now (or soon): die there
    raise(SIGKILL);
    return 11;
  }));
  ASSERT_TRUE(child.started());
  ASSERT_TRUE(awaitFlag(segment_.ready(1), 1, &child));
  const Clock::time_point deadline = Clock::now() + seconds(60);
  int afterDeath = 0;
  while (afterDeath < 50) {
    ASSERT_FALSE(segment_.ready(1).sleepUntil(2, milliseconds(1)));
    if (child.ended()) ++afterDeath;
    ASSERT_LT(Clock::now(), deadline) << "the child never died";
  }
  EXPECT_EQ(segment_.ready(1).load(), 1u);
  int status = child.wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

// A sleeper killed inside FUTEX_WAIT leaves the waiter count up: later publishes make a
// needless wake-up and stay correct.
TEST_F(ShmPair, PublishSurvivesASleeperKilledWhileRegistered) {
  Child child(mapped([](NodeSegment& mine) {
    for (;;) mine.ready(0).sleepUntil(1, seconds(60));
    return 11;
  }));
  ASSERT_TRUE(child.started());
  const Clock::time_point deadline = Clock::now() + seconds(60);
  while (segment_.ready(0).waiters() == 0) {
    ASSERT_FALSE(child.ended()) << "the child failed to map";
    ASSERT_LT(Clock::now(), deadline);
    usleep(1000);
  }
  child.killAndReap();
  EXPECT_EQ(segment_.ready(0).waiters(), 1u);
  segment_.ready(0).publish(1);
  EXPECT_TRUE(segment_.ready(0).reached(1));
  EXPECT_TRUE(segment_.ready(0).sleepUntil(1, milliseconds(1)));
}

TEST_F(ShmPair, MapRefusesAForeignOrMismatchedSegment) {
  const NodeLayout& layout = layout_;
  const int fd = segment_.fd();
  NodeSegment other;
  ASSERT_TRUE(NodeSegment::map(fd, layout, &other).isOk());  // the control
  other = NodeSegment();
  Status wrongSize = NodeSegment::map(fd, layoutOf(3, layout.slotBytes()), &other);
  EXPECT_FALSE(wrongSize.isOk());
  EXPECT_NE(wrongSize.message().find("bytes"), std::string::npos) << wrongSize.message();
  const NodeLayout nextEpoch = layoutOf(2, layout.slotBytes(), 2, layout.epoch() + 1);
  EXPECT_FALSE(NodeSegment::map(fd, nextEpoch, &other).isOk());
  auto* header = reinterpret_cast<SegmentHeader*>(segment_.base());
  header->magic ^= 1;
  EXPECT_FALSE(NodeSegment::map(fd, layout, &other).isOk());
  header->magic ^= 1;
  header->version = kSegmentVersion + 1;
  EXPECT_FALSE(NodeSegment::map(fd, layout, &other).isOk());
  header->version = kSegmentVersion;
  EXPECT_FALSE(other.valid());

  EXPECT_FALSE(NodeSegment::map(-1, layout, &other).isOk());
  int pipeFds[2];
  ASSERT_EQ(pipe2(pipeFds, O_CLOEXEC), 0);
  EXPECT_FALSE(NodeSegment::map(pipeFds[0], layout, &other).isOk());
  close(pipeFds[0]);
  close(pipeFds[1]);
  // The right size, but resizable: a truncation could SIGBUS every mapper.
  int loose = memfd_create("loose", MFD_CLOEXEC);
  ASSERT_GE(loose, 0);
  ASSERT_EQ(ftruncate(loose, static_cast<off_t>(layout.totalBytes())), 0);
  EXPECT_FALSE(NodeSegment::map(loose, layout, &other).isOk());
  close(loose);
  // Sealed but beyond the bound (sparse: nothing is allocated).
  int huge = memfd_create("huge", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  ASSERT_GE(huge, 0);
  ASSERT_EQ(ftruncate(huge, static_cast<off_t>(kMaxSegmentBytes + 4096)), 0);
  ASSERT_EQ(fcntl(huge, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
  Status tooBig = NodeSegment::map(huge, layout, &other);
  EXPECT_FALSE(tooBig.isOk());
  EXPECT_NE(tooBig.message().find("bound"), std::string::npos) << tooBig.message();
  close(huge);
  EXPECT_FALSE(other.valid());
}

// Even a creator SIGKILLed with its segment mapped leaves no name in /dev/shm, and
// every descriptor a segment opened is closed with it.
TEST(ShmSegment, LeavesNoFileAndNoDescriptor) {
  const std::vector<std::string> shmBefore = listDir("/dev/shm");
  const size_t fdsBefore = listDir("/proc/self/fd").size();
  {
    const NodeLayout layout = layoutOf(4, kDefaultSlotBytes);
    NodeSegment a, b;
    ASSERT_TRUE(NodeSegment::create(layout, &a).isOk());
    ASSERT_TRUE(NodeSegment::map(a.fd(), layout, &b).isOk());
    NodeSegment c(std::move(b));
    b = std::move(c);
    a = NodeSegment();
    b.slot(3, 1)[0] = 1;          // still mapped although the creator's object is gone
    SeqFlag created = b.done(0);  // the child inherits b's mapping
    Child creator([layout, created]() mutable {
      NodeSegment mine;
      if (!NodeSegment::create(layout, &mine).isOk()) return 10;
      created.publish(1);
      pause();
      return 11;
    });
    ASSERT_TRUE(creator.started());
    ASSERT_TRUE(awaitFlag(created, 1, &creator));
  }
  EXPECT_EQ(listDir("/proc/self/fd").size(), fdsBefore);
  // Only names of ours count: other tests beside this one may use /dev/shm.
  auto ours = [](std::vector<std::string> names) {
    names.erase(
        std::remove_if(names.begin(), names.end(),
                       [](const std::string& n) { return n.find("ftccl") == std::string::npos; }),
        names.end());
    return names;
  };
  EXPECT_EQ(ours(listDir("/dev/shm")), ours(shmBefore));
}

// The policy of the page at `address` (MPOL_*) and, for MPOL_PREFERRED, its node; or
// false when this kernel has no NUMA policies at all.
bool policyAt(const void* address, int* mode, int* node) {
  unsigned long mask[16] = {};
  if (syscall(SYS_get_mempolicy, mode, mask, 16 * 64 + 1, address, MPOL_F_ADDR) != 0) return false;
  *node = -1;
  for (int n = 0; n < 16 * 64; ++n) {
    if (mask[n / 64] & (1ul << (n % 64))) {
      *node = n;
      break;
    }
  }
  return true;
}

// The first NUMA node this process may allocate on (its cpuset's), or -1.
int allowedNode() {
  unsigned long mask[16] = {};
  if (syscall(SYS_get_mempolicy, nullptr, mask, 16 * 64 + 1, nullptr, MPOL_F_MEMS_ALLOWED) != 0) {
    return -1;
  }
  for (int n = 0; n < 16 * 64; ++n) {
    if (mask[n / 64] & (1ul << (n % 64))) return n;
  }
  return -1;
}

// Each rank's slots prefer the NUMA node asked for (one this process may use), in every
// mapping, since the policy belongs to the file's pages; -1 leaves the kernel's default;
// a node that does not exist is reported, and the segment works.
TEST(ShmSegment, PlacesEachRanksSlotsOnItsNumaNode) {
  int mode = 0, node = 0;
  if (!policyAt(&mode, &mode, &node)) GTEST_SKIP() << "no NUMA policies in this kernel";
  const int allowed = allowedNode();
  ASSERT_GE(allowed, 0) << "no NUMA node allowed to this process";
  const NodeLayout layout = layoutOf(3, 3 * 4096);
  NodeSegment segment;
  ASSERT_TRUE(NodeSegment::create(layout, &segment, {allowed, -1, allowed}).isOk());
  EXPECT_EQ(segment.placementProblem(), "");
  NodeSegment mapped;
  ASSERT_TRUE(NodeSegment::map(segment.fd(), layout, &mapped).isOk());
  for (const NodeSegment* view : {&segment, &mapped}) {
    for (int r = 0; r < 3; ++r) {
      for (int slot = 0; slot < 2; ++slot) {
        for (size_t page = 0; page < 3; ++page) {
          ASSERT_TRUE(policyAt(view->slot(r, slot) + page * 4096, &mode, &node));
          if (r == 1) {
            EXPECT_EQ(mode, MPOL_DEFAULT) << "rank " << r << " slot " << slot;
          } else {
            EXPECT_EQ(mode, MPOL_PREFERRED) << "rank " << r << " slot " << slot;
            EXPECT_EQ(node, allowed) << "rank " << r << " slot " << slot;
          }
        }
      }
    }
  }
  ASSERT_TRUE(policyAt(segment.base(), &mode, &node));
  EXPECT_EQ(mode, MPOL_DEFAULT) << "the control blocks are shared between ranks";

  NodeSegment elsewhere;
  ASSERT_TRUE(NodeSegment::create(layout, &elsewhere, {1000, allowed, allowed}).isOk());
  EXPECT_NE(elsewhere.placementProblem().find("local rank 0's slots on NUMA node 1000"),
            std::string::npos)
      << elsewhere.placementProblem();
  elsewhere.ready(0).publish(3);
  EXPECT_TRUE(elsewhere.ready(0).reached(3));
}

}  // namespace
}  // namespace shm
}  // namespace ftccl
