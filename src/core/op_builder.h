// Turns a batch of requests into one runnable Collective: the algorithm choice (the
// tuner over the node layout), the op's signature, and the algorithm's factory.
// Used only by the thread whose turn it is (core/op_order.h): no lock of its own.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "algorithms/collective.h"
#include "core/op_request.h"
#include "tuning/algorithm_choice.h"

namespace ftccl {

class OpBuilder {
 public:
  // What the algorithms run on, for this epoch.
  struct Target {
    Transport* transport = nullptr;
    const Scratch* scratch = nullptr;
    int rank = -1;
    int nranks = 0;
  };

  std::unique_ptr<Collective> build(const Target& target, const std::vector<OpRequest>& batch);

  // The node layout of the current membership (hierarchical algorithms and the tuner).
  void setLayout(std::vector<std::vector<int>> nodes, const CommShape& shape);
  const CommShape& shape() const { return shape_; }
  const Tuner& tuner() const { return tuner_; }
  void setTuner(Tuner tuner) {
    tuner_ = std::move(tuner);
    forgetChoices();
  }
  // The node's shared memory of this epoch, once every rank agreed that every node of
  // several ranks mapped its own (`shared`; false: none anywhere). `memory` is this
  // rank's node's, null on a node of one rank. One node: the shm algorithms replace the
  // transport's; several: the hierarchical all-reduce's intra-node phases use it. Its
  // sequences start again at 1, as its flags do.
  void setNodeMemory(NodeMemory* memory, bool shared);

 private:
  std::unique_ptr<Collective> buildCollective(const Target& target, const OpRequest& request);
  void logChoiceOnce(int rank, CollectiveKind kind, size_t bytes, const AlgorithmChoice& choice);
  // The tuner's choice, remembered per collective and size: an application repeats a
  // few sizes, and weighing every candidate cost a small op ~1 us (the calibration's
  // interpolation allocates). Cleared whenever the tuner or the shape changes. Logged
  // the first time (logChoiceOnce); the last one asked is kept at hand (most ops repeat
  // it, and the map's lookup and the log's check cost a small op ~2%).
  const AlgorithmChoice& choose(int rank, CollectiveKind kind, size_t bytes);
  void forgetChoices();
  void markSharing();  // shape_'s memory flags from the layout and the memory

  Tuner tuner_;
  std::vector<std::vector<int>> nodes_;  // ranks of each node, intra-node ring order
  // ... each in ascending order, as the nodes' shared memory numbers them.
  std::vector<std::vector<int>> ascendingNodes_;
  CommShape shape_;
  NodeMemory* nodeMemory_ = nullptr;
  bool nodesShare_ = false;
  uint32_t nodeSeq_ = 1;
  std::vector<uint64_t> loggedChoices_;  // (collective, algorithm, size class) logged
  std::unordered_map<uint64_t, AlgorithmChoice> choices_;  // by (collective, bytes)
  uint64_t lastKey_ = 0;
  const AlgorithmChoice* lastChoice_ = nullptr;  // choices_[lastKey_] (nodes stay put)
};

// The op's digest carried in every message's tag (transports/tag_layout.h).
uint32_t opSignature(CollectiveKind kind, const CollectiveArgs& args,
                     const AlgorithmChoice& choice);

}  // namespace ftccl
