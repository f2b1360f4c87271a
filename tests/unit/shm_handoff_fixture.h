// Helpers of the shm hand-off tests: forked processes that are reaped on every path of a
// test, a channel of lines to each (bounded waits: a test never hangs on a child), members
// that report what they received, and descriptor counts.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "transports/shm/fd_handoff.h"
#include "util/crypto.h"
#include "util/net/socket.h"

namespace ftccl {
namespace testing {

constexpr char kSegmentText[] = "bytes the leader wrote";
constexpr int kLongMs = 60000;  // generous: 2 oversubscribed cores

inline int openFdCount() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int count = 0;
  while (dirent* e = readdir(dir)) count += e->d_name[0] != '.';
  closedir(dir);
  return count - 1;  // the directory's own descriptor
}

inline bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Lines over one end of a socketpair.
class Channel {
 public:
  explicit Channel(int fd) : fd_(fd) {}
  void say(const std::string& line) {
    std::string data = line + "\n";
    (void)net::sendAll(fd_.get(), reinterpret_cast<const uint8_t*>(data.data()), data.size(),
                       net::deadlineAfterMs(kLongMs));
  }
  // The next line; "" at the end of the stream or after `ms`.
  std::string hear(int ms = kLongMs) {
    net::Deadline deadline = net::deadlineAfterMs(ms);
    for (;;) {
      size_t end = buffered_.find('\n');
      if (end != std::string::npos) {
        std::string line = buffered_.substr(0, end);
        buffered_.erase(0, end + 1);
        return line;
      }
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, net::msUntil(deadline)) <= 0) return "";
      char chunk[256];
      ssize_t n = ::recv(fd_.get(), chunk, sizeof(chunk), MSG_DONTWAIT);
      if (n == 0) return "";
      if (n > 0) buffered_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  net::Fd fd_;
  std::string buffered_;
};

// A forked process that runs body(channel) and exits. The destructor kills it if it is
// still there (stopped or not) and reaps it, whatever the test did.
class Child {
 public:
  explicit Child(const std::function<void(Channel&)>& body) {
    int ends[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) return;
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      // A test binary that crashes or times out must not leave a child spinning or stopped.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(100);
      ::close(ends[0]);
      Channel channel(ends[1]);
      body(channel);
      ::_exit(0);  // no atexit handlers or static destructors of the test binary
    }
    ::close(ends[1]);
    channel_ = std::make_unique<Channel>(ends[0]);
  }
  ~Child() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  Channel& channel() { return *channel_; }

  // Waits for it to exit (killed after a minute); true when it exited with 0.
  bool reap() {
    int status = 0;
    for (int waited = 0; ::waitpid(pid_, &status, WNOHANG) == 0; waited += 10) {
      if (waited >= kLongMs) ::kill(pid_, SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }

 private:
  pid_t pid_ = -1;
  std::unique_ptr<Channel> channel_;
};

// One hand-off as a member sees it: "ok: <the segment's first bytes>" or the error.
// "LEAK" (a descriptor more or less than before) and "NOT-CLOEXEC" must never appear.
inline std::string receiveAndRead(const std::string& name, const crypto::Key& key, uint64_t context,
                                  pid_t leader) {
  int before = openFdCount();
  std::string out;
  {
    net::Fd fd;
    Status st = shm::receiveFd(name, key, context, leader, net::deadlineAfterMs(kLongMs), &fd);
    if (st.isOk()) {
      char text[sizeof(kSegmentText)] = {};
      bool read = ::pread(fd.get(), text, sizeof(text) - 1, 0) > 0;
      out = std::string("ok: ") + (read ? text : "(unreadable)");
      if (!(::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC)) out += " NOT-CLOEXEC";
    } else {
      out = st.message();
    }
  }
  if (openFdCount() != before) out += " LEAK";
  return out;
}

// A member: hears the name, tries `attempts` hand-offs, says the outcome of each.
inline std::function<void(Channel&)> member(const crypto::Key& key, uint64_t context, pid_t leader,
                                            int attempts = 1) {
  return [=](Channel& channel) {
    std::string name = channel.hear();
    for (int i = 0; i < attempts; ++i) channel.say(receiveAndRead(name, key, context, leader));
  };
}

inline net::Fd segmentWithText() {
  net::Fd fd(::memfd_create("ftccl-shm-test", MFD_CLOEXEC));
  if (fd.valid()) (void)!::write(fd.get(), kSegmentText, sizeof(kSegmentText) - 1);
  return fd;
}

// The address of `name` in the abstract namespace (a NUL byte first), and its length.
inline socklen_t abstractAddress(const std::string& name, sockaddr_un* addr) {
  *addr = {};
  addr->sun_family = AF_UNIX;
  name.copy(addr->sun_path + 1, name.size());
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
}

// A raw connection to a hand-off name, to play a hostile or broken member.
inline net::Fd connectRaw(const std::string& name) {
  sockaddr_un addr;
  socklen_t length = abstractAddress(name, &addr);
  net::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), length) != 0) fd.reset();
  return fd;
}

// Bytes with descriptors attached (SCM_RIGHTS), as a hostile peer would send them.
inline bool sendWithFds(int sock, const void* data, size_t size, const std::vector<int>& fds) {
  iovec iov{const_cast<void*>(data), size};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  return ::sendmsg(sock, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(size);
}

}  // namespace testing
}  // namespace ftccl
