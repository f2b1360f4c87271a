// Tree all-reduce over a double binary tree (tree.h), pipelined in chunks.
//
// Why a double tree: the ring pays 2(n-1) latencies, a tree 2 log2(n), which is what
// counts for small messages. One binary tree leaves its leaves (half the ranks) idle
// on the way down and loads its interior; two trees that share no interior rank, each
// carrying half of the buffer, use every rank's links in both directions, and each
// rank combines (and stages) for one tree at most. Cost: every rank sends and
// receives about the whole buffer once per direction (vs 2(n-1)/n for the ring), so
// the ring wins again for large messages.
//
// Layout: tree 0 reduces elements [0, h), tree 1 [h, count), h = ceil(count / 2).
// Each half is cut into chunks; lane c of tree t (c < lanes = channels, at most
// kMaxPipelineChannels) carries chunks c, c + lanes, ... on channel t * lanes + c, so
// keys stay below 2 * channels and each (pair, channel) stream is in posting order.
//
// A lane runs four streams, each with at most one chunk posted, so a chunk goes down
// as soon as the root finished it while later chunks still go up:
//   gather:  children's partials into staging, then out = in (op) child0 (op) child1
//            into recvbuff (a fixed order; no copy of the input); the root also
//            divides once for Avg. The next gather reuses staging after the combine.
//   up:      chunk j to the parent once gathered (a leaf sends its input directly).
//   down:    the final chunk j from the parent into recvbuff, posted only once up j
//            completed: that send reads the same memory (in place, or a partial).
//   forward: chunk j to the children once final (the root: once gathered).
// Every rank ends with the root's bits.
//
// Scratch: a rank stages only for the tree where it is interior, so that tree's lanes
// take the whole scratch (contiguous, slots * slotBytes), cut into 2 * lanes equal
// sub-slots: lane c's child i uses sub-slot 2c + i (one slotBytes each with the
// communicator's 2 * channels slots). A chunk is at most one sub-slot, identical on
// every rank. Tolerates abort() at any point: it cancels every posted request.
#include <algorithm>
#include <cstring>
#include <vector>

#include "algorithms/collective.h"
#include "algorithms/inflight.h"
#include "algorithms/tree.h"
#include "reduce/reduce.h"

namespace ftccl {
namespace {

class TreeAllReduce final : public Collective {
 public:
  TreeAllReduce(Transport& transport, const Scratch& scratch, const PipelineConfig& pipeline,
                const CollectiveArgs& args)
      : args_(args),
        n_(transport.size()),
        elemSize_(dataTypeSize(args.type)),
        lanesPerTree_(std::clamp(pipeline.channels, 1, kMaxPipelineChannels)),
        inFlight_(transport, 2 * lanesPerTree_ * kStreams) {
    staging_ = scratch.base;
    subSlotBytes_ = scratch.slotBytes * static_cast<size_t>(std::max(scratch.slots, 0)) /
                    (2 * static_cast<size_t>(lanesPerTree_));
    chunkElems_ = std::max<size_t>(
        1, std::min(pipeline.chunkBytes, subSlotBytes_) / std::max<size_t>(elemSize_, 1));
    if (n_ == 1 || args.count == 0) return;
    lanes_.reserve(2 * static_cast<size_t>(lanesPerTree_));
    if (subSlotBytes_ < elemSize_) setup_ = invalidArgument("tree all-reduce: scratch too small");
    size_t half = (args.count + 1) / 2;
    for (int t = 0; t < 2; ++t) {
      Tree& tree = trees_[t];
      tree.links = doubleTreeLinks(n_, t, transport.rank());
      tree.begin = t == 0 ? 0 : half;
      tree.end = t == 0 ? half : args.count;
      size_t chunks = (tree.end - tree.begin + chunkElems_ - 1) / chunkElems_;
      if (!tree.links.children.empty() && !trees_[1 - t].links.children.empty()) {
        setup_ = internalError("tree all-reduce: rank interior in both trees");
      }
      for (int c = 0; c < lanesPerTree_ && static_cast<size_t>(c) < chunks; ++c) {
        Lane lane;
        lane.tree = t;
        lane.index = c;
        lane.chunks = (chunks - c + lanesPerTree_ - 1) / lanesPerTree_;
        // A leaf has nothing to gather: its input is ready.
        if (tree.links.children.empty()) lane.streams[kGather].done = lane.chunks;
        lanes_.push_back(lane);
      }
    }
  }

  Status progress(bool* done) override {
    *done = false;
    FTCCL_CHECK(setup_);
    if (n_ == 1 || args_.count == 0) {
      if (args_.count && args_.sendbuff != args_.recvbuff) {
        std::memcpy(args_.recvbuff, args_.sendbuff, args_.count * elemSize_);
      }
      *done = true;
      return Status::ok();
    }
    bool all = true;
    for (Lane& lane : lanes_) {
      FTCCL_CHECK(advance(lane));
      const Tree& tree = trees_[lane.tree];
      all = all && (tree.links.children.empty() ? lane.streams[kDown].done
                                                : lane.streams[kForward].done) == lane.chunks;
    }
    *done = all;
    return Status::ok();
  }

