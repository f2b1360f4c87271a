// Shared by the algorithm tests: run one Collective per rank over transports/sim on this
// thread, and build inputs whose reductions are exact in every datatype.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "algorithms/collective.h"
#include "reduce/half.h"
#include "reduce/reduce.h"
#include "transports/sim/sim_transport.h"

namespace ftccl {
namespace testing {

// Each rank's scratch as the communicator makes it: 2 * channels slots of chunkBytes
// rounded up to 4 KiB (or slotBytes), left uninitialised and reused from op to op.
struct Staging {
  Staging(int n, const PipelineConfig& p, size_t slotBytes = 0)
      : slot(slotBytes ? slotBytes : (p.chunkBytes + 4095) & ~size_t(4095)), slots(2 * p.channels) {
    for (int r = 0; r < n; ++r) memory.emplace_back(new uint8_t[slot * slots]);
  }
  Scratch scratch(int r) const { return Scratch{memory[r].get(), slot, slots}; }
  size_t slot;
  int slots;
  std::vector<std::unique_ptr<uint8_t[]>> memory;
};

// Records every key an op uses, on top of the sim transport.
class KeyRecorder final : public Transport {
 public:
  explicit KeyRecorder(Transport& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  Status isend(int peer, const void* buffer, size_t bytes, MessageKey key,
               TransportRequest** request) override {
    keys.push_back(key);
    return inner_.isend(peer, buffer, bytes, key, request);
  }
  Status irecv(int peer, void* buffer, size_t bytes, MessageKey key,
               TransportRequest** request) override {
    keys.push_back(key);
    return inner_.irecv(peer, buffer, bytes, key, request);
  }
  Status test(TransportRequest** request, bool* done) override {
    return inner_.test(request, done);
  }
  void cancel(TransportRequest** request) override { inner_.cancel(request); }
  bool progress() override { return inner_.progress(); }
  Status waitForActivity(int timeoutMs) override { return inner_.waitForActivity(timeoutMs); }
  void interrupt() override { inner_.interrupt(); }
  std::vector<MessageKey> keys;

 private:
  Transport& inner_;
};

// Progresses every rank's op round robin until all are done. The first error is
// returned (and every op aborted); 10,000 rounds without any progress is a deadlock.
inline Status runAll(sim::SimFabric& fabric, std::vector<std::unique_ptr<Collective>>& ops) {
  std::vector<bool> done(ops.size(), false);
  int stalled = 0;
  for (;;) {
    bool allDone = true, moved = false;
    for (size_t r = 0; r < ops.size(); ++r) {
      if (done[r] || !ops[r]) continue;
      uint64_t before = ops[r]->progressMark();
      bool finished = false;
      Status st = ops[r]->progress(&finished);
      if (!st.isOk()) {
        for (auto& op : ops)
          if (op) op->abort();
        return st;
      }
      done[r] = finished;
      moved = moved || finished || ops[r]->progressMark() != before;
      allDone = allDone && finished;
    }
    if (allDone) return Status::ok();
    moved = fabric.progress() || moved;
    stalled = moved ? 0 : stalled + 1;
    if (stalled > 10000) return internalError("deadlock: no progress in 10000 rounds");
  }
}

// Like runAll, but each round progresses only some ranks (a fixed pseudo-random choice,
// rank-biased so that some ranks lag far behind their neighbours): a buffer or slot
// reused before the message that reads it was matched shows up as a wrong result.
inline Status runSkewed(sim::SimFabric& fabric, std::vector<std::unique_ptr<Collective>>& ops,
                        uint64_t seed) {
  std::vector<bool> done(ops.size(), false);
  int idle = 0;
  for (;;) {
    bool allDone = true, moved = false;
    for (size_t r = 0; r < ops.size(); ++r) {
      if (done[r]) continue;
      allDone = false;
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      // Rank r runs in about 1 of (1 + r % 4) rounds.
      if ((seed >> 33) % (1 + r % 4) != 0) continue;
      uint64_t before = ops[r]->progressMark();
      bool finished = false;
      Status st = ops[r]->progress(&finished);
      if (!st.isOk()) return st;
      done[r] = finished;
      moved = moved || finished || ops[r]->progressMark() != before;
    }
    if (allDone) return Status::ok();
    moved = fabric.progress() || moved;
    idle = moved ? 0 : idle + 1;
    if (idle > 100000) return internalError("deadlock under skewed progress");
  }
}

// Value i of rank r's input: a small integer (exact in fp16 and bf16 too, and its sums
// and products over 8 ranks stay exact). Prod uses 1 and 2 only.
inline double patternValue(int rank, size_t i, ftcclRedOp_t op) {
  if (op == ftcclProd) return static_cast<double>(1 + ((rank + i) % 3 == 0));
  return static_cast<double>(static_cast<int>((rank * 7 + i * 13) % 11) - 3);
}

inline void storeValue(ftcclDataType_t type, void* data, size_t i, double v) {
  switch (type) {
    case ftcclInt8:
      static_cast<int8_t*>(data)[i] = static_cast<int8_t>(v);
      break;
    case ftcclUint8:
      static_cast<uint8_t*>(data)[i] = static_cast<uint8_t>(static_cast<int>(v));
      break;
    case ftcclInt32:
      static_cast<int32_t*>(data)[i] = static_cast<int32_t>(v);
      break;
    case ftcclUint32:
      static_cast<uint32_t*>(data)[i] = static_cast<uint32_t>(static_cast<int64_t>(v));
      break;
    case ftcclInt64:
      static_cast<int64_t*>(data)[i] = static_cast<int64_t>(v);
      break;
    case ftcclUint64:
      static_cast<uint64_t*>(data)[i] = static_cast<uint64_t>(static_cast<int64_t>(v));
      break;
    case ftcclFloat16:
      static_cast<uint16_t*>(data)[i] = floatToHalf(static_cast<float>(v));
      break;
    case ftcclFloat32:
      static_cast<float*>(data)[i] = static_cast<float>(v);
      break;
    case ftcclFloat64:
      static_cast<double*>(data)[i] = v;
      break;
    case ftcclBfloat16:
      static_cast<uint16_t*>(data)[i] = floatToBf16(static_cast<float>(v));
      break;
    default:
      break;
  }
}

inline std::vector<uint8_t> patternBuffer(ftcclDataType_t type, int rank, size_t count,
                                          ftcclRedOp_t op) {
  std::vector<uint8_t> buffer(count * dataTypeSize(type) + 1);
  for (size_t i = 0; i < count; ++i) storeValue(type, buffer.data(), i, patternValue(rank, i, op));
  return buffer;
}

// The reduction of every rank's patternBuffer, combined in rank order with the library's
// own kernels (exact for these inputs, so any order gives the same bits).
inline std::vector<uint8_t> expectedReduction(ftcclDataType_t type, ftcclRedOp_t op, int nranks,
                                              size_t count) {
  std::vector<uint8_t> result = patternBuffer(type, 0, count, op);
  for (int r = 1; r < nranks; ++r) {
    std::vector<uint8_t> in = patternBuffer(type, r, count, op);
    reduce(result.data(), result.data(), in.data(), count, type, op);
  }
  if (op == ftcclAvg) divideBy(result.data(), count, type, nranks);
  return result;
}

}  // namespace testing
}  // namespace ftccl
