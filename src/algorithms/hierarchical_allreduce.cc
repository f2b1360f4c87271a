// Hierarchical all-reduce: most bytes stay inside a node, where links are fast (shared
// memory, NVLink); only 1/L of the buffer per rank crosses between nodes.
//
// Equal nodes (L ranks each, N nodes): an intra-node ring reduce-scatter leaves local
// rank j with segment j of its node's reduction (ring.h's uneven split: the first
// count % L segments one element larger); the N ranks with local index j all-reduce
// that segment across nodes with the ring all-reduce, in place; an intra-node ring
// all-gather gives everyone everything. Latencies 2(L-1) + 2(N-1) instead of the flat
// ring's 2(NL-1); per rank (L-1)/L * S in and out inside the node twice, and
// 2(N-1)/N * S/L across nodes.
//
// Uneven nodes (e.g. 3 + 2): node leaders (each node's first rank in ring order). A
// chain reduce to the leader inside each node, a ring all-reduce of the whole buffer
// among the leaders, a chain broadcast from the leader inside each node. Chosen over
// padding the uneven nodes into equal rings (empty members would still cost their
// latencies and need a segment map per node) because every step stays simple and
// correct for any node sizes, and uneven nodes are the exception (a failed rank, a
// shrink). Its cost: S crosses between leaders (2(N-1)/N * S per leader), 2(L-1) chunk
// hops inside the node, so the tuner prices it accordingly.
//
// One node, or one rank per node: the flat ring all-reduce.
//
// Where the nodes share memory (IntraNodeMemory.shared, issue 26), the intra-node
// phases run over each node's segment instead of the transport: the same reduce-scatter
// and all-gather over the same ring parts (shm_reduce_scatter.cc, shm_allgather.cc), or
// reduce to and broadcast from the leader (shm_reduce.cc, shm_broadcast.cc). A segment
// numbers its ranks in ascending order, so every node's ranks are taken in that order
// (local index j, leader = lowest rank) on every rank alike; a node of one rank keeps
// the transport's phases, which move nothing there. The inter-node phase is unchanged.
//
// Channels: phases talk through SubsetTransport views whose channel bases keep them
// apart (intra-node reduce 0.., intra-node gather 4.., inter-node 8..); each phase uses
// at most kMaxPipelineChannels channels of its range (the ring all-reduce `channels`,
// not 2 * channels), so the tuning channel 14 and Send/Recv's 15 are never touched.
// Phases run one after another (makeSequence) and share the staging: a phase finishes
// only when its sends were matched, so the next one may reuse the slots at once.
//
// Avg combines as Sum everywhere and divides by the total rank count once, right
// after the inter-node phase (each rank its own segment, or each leader the buffer).
// Every rank ends with the same bits: one rank (the inter-node ring's owner of each
// piece) computes them and the others copy. Tolerates abort() at any point: the
// running phase cancels its requests. pendingPeers() names communicator ranks (the
// views' numbering is mapped back). A layout that is not a partition of the ranks
// fails the op with invalidArgument before anything is posted.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "algorithms/collective.h"
#include "algorithms/ring_phases.h"
#include "algorithms/subset_transport.h"
#include "reduce/reduce.h"

namespace ftccl {
namespace {

constexpr uint32_t kIntraReduceChannels = 0;
constexpr uint32_t kIntraGatherChannels = 4;
constexpr uint32_t kInterNodeChannels = 8;
// Each range is kMaxPipelineChannels wide; the inter-node ring uses `channels` of its
// range (not 2 * channels), so 8 + 4 stays below the tuning and Send/Recv channels.
static_assert(kInterNodeChannels + kMaxPipelineChannels <= kTuningChannel,
              "the inter-node phase would reach the reserved channels");

// Divides a range once all of the reduction is in (Avg after the inter-node phase).
class DivideStep final : public Collective {
 public:
  DivideStep(void* data, size_t count, ftcclDataType_t type, int divisor)
      : data_(data), count_(count), type_(type), divisor_(divisor) {}
  Status progress(bool* done) override {
    if (!done_ && count_) divideBy(data_, count_, type_, divisor_);
    done_ = *done = true;
    return Status::ok();
  }
  void abort() override {}
  std::vector<int> pendingPeers() const override { return {}; }
  uint64_t progressMark() const override { return done_ ? 1 : 0; }

