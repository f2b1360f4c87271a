#include "core/op_driver.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "util/log.h"

namespace ftccl {
namespace {

using Clock = std::chrono::steady_clock;

// How long an idle op spins before sleeping on the worker's event fd. With a core per
// rank, spinning keeps small-message latency near the wire's; with more ranks than
// cores on this host, a spinning rank steals the CPU its peer needs to answer, so it
// sleeps almost at once (the wakeup costs a few us; a stolen time slice costs ms).
constexpr auto kSpinWithCoreEach = std::chrono::microseconds(200);
constexpr auto kSpinOversubscribed = std::chrono::microseconds(5);
// A wait on a peer's flag in shared memory spins longer, yielding the core at every
// round when ranks outnumber cores: the peer it waits for then runs at once, where a
// futex sleep costs a wake-up. Measured at 4 ranks on 2 cores (shm all-reduce, 8 B):
// 10-12 us sleeping after 5 us, 2.6-4 us yielding for up to 1 ms.
constexpr auto kSpinSharedMemory = std::chrono::microseconds(1000);
// With a core per rank, a memory wait spins this long, then sleeps on the peer's flag
// (its publish wakes it). The peer may not be running: another process took its core
// (a busy neighbour), and only a core this rank gives up runs it. Spinning 1 ms, then
// sleeping, 2 ranks beside one busy process on 2 cores took ~200 us per 12.5 KiB op
// instead of 6 us (a chaos job ran past its 35 s bound); yielding instead (b6ef6d0)
// handed the core to any runnable process, a niced one too, on every round of a long
// wait: a 16 MiB all-reduce took 3x as long beside a nice-19 job. A sleeper is woken
// by the publish and preempts such a job at once; 50 us is past a healthy small op's
// wait, and near a large op's chunk.
constexpr auto kSpinBeforeSleep = std::chrono::microseconds(50);
// Sleeps are bounded so abort and timeouts are seen even if no event arrives.
constexpr int kSleepSliceMs = 1;
// A worker that always reports activity (a retired peer's endpoint retrying) must not
// starve the timeout: it is checked every kBusyCheckRounds busy rounds too.
constexpr uint64_t kBusyCheckRounds = 4096;
// Idle rounds: yield the core every kYieldEvery, look at the clock every kClockEvery.
constexpr unsigned kYieldEvery = 32;
constexpr unsigned kClockEvery = 64;

// The cores this host's ranks can run on. A process bound to fewer CPUs than the host
// has was bound by its launcher (mpirun binds each of 2 ranks to a core of its own), and
// its peers are taken to be bound alike, to other cores while there are some: counting
// only its own mask, 2 ranks bound on 2 cores looked oversubscribed, slept after 5 us in
// every wait and measured a 40 us latency at init in half the runs.
int hostCores(int localRanks) {
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) != 0)
    return online > 0 ? static_cast<int>(online) : 1;
  const long mine = CPU_COUNT(&set);
  if (online <= mine) return static_cast<int>(mine);
  return static_cast<int>(std::min(online, mine * std::max(1, localRanks)));
}

std::string describeRanks(const std::vector<int>& ranks) {
  if (ranks.empty()) return "no rank (local progress stalled)";
  std::string text = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) text += (i ? "," : "") + std::to_string(ranks[i]);
  return text;
}

}  // namespace

void OpDriver::chooseSpin(int localRanks) {
  int cores = hostCores(localRanks);
  oversubscribed_ = localRanks > cores;
  spinBudget_ = oversubscribed_ ? kSpinOversubscribed : kSpinWithCoreEach;
  FTCCL_LOG(Info, Init, "{} ranks on this host, {} cores: spin {} us before sleeping", localRanks,
            cores, spinBudget_.count());
}

int OpDriver::internalOpTimeoutMs() const {
  // Unset, an op may take many failure timeouts: the health thread, not this bound,
  // is what notices a dead peer; this only ends a wait nothing else would.
  constexpr int kFailureTimeoutsPerOp = 10;
  return limits_.opTimeoutMs > 0 ? limits_.opTimeoutMs
                                 : kFailureTimeoutsPerOp * limits_.failureTimeoutMs;
}

Status OpDriver::revokedError(const std::string& what) const {
  return Status(revocation_.error(), what + ": " + revocation_.reason());
}

