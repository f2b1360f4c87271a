#include "core/op_builder.h"

#include <algorithm>

#include "algorithms/catalog.h"
#include "reduce/reduce.h"
#include "util/log.h"

namespace ftccl {
namespace {

CollectiveKind collectiveKindOf(OpKind kind) {
  switch (kind) {
    case OpKind::kBroadcast:
      return CollectiveKind::kBroadcast;
    case OpKind::kReduce:
      return CollectiveKind::kReduce;
    case OpKind::kAllGather:
      return CollectiveKind::kAllGather;
    case OpKind::kReduceScatter:
      return CollectiveKind::kReduceScatter;
    default:
      return CollectiveKind::kAllReduce;
  }
}

}  // namespace

const char* opKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kAllReduce:
      return "AllReduce";
    case OpKind::kBroadcast:
      return "Broadcast";
    case OpKind::kReduce:
      return "Reduce";
    case OpKind::kAllGather:
      return "AllGather";
    case OpKind::kReduceScatter:
      return "ReduceScatter";
    case OpKind::kSend:
      return "Send";
    case OpKind::kRecv:
      return "Recv";
  }
  return "?";
}

// A digest of what every rank must pass alike for the op's messages to pair up: it
// rides in every message's tag (tag_layout.h), so ranks that disagree never match and
// the receiver names the mismatch instead of reducing the wrong bytes.
uint32_t opSignature(CollectiveKind kind, const CollectiveArgs& args,
                     const AlgorithmChoice& choice) {
  bool rooted = kind == CollectiveKind::kBroadcast || kind == CollectiveKind::kReduce;
  bool reduces = kind != CollectiveKind::kBroadcast && kind != CollectiveKind::kAllGather;
  const uint64_t fields[] = {static_cast<uint64_t>(kind),
                             args.count,
                             static_cast<uint64_t>(args.type),
                             reduces ? static_cast<uint64_t>(args.op) : 0,
                             rooted ? static_cast<uint64_t>(args.root) : 0,
                             static_cast<uint64_t>(choice.algorithm),
                             choice.pipeline.chunkBytes,
                             static_cast<uint64_t>(choice.pipeline.channels)};
  uint64_t hash = 0;  // one multiply per field (on every op's path): enough to spread 8 bits
  for (uint64_t field : fields) {
    hash = (hash ^ field) * 0x9e3779b97f4a7c15ull;
    hash ^= hash >> 29;
  }
  return static_cast<uint32_t>(hash >> 56);  // the tag keeps 8 bits: the best-mixed ones
}

void OpBuilder::setLayout(std::vector<std::vector<int>> nodes, const CommShape& shape) {
  nodes_ = std::move(nodes);
  ascendingNodes_ = nodes_;
  for (auto& node : ascendingNodes_) std::sort(node.begin(), node.end());
  shape_ = shape;
  markSharing();
}

void OpBuilder::setNodeMemory(NodeMemory* memory, bool shared) {
  nodeMemory_ = memory;
  nodesShare_ = shared;
  nodeSeq_ = 1;
  markSharing();
}

void OpBuilder::markSharing() {
  const bool oneNode = shape_.nodes <= 1;
  shape_.sharedMemory = nodesShare_ && oneNode && nodeMemory_ != nullptr;
  shape_.singleCopy = shape_.sharedMemory && nodeMemory_->singleCopy();
  shape_.nodesShareMemory = nodesShare_ && !oneNode;
  forgetChoices();
}

void OpBuilder::forgetChoices() {
  choices_.clear();
  lastChoice_ = nullptr;
}

const AlgorithmChoice& OpBuilder::choose(int rank, CollectiveKind kind, size_t bytes) {
  constexpr size_t kMaxRemembered = 4096;  // an application sweeping sizes starts over
  const uint64_t key = (static_cast<uint64_t>(kind) << 56) | (bytes & ((1ull << 56) - 1));
  if (lastChoice_ != nullptr && key == lastKey_) return *lastChoice_;
  auto found = choices_.find(key);
  if (found == choices_.end()) {
    if (choices_.size() >= kMaxRemembered) choices_.clear();
    found = choices_.emplace(key, tuner_.choose(kind, bytes, shape_)).first;
  }
  logChoiceOnce(rank, kind, bytes, found->second);
  lastKey_ = key;
  lastChoice_ = &found->second;
  return found->second;
}