 private:
  void* data_;
  size_t count_;
  ftcclDataType_t type_;
  int divisor_;
  bool done_ = false;
};

// A phase over a SubsetTransport reports its peers in the view's numbering; the
// timeout diagnostics need communicator ranks, so they are mapped back here.
class InParentRanks final : public Collective {
 public:
  InParentRanks(std::unique_ptr<Collective> phase, const SubsetTransport& view)
      : phase_(std::move(phase)), view_(view) {}
  Status progress(bool* done) override { return phase_->progress(done); }
  void abort() override { phase_->abort(); }
  std::vector<int> pendingPeers() const override {
    std::vector<int> peers = phase_->pendingPeers();
    for (int& p : peers) p = view_.parentRank(p);
    return peers;
  }
  uint64_t progressMark() const override { return phase_->progressMark(); }
  bool waitForPeers(int timeoutUs) override { return phase_->waitForPeers(timeoutUs); }

 private:
  std::unique_ptr<Collective> phase_;
  const SubsetTransport& view_;
};

// A layout that is not a partition of the ranks fails the op instead of running a
// schedule that the ranks disagree on.
class InvalidLayout final : public Collective {
 public:
  explicit InvalidLayout(std::string why) : why_(std::move(why)) {}
  Status progress(bool* done) override {
    *done = false;
    return invalidArgument("hierarchical all-reduce: " + why_);
  }
  void abort() override {}
  std::vector<int> pendingPeers() const override { return {}; }
  uint64_t progressMark() const override { return 0; }

 private:
  std::string why_;
};

// Empty when `nodes` lists every rank of [0, n) exactly once in non-empty nodes.
std::string layoutProblem(const std::vector<std::vector<int>>& nodes, int n) {
  std::vector<int> seen(n, 0);
  for (const auto& node : nodes) {
    if (node.empty()) return "a node has no ranks";
    for (int r : node) {
      if (r < 0 || r >= n) return "rank " + std::to_string(r) + " is out of range";
      if (seen[r]++) return "rank " + std::to_string(r) + " is in two nodes";
    }
  }
  for (int r = 0; r < n; ++r)
    if (!seen[r]) return "rank " + std::to_string(r) + " is in no node";
  return {};
}

PipelineConfig withinBudget(PipelineConfig pipeline) {
  pipeline.channels = std::max(1, std::min(pipeline.channels, kMaxPipelineChannels));
  return pipeline;
}

class HierarchicalAllReduce final : public Collective {
 public:
  HierarchicalAllReduce(Transport& transport, const Scratch& scratch,
                        const PipelineConfig& pipeline, const std::vector<std::vector<int>>& layout,
                        const CollectiveArgs& args, const IntraNodeMemory& intra)
      : transport_(transport), intra_(intra) {
    int n = transport.size(), me = transport.rank();
    std::string problem = layoutProblem(layout, n);
    if (!problem.empty()) {
      sequence_ = std::make_unique<InvalidLayout>(problem);
      return;
    }
    // Over shared memory, nodes in ascending order (core passes them so: no copy per op).
    const std::vector<std::vector<int>>* ordered = &layout;
    std::vector<std::vector<int>> ascending;
    if (intra_.shared &&
        !std::all_of(layout.begin(), layout.end(), [](const std::vector<int>& node) {
          return std::is_sorted(node.begin(), node.end());
        })) {
      ascending = layout;
      for (auto& node : ascending) std::sort(node.begin(), node.end());
      ordered = &ascending;
    }
    const std::vector<std::vector<int>>& nodes = *ordered;
    int myNode = 0;
    for (size_t k = 0; k < nodes.size(); ++k) {
      if (std::find(nodes[k].begin(), nodes[k].end(), me) != nodes[k].end()) {
        myNode = static_cast<int>(k);
      }
    }
    bool uniform = true;
    for (const auto& node : nodes) uniform = uniform && node.size() == nodes[0].size();
    PipelineConfig bounded = withinBudget(pipeline);
    std::vector<std::unique_ptr<Collective>> phases;
    if (nodes.size() <= 1 || static_cast<int>(nodes.size()) == n) {
      phases.push_back(makeRingAllReduce(transport, scratch, bounded, args));
    } else if (intra_.shared && nodes[myNode].size() > 1 &&
               (intra_.memory == nullptr || intra_.nextSeq == nullptr ||
                intra_.memory->localSize() != static_cast<int>(nodes[myNode].size()) ||
                nodes[myNode][static_cast<size_t>(intra_.memory->localRank())] != me)) {
      sequence_ = std::make_unique<InvalidLayout>("the node's shared memory does not match its " +
                                                  std::to_string(nodes[myNode].size()) + " ranks");
      return;
    } else if (uniform) {
      buildEqualNodes(scratch, bounded, nodes, myNode, args, &phases);
    } else {
      buildNodeLeaders(scratch, bounded, nodes, myNode, args, &phases);
    }
    sequence_ = makeSequence(std::move(phases));
  }
  // The running phase cancels its requests (the views outlive it: declared first).
  ~HierarchicalAllReduce() override { abort(); }

