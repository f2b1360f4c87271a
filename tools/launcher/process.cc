#include "launcher/process.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

extern char** environ;

namespace ftrun {
namespace {

std::string errnoText(const std::string& what) { return what + ": " + std::strerror(errno); }

std::vector<char*> cStringArray(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// Runs in the forked child: becomes the rank's process and never returns. The launcher is
// single-threaded, so the child may do anything the parent could; the argument and
// environment arrays were built before fork anyway.
[[noreturn]] void execRank(char* const* argv, char* const* envp, int stdoutFd, int stderrFd,
                           const ChildSetup& setup) {
  // Its own group, so that a fault or the final cleanup reaches its children too.
  ::setpgid(0, 0);
  // Should ftccl_run be SIGKILLed before it can clean up, its ranks die with it.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != setup.launcherPid) ::_exit(125);  // the launcher is already gone

  // /dev/null as stdin: a rank in a background process group reading the terminal would
  // be stopped by SIGTTIN. The launcher keeps fds 0-2 open, so these are all above 2.
  int devNull = ::open("/dev/null", O_RDONLY);
  if (devNull >= 0) {
    ::dup2(devNull, 0);
    ::close(devNull);
  }
  ::dup2(stdoutFd, 1);  // the pipe ends themselves are close-on-exec
  ::dup2(stderrFd, 2);

  ::signal(SIGPIPE, SIG_DFL);  // an ignored disposition would survive exec
  ::sigprocmask(SIG_SETMASK, &setup.originalMask, nullptr);
  if (setup.restoreNofile) ::setrlimit(RLIMIT_NOFILE, &setup.originalNofile);

  ::execvpe(argv[0], argv, envp);
  int err = errno;
  ::dprintf(2, "ftccl_run: cannot execute '%s': %s\n", argv[0], std::strerror(err));
  ::_exit(127);
}

void closePipe(int fds[2]) {
  if (fds[0] >= 0) ::close(fds[0]);
  if (fds[1] >= 0) ::close(fds[1]);
  fds[0] = fds[1] = -1;
}

}  // namespace

bool makeSecret(std::string* hex, std::string* error) {
  unsigned char bytes[16];
  size_t done = 0;
  while (done < sizeof(bytes)) {
    ssize_t n = ::getrandom(bytes + done, sizeof(bytes) - done, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = errnoText("getrandom");
      return false;
    }
    done += static_cast<size_t>(n);
  }
  static const char kDigits[] = "0123456789abcdef";
  hex->clear();
  for (unsigned char b : bytes) {
    hex->push_back(kDigits[b >> 4]);
    hex->push_back(kDigits[b & 15]);
  }
  return true;
}

bool pickCommId(const std::string& addr, std::string* commId, std::string* error) {
  sockaddr_storage storage{};
  socklen_t len = 0;
  bool v6 = false;
  auto* v4addr = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6addr = reinterpret_cast<sockaddr_in6*>(&storage);
  if (::inet_pton(AF_INET, addr.c_str(), &v4addr->sin_addr) == 1) {
    v4addr->sin_family = AF_INET;
    len = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, addr.c_str(), &v6addr->sin6_addr) == 1) {
    v6addr->sin6_family = AF_INET6;
    len = sizeof(sockaddr_in6);
    v6 = true;
  } else {
    *error = "not a numeric address: " + addr;
    return false;
  }
  int fd = ::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = errnoText("socket");
    return false;
  }
  // A free port below the kernel's ephemeral range: a port the kernel hands out for
  // port 0 could be handed again to a rank's own listener (health, UCX) before rank 0
  // binds it. Only bound here, never listened on, so nothing lingers in TIME_WAIT.
  int low = 32768, high = 60999;
  if (std::FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (std::fscanf(f, "%d %d", &low, &high) != 2) low = 32768;
    std::fclose(f);
  }
  int first = 10000, span = std::max(low - first, 1000);
  uint32_t seed = 0;
  if (::getrandom(&seed, sizeof(seed), 0) != sizeof(seed)) seed = static_cast<uint32_t>(::getpid());
  bool ok = false;
  int port = 0;
  for (int attempt = 0; attempt < 200 && !ok; ++attempt) {
    port = first + static_cast<int>((seed + attempt * 7919u) % static_cast<uint32_t>(span));
    if (v6)
      v6addr->sin6_port = htons(static_cast<uint16_t>(port));
    else
      v4addr->sin_port = htons(static_cast<uint16_t>(port));
    ok = ::bind(fd, reinterpret_cast<sockaddr*>(&storage), len) == 0;
  }
  if (!ok) *error = errnoText("cannot bind a port below the ephemeral range on " + addr);
  ::close(fd);
  if (!ok) return false;
  *commId = (v6 ? "[" + addr + "]" : addr) + ":" + std::to_string(port);
  return true;
}