// Send/Recv of a batch are posted together (a group never deadlocks on its own
// transfers); the collectives follow in issue order, the same on every rank.
std::unique_ptr<Collective> OpBuilder::build(const Target& target,
                                             const std::vector<OpRequest>& batch) {
  // One collective (almost every op): no lists to allocate.
  if (batch.size() == 1 && batch[0].kind != OpKind::kSend && batch[0].kind != OpKind::kRecv) {
    return buildCollective(target, batch[0]);
  }
  std::vector<PointToPoint> transfers;
  std::vector<std::unique_ptr<Collective>> parts;
  for (const OpRequest& op : batch) {
    if (op.kind != OpKind::kSend && op.kind != OpKind::kRecv) continue;
    bool send = op.kind == OpKind::kSend;
    void* buffer = send ? const_cast<void*>(op.args.sendbuff) : op.args.recvbuff;
    transfers.push_back({send, op.peer, buffer, op.args.count * dataTypeSize(op.args.type),
                         MessageKey{op.args.opSeq, kPointToPointChannel}});
  }
  if (!transfers.empty()) {
    parts.push_back(makePointToPoint(*target.transport, std::move(transfers)));
  }
  for (const OpRequest& op : batch) {
    if (op.kind != OpKind::kSend && op.kind != OpKind::kRecv) {
      parts.push_back(buildCollective(target, op));
    }
  }
  if (parts.size() == 1) return std::move(parts[0]);
  return makeSequence(std::move(parts));
}

std::unique_ptr<Collective> OpBuilder::buildCollective(const Target& target,
                                                       const OpRequest& request) {
  CollectiveArgs args = request.args;
  CollectiveKind kind = collectiveKindOf(request.kind);
  size_t bytes = args.count * dataTypeSize(args.type);
  if (kind == CollectiveKind::kAllGather || kind == CollectiveKind::kReduceScatter) {
    bytes *= static_cast<size_t>(target.nranks);
  }
  // A calibration probe runs the algorithm asked for, unlogged; an application's op
  // the tuner's choice.
  AlgorithmChoice probe;
  const AlgorithmChoice& choice =
      request.algorithm >= 0
          ? (probe = tuner_.with(static_cast<Algorithm>(request.algorithm), kind, bytes, shape_))
          : choose(target.rank, kind, bytes);
  args.signature = opSignature(kind, args, choice);
  BuildContext context{*target.transport,
                       *target.scratch,
                       choice.pipeline,
                       shape_.nodesShareMemory ? ascendingNodes_ : nodes_,
                       shape_.sharedMemory ? nodeMemory_ : nullptr,
                       &nodeSeq_,
                       {shape_.nodesShareMemory, nodeMemory_, &nodeSeq_}};
  return makeCollective(kind, choice.algorithm, context, args);
}

// Once per collective, algorithm and power-of-two size class.
void OpBuilder::logChoiceOnce(int rank, CollectiveKind kind, size_t bytes,
                              const AlgorithmChoice& choice) {
  int sizeClass = 0;
  while (sizeClass < 63 && (size_t{2} << sizeClass) <= bytes) ++sizeClass;
  uint64_t logKey = (static_cast<uint64_t>(kind) << 16) |
                    (static_cast<uint64_t>(choice.algorithm) << 8) | sizeClass;
  if (std::find(loggedChoices_.begin(), loggedChoices_.end(), logKey) != loggedChoices_.end()) {
    return;
  }
  loggedChoices_.push_back(logKey);
  FTCCL_LOG(Info, Tuning,
            "rank {}: {} of {} B on {} ranks ({} nodes): {} {}, chunk {} B, {} channels, "
            "predicted {:.1f} us",
            rank, collectiveName(kind), bytes, shape_.nranks, shape_.nodes,
            algorithmName(choice.algorithm), choice.forced ? "(forced)" : "(cost model)",
            choice.pipeline.chunkBytes, choice.pipeline.channels, choice.predictedUs);
}

}  // namespace ftccl
