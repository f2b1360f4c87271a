#include "launcher/job.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <memory>
#include <unordered_map>

#include "launcher/control.h"
#include "launcher/output.h"
#include "launcher/process.h"
#include "launcher/shm_cleanup.h"

namespace ftrun {
namespace {

// Where UCX keeps POSIX shared memory; FTCCL_RUN_SHM_DIR points the launcher's cleanup
// elsewhere (its test).
std::string shmDir() {
  const char* dir = std::getenv("FTCCL_RUN_SHM_DIR");
  return dir != nullptr && *dir != '\0' ? dir : "/dev/shm";
}

constexpr int kExitTimeout = 124;
constexpr int kExitLauncherFailed = 125;
// How long the final cleanup may take; SIGKILLed processes normally go in milliseconds.
constexpr double kCleanupSeconds = 10;
// While orphaned descendants remain, how often to look for more of them.
constexpr int kCleanupRescanMs = 20;

using Clock = std::chrono::steady_clock;

struct InjectedFault {
  FaultKind kind;
  double seconds;  // when it was actually sent
};

// Why ftccl_run killed a rank itself (faults on purpose are InjectedFaults instead).
enum class ForcedKill { None, OthersDone, Timeout, Interrupt, LauncherFailed };

struct Rank {
  int index = 0;
  pid_t pid = -1;  // -1: never started. Also the id of its process group.
  bool reaped = false;
  int waitStatus = 0;  // valid once reaped
  std::vector<InjectedFault> faults;
  ForcedKill forced = ForcedKill::None;
  std::unique_ptr<LineForwarder> out;
  std::unique_ptr<LineForwarder> err;

  bool running() const { return pid > 0 && !reaped; }
  // A rank faulted on purpose: its own fate does not decide the exit status.
  bool victim() const { return !faults.empty(); }
  bool killedOnPurpose() const {
    for (const InjectedFault& f : faults) {
      if (f.kind == FaultKind::Kill) return true;
    }
    return false;
  }
};

// Exit code, or 128+signal like a shell reports it.
int statusCode(int waitStatus) {
  if (WIFEXITED(waitStatus)) return WEXITSTATUS(waitStatus);
  if (WIFSIGNALED(waitStatus)) return 128 + WTERMSIG(waitStatus);
  return 0;
}

std::string describeStatus(int waitStatus) {
  if (WIFEXITED(waitStatus)) return format("exited %d", WEXITSTATUS(waitStatus));
  int sig = WTERMSIG(waitStatus);
  return format("died of signal %d (%s%s)", sig, signalName(sig).c_str(),
                WCOREDUMP(waitStatus) ? ", core dumped" : "");
}

const char* faultPastTense(FaultKind kind) {
  switch (kind) {
    case FaultKind::Kill:
      return "killed";
    case FaultKind::Stop:
      return "stopped";
    case FaultKind::Drop:
      return "dropped";
    case FaultKind::Resume:
      return "resumed";
  }
  return "?";
}

// A descriptor 0-2 that is closed would be reused by our pipes or signalfd, and a rank's
// dup2 onto 1 or 2 could then hit its own pipe end.
void ensureStandardFds() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) == -1 && errno == EBADF) ::open("/dev/null", O_RDWR);
  }
}

class Job {
 public:
  explicit Job(const Options& opts) : opts_(opts), faults_(opts.faults) {
    // Faults are injected in time order; equal times keep command-line order.
    std::stable_sort(faults_.begin(), faults_.end(),
                     [](const Fault& a, const Fault& b) { return a.seconds < b.seconds; });
    ranks_.resize(static_cast<size_t>(opts.nranks));
    for (int r = 0; r < opts.nranks; ++r) ranks_[r].index = r;
  }

  int run();
  void emergencyStop() noexcept;

 private:
  bool prepare();
  bool setUpSignals(std::string* error);
  void raiseFileLimit();
  bool startRanks();
  void supervise();
  void cleanUp();

  double elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  int millisUntilNextEvent(double now) const;
  void pollOnce(int timeoutMs);
  void readSignals();
  void reapExited();
  bool hasChildren() const;
  void killChildren();
  Rank* rankOf(pid_t pid);
  bool allRanksEnded() const;
  bool anyStreamOpen() const;