std::vector<std::string> rankEnvironment(const Options& opts, const JobIdentity& job, int rank) {
  std::vector<std::string> ours = {
      "FTCCL_COMM_ID=" + job.commId,
      "FTCCL_COMM_SECRET=" + job.secret,
      "FTCCL_RANK=" + std::to_string(rank),
      "FTCCL_NRANKS=" + std::to_string(opts.nranks),
      "FTCCL_LOCAL_RANK=" + std::to_string(rank),
      "FTCCL_LOCAL_SIZE=" + std::to_string(opts.nranks),
      "FTCCL_LAUNCHER=1",
  };
  // The library installs its fault hook only when asked to.
  if (opts.hasDrop()) ours.push_back("FTCCL_FAULT_INJECTION=1");

  auto isOurs = [&ours](const char* entry) {
    for (const std::string& var : ours) {
      size_t nameLen = var.find('=') + 1;  // compare "NAME=" so FOO does not match FOOBAR
      if (std::strncmp(entry, var.c_str(), nameLen) == 0) return true;
    }
    return false;
  };
  std::vector<std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    if (!isOurs(*entry)) env.emplace_back(*entry);
  }
  env.insert(env.end(), ours.begin(), ours.end());
  return env;
}

bool startRank(const std::vector<std::string>& command, const std::vector<std::string>& env,
               const ChildSetup& setup, StartedRank* started, std::string* error) {
  int out[2] = {-1, -1};
  int err[2] = {-1, -1};
  // Close-on-exec: no rank may inherit another rank's pipe, or EOF would never come.
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    *error = errnoText("pipe");
    closePipe(out);
    closePipe(err);
    return false;
  }
  std::vector<char*> argv = cStringArray(command);
  std::vector<char*> envp = cStringArray(env);

  pid_t pid = ::fork();
  if (pid < 0) {
    *error = errnoText("fork");
    closePipe(out);
    closePipe(err);
    return false;
  }
  if (pid == 0) execRank(argv.data(), envp.data(), out[1], err[1], setup);

  // The child does the same; whichever runs first, the group exists before we might
  // signal it. (After the child's exec this fails harmlessly.)
  ::setpgid(pid, pid);
  ::close(out[1]);
  ::close(err[1]);
  started->pid = pid;
  started->stdoutFd = out[0];
  started->stderrFd = err[0];
  return true;
}

void killGroup(pid_t pgid) {
  if (pgid <= 1) return;  // never killpg(0 or 1, ...): that would hit us or everything
  ::killpg(pgid, SIGCONT);
  ::killpg(pgid, SIGKILL);
}

std::vector<pid_t> listOwnChildren() {
  std::vector<pid_t> children;
  pid_t self = ::getpid();
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return children;
  while (dirent* entry = ::readdir(proc)) {
    const char* name = entry->d_name;
    if (name[0] < '0' || name[0] > '9') continue;
    std::ifstream stat(std::string("/proc/") + name + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;  // already gone
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so parse after
    // the last ')'.
    size_t paren = line.rfind(')');
    char state = 0;
    int ppid = 0;
    if (paren == std::string::npos ||
        std::sscanf(line.c_str() + paren + 1, " %c %d", &state, &ppid) != 2) {
      continue;
    }
    if (ppid == self) children.push_back(static_cast<pid_t>(std::atoi(name)));
  }
  ::closedir(proc);
  return children;
}

std::string signalName(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

}  // namespace ftrun