  Status progress(bool* done) override { return sequence_->progress(done); }
  void abort() override { sequence_->abort(); }
  std::vector<int> pendingPeers() const override {
    std::vector<int> peers = sequence_->pendingPeers();
    std::sort(peers.begin(), peers.end());
    peers.erase(std::unique(peers.begin(), peers.end()), peers.end());
    return peers;
  }
  uint64_t progressMark() const override { return sequence_->progressMark(); }
  // A phase over shared memory waits on a flag, not on the transport's events.
  bool waitForPeers(int timeoutUs) override { return sequence_->waitForPeers(timeoutUs); }

 private:
  SubsetTransport& view(std::vector<int> members, uint32_t channelBase) {
    views_.push_back(
        std::make_unique<SubsetTransport>(transport_, std::move(members), channelBase));
    return *views_.back();
  }
  static std::unique_ptr<Collective> mapped(std::unique_ptr<Collective> phase,
                                            const SubsetTransport& over) {
    return std::make_unique<InParentRanks>(std::move(phase), over);
  }

  void buildEqualNodes(const Scratch& scratch, const PipelineConfig& pipeline,
                       const std::vector<std::vector<int>>& nodes, int myNode,
                       const CollectiveArgs& args, std::vector<std::unique_ptr<Collective>>* out) {
    const std::vector<int>& local = nodes[myNode];
    int localSize = static_cast<int>(local.size());
    int j =
        static_cast<int>(std::find(local.begin(), local.end(), transport_.rank()) - local.begin());
    size_t elem = dataTypeSize(args.type);
    std::vector<Segment> segments = ringParts(localSize, args.count);
    uint8_t* recv = static_cast<uint8_t*>(args.recvbuff);
    uint8_t* mine = recv + segments[j].offset * elem;  // NCCL's in-place offset for the phase
    bool avg = args.op == ftcclAvg;

    SubsetTransport& intraReduce = view(local, kIntraReduceChannels);
    CollectiveArgs sum = args;  // the shm phases divide an Avg by the local size: not here
    sum.op = avg ? ftcclSum : args.op;
    if (inMemory(local)) {
      out->push_back(mapped(makeShmReduceScatterPhase(*intra_.memory, sum, segments, args.sendbuff,
                                                      mine, intra_.nextSeq),
                            intraReduce));
    } else {
      out->push_back(
          mapped(makeRingReduceScatterPhase(intraReduce, scratch, pipeline, opIdOf(args), args.type,
                                            args.op, 0, segments, args.sendbuff, mine),
                 intraReduce));
    }
    std::vector<int> peers;  // local index j on every node
    for (const auto& node : nodes) peers.push_back(node[j]);
    CollectiveArgs inter = args;
    inter.sendbuff = inter.recvbuff = mine;
    inter.count = segments[j].count;
    inter.op = avg ? ftcclSum : args.op;
    SubsetTransport& interNode = view(peers, kInterNodeChannels);
    out->push_back(mapped(makeRingAllReduce(interNode, scratch, pipeline, inter), interNode));
    if (avg) {
      out->push_back(
          std::make_unique<DivideStep>(mine, segments[j].count, args.type, transport_.size()));
    }
    SubsetTransport& intraGather = view(local, kIntraGatherChannels);
    if (inMemory(local)) {
      out->push_back(
          mapped(makeShmAllGatherPhase(*intra_.memory, sum, segments, mine, recv, intra_.nextSeq),
                 intraGather));
    } else {
      out->push_back(
          mapped(makeRingAllGatherPhase(intraGather, pipeline, opIdOf(args), elem, segments, recv),
                 intraGather));
    }
  }