  void injectDueFaults(double now);
  void inject(const Fault& fault, double now);
  void injectRequested(double now);
  void reportFaultsNotInjected();
  void killVictimsOnceOthersAreDone();
  void onTimeout();
  void onInterrupt();
  void killAllRunning(ForcedKill reason);

  int exitStatus() const;
  void printSummary() const;
  std::string describeRank(const Rank& rank) const;
  std::string describeEnd(const Rank& rank) const;
  void note(const std::string& message) const {
    if (!opts_.quiet) logLine(message);
  }

  const Options& opts_;
  std::vector<Fault> faults_;  // sorted by time
  size_t nextFault_ = 0;
  std::vector<Rank> ranks_;
  std::unordered_map<pid_t, int> rankByPid_;
  JobIdentity identity_;
  ControlChannel control_;
  ChildSetup childSetup_{};
  int signalFd_ = -1;
  Clock::time_point start_ = Clock::now();
  bool supervising_ = false;
  int interruptSignal_ = 0;  // SIGINT/SIGTERM/SIGHUP received while supervising
  bool timedOut_ = false;
  bool launcherFailed_ = false;
};

int Job::run() {
  if (!prepare()) return kExitLauncherFailed;
  const std::time_t launched = std::time(nullptr) - 1;  // ctime has 1 s steps on some fs
  if (startRanks()) {
    start_ = Clock::now();  // fault times and the timeout count from here
    supervise();
  }
  cleanUp();
  if (int removed = removeOrphanedUcxSegments(shmDir(), launched)) {
    logLine("removed " + std::to_string(removed) +
            " shared-memory file(s) that killed ranks left in " + shmDir());
  }
  reportFaultsNotInjected();
  printSummary();
  return exitStatus();
}

// Everything that can fail before a rank exists, so such a failure leaves nothing behind.
bool Job::prepare() {
  ensureStandardFds();
  std::string error;
  // Orphaned grandchildren (a rank's background children, daemons that left its process
  // group) are re-parented to us instead of init, so the final cleanup can find them.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  childSetup_.launcherPid = ::getpid();
  if (!setUpSignals(&error) || !makeSecret(&identity_.secret, &error) ||
      !pickCommId(opts_.addr, &identity_.commId, &error) || !control_.open(&error)) {
    logLine("error: " + error);
    return false;
  }
  raiseFileLimit();
  return true;
}

// Signals are read from a signalfd in the poll loop instead of handlers: no async-signal
// safety to worry about, and a SIGCHLD can never be lost between a check and poll().
bool Job::setUpSignals(std::string* error) {
  // An ignored SIGCHLD would make the kernel reap the ranks and lose their status.
  ::signal(SIGCHLD, SIG_DFL);
  // A reader of our stdout going away must not kill the launcher before it cleans up.
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t handled;
  sigemptyset(&handled);
  sigaddset(&handled, SIGCHLD);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    // A signal ignored on entry stays ignored (nohup; background jobs of a script).
    struct sigaction current {};
    if (::sigaction(sig, nullptr, &current) == 0 && current.sa_handler == SIG_IGN) continue;
    sigaddset(&handled, sig);
  }
  if (::sigprocmask(SIG_BLOCK, &handled, &childSetup_.originalMask) != 0) {
    *error = std::string("sigprocmask: ") + std::strerror(errno);
    return false;
  }
  signalFd_ = ::signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signalFd_ < 0) {
    *error = std::string("signalfd: ") + std::strerror(errno);
    return false;
  }
  return true;
}

// Two pipes per rank: many ranks can exceed the usual soft limit of 1024 descriptors.
// The ranks get the original limit back.
void Job::raiseFileLimit() {
  rlim_t needed = 2 * static_cast<rlim_t>(opts_.nranks) + 64;
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= needed) return;
  childSetup_.originalNofile = limit;
  limit.rlim_cur = std::min(needed, limit.rlim_max);
  if (::setrlimit(RLIMIT_NOFILE, &limit) == 0) childSetup_.restoreNofile = true;
}

