// What every algorithm is: a resumable, non-blocking state machine over a Transport.
//
// core/ calls progress() from whichever thread runs the operation, interleaved with
// the transport's progress and sleeps; abort() cancels what is posted so a failed
// or revoked operation never hangs. Algorithms never see UCX (CMake enforces it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "ftccl.h"
#include "transports/node_memory.h"
#include "transports/transport.h"
#include "util/status.h"

namespace ftccl {

// The NCCL buffer layouts: AllReduce, Broadcast and Reduce move `count` elements;
// AllGather sends `count` and receives nranks * count (rank r's part at r * count);
// ReduceScatter sends nranks * count and receives `count` (rank r gets part r).
struct CollectiveArgs {
  const void* sendbuff = nullptr;
  void* recvbuff = nullptr;
  size_t count = 0;
  ftcclDataType_t type = ftcclFloat32;
  ftcclRedOp_t op = ftcclSum;
  int root = 0;
  uint32_t opSeq = 0;
  uint32_t signature = 0;  // opSignature(): every message of the op carries it

  MessageKey key(uint32_t channel) const { return {opSeq, channel, signature}; }
};

// Which op a phase's messages belong to (composite algorithms hand it to their phases).
struct OpId {
  uint32_t seq = 0;
  uint32_t signature = 0;
  MessageKey key(uint32_t channel) const { return {seq, channel, signature}; }
};
inline OpId opIdOf(const CollectiveArgs& args) { return {args.opSeq, args.signature}; }

// Staging memory owned by the communicator: allocated and pre-faulted once at init,
// `slots` buffers of `slotBytes` each (2 per pipeline channel). One op uses it at a
// time: ops of a communicator run one after another.
struct Scratch {
  uint8_t* base = nullptr;
  size_t slotBytes = 0;
  int slots = 0;
  uint8_t* slot(int i) const { return base + static_cast<size_t>(i) * slotBytes; }
};

// Pipelining knobs, identical on every rank (decided once, never measured per rank).
struct PipelineConfig {
  size_t chunkBytes = 512 * 1024;  // bytes per slice and per staging slot
  int channels = 4;                // slices in flight (at most kMaxPipelineChannels)
};

// Channel budget of the 16 in a MessageKey: one algorithm uses channels
// [0, 2 * channels) at most (a double tree: tree t, slice lane c -> t * channels + c);
// composite algorithms give their phases disjoint ranges through SubsetTransport;
// kPointToPointChannel belongs to Send/Recv, whose opSeq counts per peer.
constexpr int kMaxPipelineChannels = 4;
constexpr uint32_t kPointToPointChannel = 15;
constexpr uint32_t kTuningChannel = 14;  // the cost model's measurement and sharing

// The numbers travel: Tuner::toVector shares forced choices by number, the calibration
// indexes its times by it, and op signatures hash it. Never renumber; add at the end.
// Which collective has which algorithm, and how each is built: catalog.h.
enum class Algorithm {
  kRing = 0,
  kTree = 1,
  kHierarchical = 2,
  kRecursiveDoubling = 3,
  kSharedMemory = 4
};
constexpr int kAlgorithms = 5;
// "ring", "tree", "hier", "rd", "shm" (catalog.cc)
const char* algorithmName(Algorithm algorithm);

// The collectives an algorithm choice is made for (Send/Recv has no algorithm).
enum class CollectiveKind { kAllReduce, kBroadcast, kReduce, kAllGather, kReduceScatter };
constexpr int kCollectiveKinds = 5;
const char* collectiveName(CollectiveKind kind);  // "allreduce", "broadcast", ... (FTCCL_ALGO)

class Collective {
 public:
  virtual ~Collective() = default;
  // Advances without blocking; *done once this rank's part is complete.
  virtual Status progress(bool* done) = 0;
  // Cancels every posted request. Buffers are undefined afterwards.
  virtual void abort() = 0;
  // The peers this rank is waiting for right now (for timeout diagnostics).
  virtual std::vector<int> pendingPeers() const = 0;
  // Grows whenever this op advances (a step or chunk done): the op timeout measures
  // progress of the op itself, not other traffic on the worker.
  virtual uint64_t progressMark() const = 0;
  // Sleeps at most `timeoutUs` on what this op waits for when that is not the
  // transport (a peer's flag in shared memory), or returns at once if that came
  // meanwhile; false, at once, when it waits on the transport: the driver then sleeps
  // on the transport's events.
  virtual bool waitForPeers(int timeoutUs) {
    (void)timeoutUs;
    return false;
  }
};

// Factories (catalog.h builds them by collective and Algorithm). None posts anything
// before its first progress() call, so composite algorithms may build their phases up
// front.
std::unique_ptr<Collective> makeRingAllReduce(Transport& transport, const Scratch& scratch,
                                              const PipelineConfig& pipeline,
                                              const CollectiveArgs& args);
std::unique_ptr<Collective> makeChainBroadcast(Transport& transport, const PipelineConfig& pipeline,
                                               const CollectiveArgs& args);
// A small buffer from the root to every rank in ceil(log2 n) rounds, in one message per
// link (binomial_broadcast.cc): what the library itself broadcasts at init and rebuild.
std::unique_ptr<Collective> makeBinomialBroadcast(Transport& transport, const CollectiveArgs& args);
// Where `rank` sits in that tree of n ranks: its parent (-1 at the root) and children.
struct BinomialLinks {
  int parent = -1;
  std::vector<int> children;  // largest subtree first
};
BinomialLinks binomialLinks(int rank, int n, int root);

// Double binary tree (tree.h): half of the buffer reduced up and broadcast down each tree.
std::unique_ptr<Collective> makeTreeAllReduce(Transport& transport, const Scratch& scratch,
                                              const PipelineConfig& pipeline,
                                              const CollectiveArgs& args);
// Recursive doubling (recursive_doubling.h): log2(n) rounds that each swap the whole
// buffer; the fewest latencies, for small messages.
std::unique_ptr<Collective> makeRecursiveDoublingAllReduce(Transport& transport,
                                                           const Scratch& scratch,
                                                           const CollectiveArgs& args);
// The nodes' shared memory for the hierarchical all-reduce's intra-node phases: `shared`
// when every node of several ranks mapped a segment of its own (all ranks agreed, so
// all build the same schedule); `memory` is this rank's node's (null on a node of one
// rank), its local ranks its node's ranks in ascending order, and its sequences come
// from *nextSeq.
struct IntraNodeMemory {
  bool shared = false;
  NodeMemory* memory = nullptr;
  uint32_t* nextSeq = nullptr;
};
// Ranks grouped by node: nodes[k] lists node k's ranks in the order its intra-node
// ring visits them (topology/ orders them by package and NUMA node); every rank is in
// exactly one list.
std::unique_ptr<Collective> makeHierarchicalAllReduce(Transport& transport, const Scratch& scratch,
                                                      const PipelineConfig& pipeline,
                                                      const std::vector<std::vector<int>>& nodes,
                                                      const CollectiveArgs& args,
                                                      const IntraNodeMemory& intra = {});
std::unique_ptr<Collective> makeRingReduceScatter(Transport& transport, const Scratch& scratch,
                                                  const PipelineConfig& pipeline,
                                                  const CollectiveArgs& args);
std::unique_ptr<Collective> makeRingAllGather(Transport& transport, const PipelineConfig& pipeline,
                                              const CollectiveArgs& args);
// Reduce to args.root along a pipelined chain (the mirror of the chain broadcast).
std::unique_ptr<Collective> makeChainReduce(Transport& transport, const Scratch& scratch,
                                            const PipelineConfig& pipeline,
                                            const CollectiveArgs& args);

// Over the node's shared memory, for ranks that all share `memory` (one node): each
// takes the sequences it uses from *nextSeq and advances it (transports/node_memory.h
// states the contract they all keep); pendingPeers() returns LOCAL ranks of `memory`.
// All-reduce (shm_allreduce.cc): one flag round for small buffers, pipelined chunks for
// large ones, whose copies into the output bypass the cache from `streamBytes`. 2 ranks
// on the 2-core VM (bench/compare.py, medians of 5, busbw GB/s): 64 MiB 4.39 -> 5.46
// streaming, 256 KiB to 16 MiB within 5% either way (the cache holds those outputs).
constexpr size_t kShmStreamBytes = size_t{32} << 20;
std::unique_ptr<Collective> makeShmAllReduce(NodeMemory& memory, const CollectiveArgs& args,
                                             uint32_t* nextSeq,
                                             size_t streamBytes = kShmStreamBytes);
// Broadcast (shm_broadcast.cc): args.root (a local rank) copies each chunk into its slot;
// from kShmSingleCopyBytes, where the memory has single copy and there is one reader
// (kShmSingleCopyMaxRanks), the other reads the root's buffer from its process instead.
// Below that size two copies through a slot cost less than a system call and a flag
// round more; with 2 or 3 readers at once (3 and 4 ranks on 2 cores) the kernel's page
// pinning made single copy slower than the slots, in place 256 KiB 45-60 against 25-38
// us (bench/compare.py --coll broadcast and broadcast_perf with FTCCL_SHM_SINGLE_COPY=0).
// Up to kShmSingleCopyMaxBytes: past it the reader's one copy runs out of its cache
// (2 MiB L2 here) while the slots keep two cores copying at once, root in and reader
// out: 2 ranks in place, GB/s single copy / slots, 1 MiB 18.3 / 17.1, 2 MiB 9.5 / 13.9,
// 4 MiB 10.0 / 12.9. One constant, not each rank's cache size: every rank must choose
// alike, and cores of one node may differ.
constexpr size_t kShmSingleCopyBytes = 32 << 10;
constexpr size_t kShmSingleCopyMaxBytes = size_t{1} << 20;
constexpr int kShmSingleCopyMaxRanks = 2;
std::unique_ptr<Collective> makeShmBroadcast(NodeMemory& memory, const CollectiveArgs& args,
                                             uint32_t* nextSeq);
// Reduce to args.root (shm_reduce.cc): the root reduces all slots, or from 3 ranks each a
// slice of large buffers.
std::unique_ptr<Collective> makeShmReduce(NodeMemory& memory, const CollectiveArgs& args,
                                          uint32_t* nextSeq);
// All-gather (shm_allgather.cc): every rank copies every rank's slot out; at 2 ranks with
// single copy, from parts of kShmSingleCopyPartBytes, each reads the other's part from its
// process instead (two copies of a part, not three). 2 ranks, forced to shared memory,
// out of place, us (all_gather_perf -z 1, 6 runs each): parts of 8 KiB 2.4 either way,
// 16 KiB 3.0 against 3.9, 32 KiB 4.2 against 7.3; from 1 MiB parts on, busbw single
// copy >= slots by 0-10% (2-16 MiB outputs), so no upper bound: both ranks copy at once.
constexpr size_t kShmSingleCopyPartBytes = 16 << 10;
std::unique_ptr<Collective> makeShmAllGather(NodeMemory& memory, const CollectiveArgs& args,
                                             uint32_t* nextSeq);
// Reduce-scatter (shm_reduce_scatter.cc): a slot carries a block of every part; rank r
// reduces block r of all slots. At 2 ranks with single copy, for parts from
// kShmSingleCopyReducePartBytes to kShmSingleCopyReduceMaxPartBytes, each reads its part
// of the other's input from the other's process and reduces it in its own cache. 2 ranks,
// forced to shared memory, out of place, us (reduce_scatter_perf -z 1, medians of 10-20
// runs), slots / single copy: parts of 4 KiB 2.0 / 2.2, 8 KiB 2.9 / 2.5, 32 KiB 7.4 /
// 4.7, 128 KiB 17.4 / 12.3, 256 KiB 39 / 29, 512 KiB 89 / 92, 2 MiB 444 / 459.
constexpr size_t kShmSingleCopyReducePartBytes = 8 << 10;
constexpr size_t kShmSingleCopyReduceMaxPartBytes = 256 << 10;
std::unique_ptr<Collective> makeShmReduceScatter(NodeMemory& memory, const CollectiveArgs& args,
                                                 uint32_t* nextSeq);

// Send/Recv: a set of point-to-point transfers progressed together (a group's p2p part).
struct PointToPoint {
  bool send = false;
  int peer = 0;
  void* buffer = nullptr;  // read for a send, written for a receive
  size_t bytes = 0;
  MessageKey key;
};
std::unique_ptr<Collective> makePointToPoint(Transport& transport,
                                             std::vector<PointToPoint> transfers);
// Runs `parts` one after another (a group's collectives, an algorithm's phases).
std::unique_ptr<Collective> makeSequence(std::vector<std::unique_ptr<Collective>> parts);

}  // namespace ftccl
