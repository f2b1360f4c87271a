// Where a communicator is in its op order, published by the thread that runs its ops
// for the health thread, which puts it in every heartbeat and answers progress queries
// with it even while the application is stuck: the hang diagnosis (which ranks have
// not reached an op, which are inside it and how far) and the straggler detector
// (lateness.h) read it. Relaxed atomics, written by one thread at a time; a reader may
// see fields of two neighbouring states, which a diagnosis can live with.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace ftccl {

// One rank's progress in one communicator: what a heartbeat or a progress answer says.
struct OpProgress {
  uint64_t commKey = 0;
  uint32_t epoch = 0;
  uint64_t started = 0;  // collectives started in this epoch (the op sequence number + 1)
  uint64_t done = 0;     // collectives finished in this epoch
  bool inOp = false;     // inside an op (a collective, or Send/Recv only: started == done)
                         // not inside, started > done: op started - 1 failed here
  uint8_t kind = 0;      // the op's kind (op_counters.h order)
  uint32_t step = 0;     // transfers completed in the current op
  uint64_t waitUs = 0;   // time spent in collectives, summed up to the `done`-th
  uint32_t stateMs = 0;  // since the last op started or ended
};

class ProgressBoard {
 public:
  explicit ProgressBoard(uint64_t commKey) : commKey_(commKey) {}

  // A new epoch: op sequence numbers start again at 0.
  void reset(uint32_t epoch);
  // The op of a batch starts; `collectives` of them (0 for Send/Recv only).
  void begin(int kind, uint64_t collectives, int64_t nowNs);
  void step(uint64_t mark) { step_.store(static_cast<uint32_t>(mark), std::memory_order_relaxed); }
  // The batch ended after `elapsedNs`; a failed one leaves `done` where it was.
  void end(bool ok, uint64_t elapsedNs, int64_t nowNs);

  OpProgress read(int64_t nowNs) const;
  // The summed wait after the `done`-th collective, while it is among the last kHistory.
  bool waitAt(uint64_t done, uint64_t* waitUs) const;

  static constexpr int kHistory = 256;

 private:
  const uint64_t commKey_;
  std::atomic<uint32_t> epoch_{0};
  std::atomic<uint64_t> started_{0}, done_{0}, waitUs_{0};
  std::atomic<bool> inOp_{false};
  std::atomic<uint8_t> kind_{0};
  std::atomic<uint32_t> step_{0};
  std::atomic<int64_t> changedNs_{0};
  uint64_t pending_ = 0;  // writer only: collectives of the running batch
  uint64_t waitNs_ = 0;   // writer only: what waitUs_ publishes
  // waitUs_ after each finished collective batch, keyed by its `done` + 1 (0: empty).
  struct Entry {
    std::atomic<uint64_t> key{0}, waitUs{0};
  };
  std::array<Entry, kHistory> history_;
};

}  // namespace ftccl