bool Job::startRanks() {
  for (Rank& rank : ranks_) {
    StartedRank started;
    std::string error;
    std::vector<std::string> env = rankEnvironment(opts_, identity_, rank.index);
    for (const std::string& var : control_.environment()) env.push_back(var);
    if (!startRank(opts_.command, env, childSetup_, &started, &error)) {
      logLine(format("error: cannot start rank %d: %s", rank.index, error.c_str()));
      launcherFailed_ = true;
      killAllRunning(ForcedKill::LauncherFailed);
      return false;
    }
    rank.pid = started.pid;
    rankByPid_[started.pid] = rank.index;
    std::string prefix = format("[%d] ", rank.index);
    rank.out = std::make_unique<LineForwarder>(started.stdoutFd, 1, prefix);
    rank.err = std::make_unique<LineForwarder>(started.stderrFd, 2, prefix);
  }
  return true;
}

// The main loop: until every rank has ended, or the timeout or a signal ends the job.
void Job::supervise() {
  supervising_ = true;
  for (;;) {
    double now = elapsed();
    injectDueFaults(now);
    if (allRanksEnded()) break;
    if (interruptSignal_ != 0) {
      onInterrupt();
      break;
    }
    if (opts_.timeoutSeconds > 0 && now >= opts_.timeoutSeconds) {
      onTimeout();
      break;
    }
    killVictimsOnceOthersAreDone();
    pollOnce(millisUntilNextEvent(now));
  }
  supervising_ = false;
}

// Kills and reaps whatever remains of the job (ranks after a timeout or signal, their
// background children, orphans that escaped their group), and forwards the last output.
void Job::cleanUp() {
  double deadline = elapsed() + kCleanupSeconds;
  for (;;) {
    reapExited();
    bool children = hasChildren();
    if (!children && !anyStreamOpen()) return;
    if (elapsed() > deadline) {
      logLine(children ? "error: some processes of the job did not die within 10 s"
                       : "warning: gave up waiting for the end of the ranks' output");
      if (children) launcherFailed_ = true;
      for (Rank& rank : ranks_) {
        if (rank.out) rank.out->close();
        if (rank.err) rank.err->close();
      }
      return;
    }
    // Re-parented orphans send no SIGCHLD until they die, so look for them again soon.
    if (children) killChildren();
    pollOnce(children ? kCleanupRescanMs : 100);
  }
}

int Job::millisUntilNextEvent(double now) const {
  double next = INFINITY;
  if (nextFault_ < faults_.size()) next = faults_[nextFault_].seconds;
  if (opts_.timeoutSeconds > 0) next = std::min(next, opts_.timeoutSeconds);
  if (std::isinf(next)) return -1;
  double ms = std::ceil((next - now) * 1000);
  return static_cast<int>(std::clamp(ms, 0.0, static_cast<double>(INT_MAX)));
}

// Waits for output, a signal or the timeout, and handles what came; never blocks on one
// rank.
void Job::pollOnce(int timeoutMs) {
  std::vector<pollfd> fds;
  std::vector<LineForwarder*> forwarders;  // parallel to fds; null for the signalfd
  fds.push_back(pollfd{signalFd_, POLLIN, 0});
  forwarders.push_back(nullptr);
  fds.push_back(pollfd{control_.readFd(), POLLIN, 0});
  forwarders.push_back(nullptr);
  for (Rank& rank : ranks_) {
    for (LineForwarder* f : {rank.out.get(), rank.err.get()}) {
      if (f == nullptr || !f->isOpen()) continue;
      fds.push_back(pollfd{f->fd(), POLLIN, 0});
      forwarders.push_back(f);
    }
  }
  if (::poll(fds.data(), fds.size(), timeoutMs) <= 0) return;
  for (size_t i = 2; i < fds.size(); ++i) {
    if (fds[i].revents != 0) forwarders[i]->readAvailable();
  }
  if (fds[1].revents != 0 && supervising_) injectRequested(elapsed());
  if (fds[0].revents != 0) readSignals();
}

