// The floor of a small shared-memory op between two processes: each writes a value and
// a sequence into a cache line of its own and waits for the other's, the two lines of
// a parity alternating as the shared-memory path's message lines do. What an 8-byte
// all-reduce between two ranks costs beyond this is software (docs/performance.md).
//
//   line_pingpong [exchanges]     prints us per exchange, pinned to CPUs 0 and 1
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace {

struct alignas(64) Line {
  std::atomic<uint32_t> seq;
  char data[60];
};

void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  (void)sched_setaffinity(0, sizeof set, &set);  // unpinned, it still measures
}

constexpr const char* kUsage =
    "usage: line_pingpong [exchanges]\n"
    "  two processes pinned to CPUs 0 and 1 exchange a float through shared cache lines;\n"
    "  prints the time per exchange (default 2000000 exchanges)\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const long exchanges = argc > 1 ? std::atol(argv[1]) : 2000000;
  if (exchanges <= 0) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  void* shared = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) return 1;
  auto* lines = new (shared) Line[4]();
  const pid_t child = fork();
  if (child < 0) return 1;
  const int me = child == 0 ? 1 : 0;
  pin(me);
  float sum = 0;
  const auto start = std::chrono::steady_clock::now();
  for (long i = 1; i <= exchanges; ++i) {
    Line& mine = lines[me * 2 + (i & 1)];
    const Line& peer = lines[(1 - me) * 2 + (i & 1)];
    const float value = 1.0f;
    std::memcpy(mine.data, &value, sizeof value);
    mine.seq.store(static_cast<uint32_t>(i), std::memory_order_release);
    while (peer.seq.load(std::memory_order_acquire) != static_cast<uint32_t>(i)) {
    }
    float got;
    std::memcpy(&got, peer.data, sizeof got);
    sum += got;
  }
  const double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
  if (child == 0) _exit(sum == exchanges ? 0 : 1);
  int status = 0;
  waitpid(child, &status, 0);
  std::printf("%.3f us per exchange (%ld exchanges)\n", us / exchanges, exchanges);
  return sum == exchanges && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