Status OpDriver::drive(Transport& transport, Collective& op, const Describe& what,
                       Clock::time_point started, int timeoutMs) {
  if (timeoutMs < 0) timeoutMs = limits_.opTimeoutMs;
  // The clock is read only where a decision needs it (~20 ns a read in a VM, a good part
  // of a small shared-memory op): progress marks the activity, the next read dates it,
  // and an op started undated is dated by its first read.
  auto lastActivity = started;
  bool activityUndated = started == Clock::time_point{};
  firstClockRead_ = {};
  auto now = [&] {
    const auto t = Clock::now();
    if (activityUndated) lastActivity = t;
    activityUndated = false;
    if (firstClockRead_ == Clock::time_point{}) firstClockRead_ = t;
    return t;
  };
  Clock::time_point spinStart;
  bool spinTimed = false;  // spinStart is set
  uint64_t lastMark = op.progressMark();
  unsigned idleRounds = 0;
  bool memoryWait = false;
  uint64_t busyRounds = 0;
  auto timedOut = [&] {
    if (timeoutMs <= 0) return false;
    const auto t = now();  // first: it may date lastActivity (operands are unsequenced)
    return t - lastActivity > std::chrono::milliseconds(timeoutMs);
  };
  for (;;) {
    if (revocation_.aborted()) {
      op.abort();
      return invalidUsage(what() + ": the communicator was aborted");
    }
    if (revocation_.revoked()) {
      hooks_.logMidTransfer();
      op.abort();  // cancels posted receives: nothing waits on a dead peer
      return revokedError(what());
    }
    bool done = false;
    Status st = op.progress(&done);
    if (!st.isOk() && st.code() == ftcclInvalidUsage) return failDisagreement(op, what, st);
    if (!st.isOk()) {
      hooks_.logMidTransfer();
      op.abort();
      // A transfer that fails (UCX I/O error) almost always means a peer died: health
      // names it within its failure timeout, and its diagnosis is the recoverable one
      // (ftcclRemoteError, agreement under way). Only without one is UCX's error final.
      if (awaitHealthVerdict()) {
        Status revoked = revokedError(what());
        return Status(revoked.code(),
                      revoked.message() + " (the transfer failed: " + st.message() + ")");
      }
      Status failed(st.code(), what() + ": " + st.message());
      hooks_.revoke(failed);
      return failed;
    }
    if (done) return Status::ok();
    if (op.progressMark() != lastMark) {  // only this op's own progress defers its timeout
      lastMark = op.progressMark();
      activityUndated = true;
      idleRounds = 0;      // each wait gets its own spin
      memoryWait = false;  // the next step may wait on the transport: look again
      if (board_) board_->step(lastMark);
    }
    // A wait in shared memory polls the transport (nothing of this op's) only at clock
    // reads: a UCX progress call costs more than a look at a flag.
    const bool pollTransport = !memoryWait || (idleRounds % kClockEvery) == 0;
    if (pollTransport && transport.progress()) {
      idleRounds = 0;
      if ((++busyRounds % kBusyCheckRounds) != 0 || !timedOut()) continue;
    } else {
      if (idleRounds++ == 0) {
        memoryWait = op.waitForPeers(0);  // returns at once: does it wait in shared memory?
        spinTimed = !memoryWait;          // a memory wait dates its spin at its first clock read
        if (spinTimed) spinStart = now();
      }
      // A memory wait with a core per rank never yields: the peer it waits for is running
      // or, past kSpinBeforeSleep, gets this core while this rank sleeps; a syscall per 32
      // looks cost a small op a third of its time.
      const bool yieldNow = memoryWait ? oversubscribed_ : (idleRounds % kYieldEvery) == 0;
      if (yieldNow) sched_yield();
      // Yielding costs far more than the clock: then it is read every round.
      if (!yieldNow && (idleRounds % kClockEvery) != 0) continue;
      const auto t = now();
      if (!spinTimed) {
        spinStart = t;
        spinTimed = true;
      }
      const auto budget = !memoryWait       ? spinBudget_
                          : oversubscribed_ ? kSpinSharedMemory
                                            : kSpinBeforeSleep;
      if (t - spinStart < budget) continue;
      Status mismatch = transport.findMismatchedMessage();
      if (!mismatch.isOk()) return failDisagreement(op, what, mismatch);
    }
    if (timedOut()) {
      std::string waitingFor = describeRanks(op.pendingPeers());  // before abort clears them
      op.abort();
      Status failed = timeoutError(what() + ": no progress for " + std::to_string(timeoutMs) +
                                   " ms; waiting for " + waitingFor + ". " + hooks_.diagnoseHang());
      hooks_.revoke(failed);
      return failed;
    }
    if (op.waitForPeers(kSleepSliceMs * 1000)) continue;  // a flag in shared memory
    Status waited = transport.waitForActivity(kSleepSliceMs);
    if (!waited.isOk()) {
      op.abort();
      hooks_.revoke(waited);
      return waited;
    }
    if (transport.progress()) idleRounds = 0;
  }
}

// The ranks disagree on the op (a count or a type differs): nobody failed, so waiting
// for health would only delay the error. The peers' ops are left to their own checks
// and timeouts.
Status OpDriver::failDisagreement(Collective& op, const Describe& what, const Status& cause) {
  op.abort();
  Status failed(cause.code(), what() + ": " + cause.message());
  hooks_.revoke(failed);
  return failed;
}

bool OpDriver::awaitHealthVerdict() const {
  auto deadline = Clock::now() +
                  std::chrono::milliseconds(limits_.failureTimeoutMs + 4 * limits_.probeIntervalMs);
  while (Clock::now() < deadline && !revocation_.aborted()) {
    if (revocation_.revoked()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return revocation_.revoked();
}

}  // namespace ftccl