void Job::readSignals() {
  signalfd_siginfo info;
  while (::read(signalFd_, &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
    int sig = static_cast<int>(info.ssi_signo);
    // SIGCHLDs merge, so reapExited() below collects every exited child whatever their
    // number. A signal during the final cleanup changes nothing: it is killing already.
    if (sig != SIGCHLD && supervising_ && interruptSignal_ == 0) interruptSignal_ = sig;
  }
  reapExited();
}

void Job::reapExited() {
  for (;;) {
    siginfo_t info;
    std::memset(&info, 0, sizeof(info));
    // WNOWAIT: look first, reap afterwards (below).
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) return;
    pid_t pid = info.si_pid;
    Rank* rank = rankOf(pid);
    // The rank is a zombie now, so its pid, which is its group's id, cannot have been
    // reused: the safe moment to kill what is left of its group (background children).
    if (rank != nullptr) killGroup(pid);
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid) return;
    if (rank != nullptr) {
      rank->reaped = true;
      rank->waitStatus = status;
    }
  }
}

bool Job::hasChildren() const {
  siginfo_t info;
  std::memset(&info, 0, sizeof(info));
  return ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0;  // else ECHILD
}

// Kills each remaining child: an unreaped rank with its group, anything else (orphans
// re-parented to us) by pid. Their own children become ours in turn, next time round.
void Job::killChildren() {
  for (pid_t pid : listOwnChildren()) {
    Rank* rank = rankOf(pid);
    if (rank != nullptr) {
      killGroup(pid);
    } else {
      ::kill(pid, SIGCONT);
      ::kill(pid, SIGKILL);
    }
  }
}

// Only unreaped ranks: once reaped, a rank's pid may belong to someone else.
Rank* Job::rankOf(pid_t pid) {
  auto it = rankByPid_.find(pid);
  if (it == rankByPid_.end() || !ranks_[it->second].running()) return nullptr;
  return &ranks_[it->second];
}

bool Job::allRanksEnded() const {
  for (const Rank& rank : ranks_) {
    if (rank.running()) return false;
  }
  return true;
}

bool Job::anyStreamOpen() const {
  for (const Rank& rank : ranks_) {
    if ((rank.out && rank.out->isOpen()) || (rank.err && rank.err->isOpen())) return true;
  }
  return false;
}

void Job::injectDueFaults(double now) {
  while (nextFault_ < faults_.size() && faults_[nextFault_].seconds <= now) {
    inject(faults_[nextFault_++], now);
  }
}

void Job::inject(const Fault& fault, double now) {
  Rank& rank = ranks_[static_cast<size_t>(fault.rank)];
  const char* what = faultName(fault.kind);
  if (!rank.running()) {
    note(format("%s on rank %d not injected: the rank had already ended", what, rank.index));
    return;
  }
  int sig = faultSignal(fault.kind);
  // A drop goes to the rank's own process, where the library's hook runs; kill and stop
  // take its whole group, as a failed node would.
  // Stamped just before: survivors measure detection from a time no later than the fault.
  if (fault.kind == FaultKind::Kill || fault.kind == FaultKind::Stop) control_.stamp(rank.pid);
  int rc = fault.kind == FaultKind::Drop ? ::kill(rank.pid, sig) : ::killpg(rank.pid, sig);
  if (rc != 0) {
    logLine(format("error: cannot inject %s on rank %d (pid %d): %s", what, rank.index,
                   static_cast<int>(rank.pid), std::strerror(errno)));
    launcherFailed_ = true;
    return;
  }
  rank.faults.push_back(InjectedFault{fault.kind, now});
  note(format("injected %s on rank %d (pid %d) at %.3f s", what, rank.index,
              static_cast<int>(rank.pid), now));
}

// A rank asked to be faulted now (--fault of the perf tools): from outside, like the
// command line's faults, and stamped alike.
void Job::injectRequested(double now) {
  for (const FaultRequest& request : control_.readRequests(opts_.nranks)) {
    note(format("rank %d asked for a %s", request.rank, faultName(request.kind)));
    inject(Fault{request.kind, request.rank, now}, now);
  }
}

void Job::reportFaultsNotInjected() {
  for (; nextFault_ < faults_.size(); ++nextFault_) {
    const Fault& fault = faults_[nextFault_];
    note(format("%s on rank %d at %.3f s not injected: the job had ended", faultName(fault.kind),
                fault.rank, fault.seconds));
  }
}