  void buildNodeLeaders(const Scratch& scratch, const PipelineConfig& pipeline,
                        const std::vector<std::vector<int>>& nodes, int myNode,
                        const CollectiveArgs& args, std::vector<std::unique_ptr<Collective>>* out) {
    const std::vector<int>& local = nodes[myNode];
    bool leader = local[0] == transport_.rank();
    bool avg = args.op == ftcclAvg;
    CollectiveArgs reduceArgs = args;
    reduceArgs.root = 0;  // the leader, in the node view's numbering
    reduceArgs.op = avg ? ftcclSum : args.op;
    SubsetTransport& intraReduce = view(local, kIntraReduceChannels);
    out->push_back(mapped(inMemory(local)
                              ? makeShmReduce(*intra_.memory, reduceArgs, intra_.nextSeq)
                              : makeChainReduce(intraReduce, scratch, pipeline, reduceArgs),
                          intraReduce));
    if (leader) {
      std::vector<int> leaders;
      for (const auto& node : nodes) leaders.push_back(node[0]);
      CollectiveArgs inter = reduceArgs;
      inter.sendbuff = args.recvbuff;  // the node's reduction, in place
      SubsetTransport& interNode = view(leaders, kInterNodeChannels);
      out->push_back(mapped(makeRingAllReduce(interNode, scratch, pipeline, inter), interNode));
      if (avg) {
        out->push_back(
            std::make_unique<DivideStep>(args.recvbuff, args.count, args.type, transport_.size()));
      }
    }
    CollectiveArgs bcast = args;
    bcast.sendbuff = args.recvbuff;
    bcast.root = 0;
    SubsetTransport& intraGather = view(local, kIntraGatherChannels);
    out->push_back(mapped(inMemory(local) ? makeShmBroadcast(*intra_.memory, bcast, intra_.nextSeq)
                                          : makeChainBroadcast(intraGather, pipeline, bcast),
                          intraGather));
  }

  // Whether this node's phases run over its shared memory (checked in the constructor:
  // the memory is there and holds the node's ranks).
  bool inMemory(const std::vector<int>& local) const { return intra_.shared && local.size() > 1; }

  Transport& transport_;
  const IntraNodeMemory intra_;
  std::vector<std::unique_ptr<SubsetTransport>> views_;
  std::unique_ptr<Collective> sequence_;
};

}  // namespace

std::unique_ptr<Collective> makeHierarchicalAllReduce(Transport& transport, const Scratch& scratch,
                                                      const PipelineConfig& pipeline,
                                                      const std::vector<std::vector<int>>& nodes,
                                                      const CollectiveArgs& args,
                                                      const IntraNodeMemory& intra) {
  return std::make_unique<HierarchicalAllReduce>(transport, scratch, pipeline, nodes, args, intra);
}

}  // namespace ftccl
