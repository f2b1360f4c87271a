// Per-communicator counters of the collectives the application called: for each kind,
// how many, their bytes (nccl-tests' "size" of each call), their bus bytes (size x the
// kind's bus factor, so busbw = bus bytes / time as nccl-tests computes it) and the time
// spent in them. Written only by the thread whose turn it is to run the communicator's
// ops (ops run one after another, handed over under a mutex), so a relaxed load and
// store per field is enough: no lock and no allocation on the hot path. Read by any
// thread (GetStats, the stats file writer).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace ftccl {

// The order of OpKind (core/communicator.h) and of the names in stats JSON.
constexpr int kStatKinds = 7;
const char* statKindName(int kind);  // "allreduce", ..., "send", "recv"
// nccl-tests' bus bandwidth factor of a kind on `nranks` ranks.
double busFactor(int kind, int nranks);

struct KindTotals {
  uint64_t ops = 0;
  uint64_t bytes = 0;
  uint64_t busBytes = 0;
  uint64_t timeNs = 0;
};

class OpCounters {
 public:
  void record(int kind, uint64_t bytes, uint64_t busBytes, uint64_t timeNs) {
    Kind& k = kinds_[kind];
    add(k.ops, 1);
    add(k.bytes, bytes);
    add(k.busBytes, busBytes);
    add(k.timeNs, timeNs);
  }
  KindTotals read(int kind) const {
    const Kind& k = kinds_[kind];
    return KindTotals{
        k.ops.load(std::memory_order_relaxed), k.bytes.load(std::memory_order_relaxed),
        k.busBytes.load(std::memory_order_relaxed), k.timeNs.load(std::memory_order_relaxed)};
  }

 private:
  struct Kind {
    std::atomic<uint64_t> ops{0}, bytes{0}, busBytes{0}, timeNs{0};
  };
  static void add(std::atomic<uint64_t>& field, uint64_t value) {
    field.store(field.load(std::memory_order_relaxed) + value, std::memory_order_relaxed);
  }
  std::array<Kind, kStatKinds> kinds_;
};

}  // namespace ftccl