// Stopped or dropped ranks would never end on their own (or only by timing out); once
// every other rank is done they have served their purpose.
void Job::killVictimsOnceOthersAreDone() {
  for (const Rank& rank : ranks_) {
    if (rank.running() && !rank.victim()) return;
  }
  for (Rank& rank : ranks_) {
    if (rank.running() && rank.forced == ForcedKill::None) {
      rank.forced = ForcedKill::OthersDone;
      killGroup(rank.pid);
    }
  }
}

void Job::onTimeout() {
  std::string running;
  for (const Rank& rank : ranks_) {
    if (rank.running()) running += " " + std::to_string(rank.index);
  }
  logLine(format("timeout after %.3f s; ranks still running:%s; killing them", opts_.timeoutSeconds,
                 running.c_str()));
  timedOut_ = true;
  killAllRunning(ForcedKill::Timeout);
}

void Job::onInterrupt() {
  logLine(format("got %s; killing all ranks", signalName(interruptSignal_).c_str()));
  killAllRunning(ForcedKill::Interrupt);
}

void Job::killAllRunning(ForcedKill reason) {
  for (Rank& rank : ranks_) {
    if (!rank.running()) continue;
    if (rank.forced == ForcedKill::None) rank.forced = reason;
    killGroup(rank.pid);
  }
}

int Job::exitStatus() const {
  if (launcherFailed_) return kExitLauncherFailed;
  if (interruptSignal_ != 0) return 128 + interruptSignal_;
  if (timedOut_) return kExitTimeout;
  int worst = 0;
  for (const Rank& rank : ranks_) {
    if (rank.reaped && !rank.victim()) worst = std::max(worst, statusCode(rank.waitStatus));
  }
  return worst;
}

void Job::printSummary() const {
  if (opts_.quiet) return;
  for (const Rank& rank : ranks_) {
    if (rank.pid < 0) {
      logLine(format("rank %d was not started", rank.index));
    } else {
      logLine(format("rank %d (pid %d) %s", rank.index, static_cast<int>(rank.pid),
                     describeRank(rank).c_str()));
    }
  }
}

// E.g. "stopped on purpose (SIGSTOP at 1.50 s); killed at the end, ...".
std::string Job::describeRank(const Rank& rank) const {
  std::string text;
  for (const InjectedFault& fault : rank.faults) {
    if (!text.empty()) text += ", then ";
    text += format("%s on purpose (%s at %.2f s)", faultPastTense(fault.kind),
                   signalName(faultSignal(fault.kind)).c_str(), fault.seconds);
  }
  std::string end = describeEnd(rank);
  if (text.empty()) return end;
  return end.empty() ? text : text + "; " + end;
}

std::string Job::describeEnd(const Rank& rank) const {
  if (!rank.reaped) return "was still running when ftccl_run gave up";
  bool sigkilled = WIFSIGNALED(rank.waitStatus) && WTERMSIG(rank.waitStatus) == SIGKILL;
  if (sigkilled && rank.killedOnPurpose()) return "";  // the fault says it all
  if (sigkilled) {
    switch (rank.forced) {
      case ForcedKill::None:
        break;
      case ForcedKill::OthersDone:
        return "killed at the end, once the other ranks were done";
      case ForcedKill::Timeout:
        return "killed at the timeout";
      case ForcedKill::Interrupt:
        return "killed when ftccl_run got " + signalName(interruptSignal_);
      case ForcedKill::LauncherFailed:
        return "killed because ftccl_run failed";
    }
  }
  std::string end = describeStatus(rank.waitStatus);
  return rank.victim() ? end + ", ignored as it was faulted on purpose" : end;
}

// After an internal error: kill and reap every unreaped rank with plain system calls,
// which cannot throw.
void Job::emergencyStop() noexcept {
  for (Rank& rank : ranks_) {
    if (!rank.running()) continue;
    killGroup(rank.pid);
    ::waitpid(rank.pid, nullptr, 0);
    rank.reaped = true;
  }
}

}  // namespace

int runJob(const Options& opts) {
  Job job(opts);
  try {
    return job.run();
  } catch (const std::exception& e) {
    logLine(std::string("error: ") + e.what() + "; killing all ranks");
  } catch (...) {
    logLine("error: unknown internal error; killing all ranks");
  }
  job.emergencyStop();
  return kExitLauncherFailed;
}

}  // namespace ftrun
