// The two halves of a ring all-reduce as collectives of their own, over any table of
// segments: the NCCL ReduceScatter and AllGather (equal parts, rank r owns part r) and
// the hierarchical all-reduce's intra-node phases (uneven ring segments of one buffer)
// are both built from them.
#pragma once

#include <memory>
#include <vector>

#include "algorithms/collective.h"
#include "algorithms/ring.h"

namespace ftccl {

// Part i = elements [i * count, (i + 1) * count): NCCL's all-gather / reduce-scatter.
inline std::vector<Segment> equalParts(int n, size_t count) {
  std::vector<Segment> parts(n);
  for (int i = 0; i < n; ++i) parts[i] = {static_cast<size_t>(i) * count, count};
  return parts;
}

// The ring's split of `count` elements: the first count % n segments one larger.
inline std::vector<Segment> ringParts(int n, size_t count) {
  RingSchedule ring(n, 0, count);
  std::vector<Segment> parts(n);
  for (int i = 0; i < n; ++i) parts[i] = ring.segment(i);
  return parts;
}

// The most elements any part holds (0 for none).
inline size_t largestPart(const std::vector<Segment>& parts) {
  size_t most = 0;
  for (const Segment& part : parts) most = part.count > most ? part.count : most;
  return most;
}

// Reduce-scatter: rank r ends with segment r reduced over all ranks in `out` (count of
// segment r elements). `input` holds every segment at its offset. With avgDivisor > 0
// the result is divided by it (ftcclAvg); op Avg otherwise combines as Sum.
std::unique_ptr<Collective> makeRingReduceScatterPhase(Transport& transport, const Scratch& scratch,
                                                       const PipelineConfig& pipeline, OpId id,
                                                       ftcclDataType_t type, ftcclRedOp_t op,
                                                       int avgDivisor,
                                                       std::vector<Segment> segments,
                                                       const void* input, void* out);

// All-gather: every segment ends in `buffer` at its offset on every rank; rank r's own
// segment must already be there (callers copy it in first when not in place).
std::unique_ptr<Collective> makeRingAllGatherPhase(Transport& transport,
                                                   const PipelineConfig& pipeline, OpId id,
                                                   size_t elemSize, std::vector<Segment> segments,
                                                   void* buffer);

// The same two phases over the node's shared memory (shm_reduce_scatter.cc,
// shm_allgather.cc), one part per LOCAL rank of `memory`: args gives the type, op (Avg
// divides by the local size: pass Sum to divide elsewhere), opSeq and signature.
// Reduce-scatter: local rank r ends with part r of `input` reduced in `out`.
// All-gather: this rank's part from `input` (may be its place in `buffer`), every
// part in `buffer` at its offset.
std::unique_ptr<Collective> makeShmReduceScatterPhase(NodeMemory& memory,
                                                      const CollectiveArgs& args,
                                                      std::vector<Segment> parts, const void* input,
                                                      void* out, uint32_t* nextSeq);
std::unique_ptr<Collective> makeShmAllGatherPhase(NodeMemory& memory, const CollectiveArgs& args,
                                                  std::vector<Segment> parts, const void* input,
                                                  void* buffer, uint32_t* nextSeq);

}  // namespace ftccl