  void abort() override { inFlight_.abort(); }
  std::vector<int> pendingPeers() const override { return inFlight_.pendingPeers(); }
  uint64_t progressMark() const override { return inFlight_.progressMark(); }

 private:
  struct Tree {
    TreeLinks links;
    size_t begin = 0, end = 0;  // element range
  };
  enum StreamKind { kGather, kUp, kDown, kForward, kStreams };
  struct Stream {
    size_t done = 0;  // lane-local chunks completed
  };
  struct Lane {
    int tree = 0, index = 0;
    size_t chunks = 0;  // this lane's chunks: index, index + lanes, ...
    Stream streams[kStreams];
  };

  uint8_t* out(size_t element) const {
    return static_cast<uint8_t*>(args_.recvbuff) + element * elemSize_;
  }
  const uint8_t* in(size_t element) const {
    return static_cast<const uint8_t*>(args_.sendbuff) + element * elemSize_;
  }
  uint8_t* staging(const Lane& lane, int child) const {
    return staging_ + static_cast<size_t>(2 * lane.index + child) * subSlotBytes_;
  }

  // Runs the lane's streams until none can move. Each stream's gate keeps the hazards
  // out: up after gather (the partial exists), down after up (its memory is free),
  // forward after the chunk is final, gather again after the combine read staging.
  Status advance(Lane& lane) {
    const Tree& tree = trees_[lane.tree];
    bool root = tree.links.parent < 0, leaf = tree.links.children.empty();
    Stream* s = lane.streams;
    for (bool moved = true; moved;) {
      moved = false;
      size_t finished = root ? s[kGather].done : s[kDown].done;
      bool ready[kStreams] = {
          !leaf && s[kGather].done < lane.chunks, !root && s[kUp].done < s[kGather].done,
          !root && s[kDown].done < s[kUp].done, !leaf && s[kForward].done < finished};
      for (int k = 0; k < kStreams; ++k) {
        if (!ready[k]) continue;
        bool completed = false;
        FTCCL_CHECK(step(lane, static_cast<StreamKind>(k), &completed));
        moved = moved || completed;
      }
    }
    return Status::ok();
  }

  // Posts stream `kind`'s next chunk if nothing is posted, then tests it.
  Status step(Lane& lane, StreamKind kind, bool* completed) {
    const Tree& tree = trees_[lane.tree];
    Stream& s = lane.streams[kind];
    int channel = lane.tree * lanesPerTree_ + lane.index;
    int group = channel * kStreams + kind;
    size_t first = tree.begin + (lane.index + s.done * lanesPerTree_) * chunkElems_;
    size_t count = std::min(chunkElems_, tree.end - first);
    size_t bytes = count * elemSize_;
    const std::vector<int>& children = tree.links.children;
    if (inFlight_.idle(group)) {
      MessageKey key = args_.key(static_cast<uint32_t>(channel));
      switch (kind) {
        case kGather:
          for (size_t i = 0; i < children.size(); ++i) {
            FTCCL_CHECK(
                inFlight_.recv(group, children[i], staging(lane, static_cast<int>(i)), bytes, key));
          }
          break;
        case kUp:  // a leaf sends its input as it is, an interior rank its partial
          FTCCL_CHECK(inFlight_.send(group, tree.links.parent,
                                     children.empty() ? in(first) : out(first), bytes, key));
          break;
        case kDown:
          FTCCL_CHECK(inFlight_.recv(group, tree.links.parent, out(first), bytes, key));
          break;
        case kForward:
          for (size_t i = 0; i < children.size(); ++i) {
            FTCCL_CHECK(inFlight_.send(group, children[i], out(first), bytes, key));
          }
          break;
        case kStreams:
          break;
      }
    }
    bool finished = false;
    FTCCL_CHECK(inFlight_.testAll(group, &finished));
    if (!finished) return Status::ok();
    if (kind == kGather) combine(lane, first, count);
    ++s.done;
    *completed = true;
    return Status::ok();
  }

  // out = in (op) child0 (op) child1, always in this order; the root finishes Avg.
  void combine(const Lane& lane, size_t first, size_t count) {
    const Tree& tree = trees_[lane.tree];
    const uint8_t* acc = in(first);
    for (size_t i = 0; i < tree.links.children.size(); ++i) {
      reduce(out(first), acc, staging(lane, static_cast<int>(i)), count, args_.type, args_.op);
      acc = out(first);
    }
    if (tree.links.parent < 0 && args_.op == ftcclAvg) {
      divideBy(out(first), count, args_.type, n_);
    }
  }

  CollectiveArgs args_;
  int n_;
  size_t elemSize_;
  int lanesPerTree_;
  InFlight inFlight_;  // one group per lane (its channel) and stream
  uint8_t* staging_ = nullptr;
  size_t subSlotBytes_ = 0;
  size_t chunkElems_ = 1;
  Status setup_;
  Tree trees_[2];
  std::vector<Lane> lanes_;
};

}  // namespace

std::unique_ptr<Collective> makeTreeAllReduce(Transport& transport, const Scratch& scratch,
                                              const PipelineConfig& pipeline,
                                              const CollectiveArgs& args) {
  return std::make_unique<TreeAllReduce>(transport, scratch, pipeline, args);
}

}  // namespace ftccl
