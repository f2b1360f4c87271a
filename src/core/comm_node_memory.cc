// The nodes' shared memory for one epoch (issue 26, docs/shared-memory.md): a fresh
// segment per node at init and at every rebuild, mapped by every rank of the node (the
// activated spare too), and used only if every node of several ranks mapped its own.
//
// A node is the ranks of one node name that share one host, network namespace (abstract
// sockets are per network namespace) and pid namespace (the hand-off checks pids); a
// segment numbers them in ascending order. One node: the shared-memory algorithms
// replace the transport for the whole op, local rank = communicator rank. Several: the
// hierarchical all-reduce runs its intra-node phases there. Every rank decides that
// alike from the epoch's peer table, so all of them take part in the steps below or
// none does:
//  1. The node's leader (its lowest rank) creates the segment (sized from its
//     FTCCL_SHM_SLOT_BYTES; FTCCL_SHM=0 on a leader turns the path off for all) and
//     listens for the node's others on a fresh abstract socket, admitting exactly their
//     pids. A node of one rank has nothing to map.
//  2. It broadcasts the socket's name and the layout to its node over the transport.
//     Those bytes are not authenticated, and need not be: a forged name leads a rank to
//     a socket whose owner is not the leader's pid, or that cannot prove the
//     communicator's key, and the rank then maps nothing.
//  3. Each rank takes the descriptor (fd_handoff.h: pid checks, a challenge-response under
//     the communicator's key bound to the epoch) and maps it, checking the header.
//  4. An all-reduce (min) of "mapped" over all ranks: the path is used only if every
//     rank mapped, since an op over shared memory needs all of its node, and every rank
//     must choose algorithms alike.
//  5. Single copy (transports/shm/peer_reader.h), where an op would use it (one node of
//     2 ranks): each rank published a probe in its slot before step 4; now it holds every
//     rank's process by a pidfd and reads each peer's probe word from that process. A
//     second all-reduce (min): large ops read peers' buffers directly only if every rank
//     could, so that all take the same path.
// A failure in any step leaves the epoch on the transport's algorithms, with the reason
// in the log; only a failure of the transport itself (a member died) fails the caller.
#include <algorithm>
#include <cstring>
#include <numeric>
#include <unordered_map>

#include "algorithms/subset_transport.h"
#include "core/communicator.h"
#include "transports/shm/fd_handoff.h"
#include "transports/shm/node_arena.h"
#include "transports/shm/node_segment.h"
#include "util/log.h"

namespace ftccl {
namespace {

using Clock = std::chrono::steady_clock;

// The setup's messages ride the tuning channel with their own signature: nothing else
// there carries it (the cost model's messages carry 0).
constexpr uint32_t kSetupSignature = 0xa5;
constexpr uint32_t kOfferSeq = 1, kAgreementSeq = 2, kSingleCopySeq = 3;
// One bound for the whole hand-off, the leader's and every member's alike: two failure
// timeouts, at least 1 s. By then health has revoked the epoch if the leader or a member
// died or stopped, and waiting longer would only delay the rebuild. Each member tries
// once (a second try would find the leader gone already), and the leader stops at a
// revocation. The agreement after it allows the bound and a margin, so that a member
// done early never times out waiting for the leader still serving a slow one.
int handoffBoundMs(int failureTimeoutMs) { return std::max(1000, 2 * failureTimeoutMs); }
constexpr int kAgreementMarginMs = 2000;

// A node's leader -> the node: where to get the segment, and its layout.
struct Offer {
  char name[48];  // the hand-off socket's name; empty when the leader offers nothing
  uint64_t slotBytes;
  uint32_t slotsPerRank;
  uint32_t reserved;
};
static_assert(sizeof(Offer) == 64, "the offer is one fixed-size message");

double msSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// This rank's node (its ranks ascending) and the number of nodes; or why the epoch maps
// no memory: a node whose ranks do not share a host and its namespaces, one too large,
// or no node of several ranks.
std::string whyNoNodeMemory(const EpochView& view, std::vector<int>* myNode, int* nodeCount) {
  // Linear in the ranks: at init and every rebuild, with thousands of nodes.
  std::vector<std::vector<int>> nodes;
  std::vector<std::string> names;
  std::unordered_map<std::string, size_t> indexOfName;
  for (int r = 0; r < view.nranks(); ++r) {
    const std::string& name = view.ofRank(r).node;
    const auto inserted = indexOfName.emplace(name, nodes.size());
    if (inserted.second) {
      names.push_back(name);
      nodes.emplace_back();
    }
    nodes[inserted.first->second].push_back(r);
  }
  bool several = false;
  for (size_t k = 0; k < nodes.size(); ++k) {
    const PeerInfo& first = view.ofRank(nodes[k].front());
    for (int r : nodes[k]) {
      const PeerInfo& p = view.ofRank(r);
      if (p.host != first.host) return "node " + names[k] + " spans several hosts";
      if (p.netns != first.netns) return "node " + names[k] + " spans network namespaces";
      if (p.pidns != first.pidns) return "node " + names[k] + " spans pid namespaces";
    }
    if (nodes[k].size() > static_cast<size_t>(shm::kMaxLocalRanks)) {
      return "node " + names[k] + " has more than " + std::to_string(shm::kMaxLocalRanks) +
             " ranks";
    }
    several = several || nodes[k].size() > 1;
    if (std::find(nodes[k].begin(), nodes[k].end(), view.rank) != nodes[k].end()) {
      *myNode = nodes[k];
    }
  }
  *nodeCount = static_cast<int>(nodes.size());
  return several ? "" : "no node has several ranks";
}

}  // namespace

void Communicator::dropNodeMemory() {
  builder_.setNodeMemory(nullptr, false);
  nodeArena_.reset();
  nodeSegment_.reset();  // unmapped: a stale op of the old epoch can write nowhere we read
}

Status Communicator::setUpNodeMemory(const char* when) {
  dropNodeMemory();
  std::shared_ptr<const EpochView> view = epochs_.current();
  std::vector<int> local;  // this rank's node, ascending: local rank i is local[i]
  int nodes = 0;
  if (view->rank < 0 || !authRoot_ || !whyNoNodeMemory(*view, &local, &nodes).empty()) {
    return Status::ok();
  }
  const int n = static_cast<int>(local.size());
  const int rank = static_cast<int>(std::find(local.begin(), local.end(), view->rank) -
                                    local.begin());  // the local rank
  const bool oneNode = nodes == 1;
  auto start = Clock::now();
  std::vector<int> everyone(static_cast<size_t>(view->nranks()));
  std::iota(everyone.begin(), everyone.end(), 0);
  SubsetTransport all(*transport_, everyone, kTuningChannel);
  SubsetTransport node(*transport_, local, kTuningChannel);
  const uint64_t context = view->epoch;
  const uint32_t epoch = static_cast<uint32_t>(view->epoch);
  auto segment = std::make_unique<shm::NodeSegment>();
  shm::HandoffServer server;
  Offer offer{};
  std::string why;  // why this rank maps nothing

  if (n == 1) {
    // Nothing to map, nothing to offer: straight to the agreement.
  } else if (rank == 0) {
    shm::NodeLayout layout;
    Status made = config_.sharedMemory
                      ? shm::NodeLayout::make(n, config_.shmSlotBytes, shm::kDefaultSlotsPerRank,
                                              epoch, &layout)
                      : invalidUsage("FTCCL_SHM=0 on the node's leader");
    // Each rank's slots next to it, where the node's ranks run on several NUMA nodes
    // (otherwise the leader's allocation already puts them there).
    std::vector<int> memoryNodes;
    for (int r : local) memoryNodes.push_back(view->ofRank(r).memoryNode);
    if (std::count(memoryNodes.begin(), memoryNodes.end(), memoryNodes[0]) == n) {
      memoryNodes.clear();
    }
    if (made.isOk()) made = shm::NodeSegment::create(layout, segment.get(), memoryNodes);
    if (made.isOk() && !segment->placementProblem().empty()) {
      FTCCL_LOG(Info, Init, "rank {}: shared memory at {} placed by the kernel: {}", view->rank,
                when, segment->placementProblem());
    }
    std::vector<pid_t> members;
    for (int r = 1; r < n; ++r) members.push_back(view->ofRank(local[r]).pid);
    shm::HandoffLimits limits;
    limits.attemptsPerPid = 1;
    if (made.isOk()) made = server.start(*authRoot_, context, members, limits);
    if (made.isOk()) {
      std::snprintf(offer.name, sizeof(offer.name), "%s", server.name().c_str());
      offer.slotBytes = layout.slotBytes();
      offer.slotsPerRank = static_cast<uint32_t>(layout.slotsPerRank());
    } else {
      why = made.message();
    }
  }
  CollectiveArgs args;
  args.sendbuff = args.recvbuff = &offer;
  args.count = sizeof(offer);
  args.type = ftcclUint8;
  args.opSeq = kOfferSeq;
  args.signature = kSetupSignature;
  if (n > 1) {
    std::unique_ptr<Collective> broadcast = makeChainBroadcast(node, config_.pipeline, args);
    FTCCL_CHECK(driver_.drive(*transport_, *broadcast,
                              std::string("offering shared memory at ") + when, {},
                              driver_.internalOpTimeoutMs()));
  }
  offer.name[sizeof(offer.name) - 1] = '\0';

  bool mapped = n == 1;  // a node of one rank needs no memory
  const int boundMs = handoffBoundMs(config_.failureTimeoutMs);
  const net::Deadline deadline = net::deadlineAfterMs(boundMs);
  if (n == 1) {
    // Mapped already: nothing to take.
  } else if (offer.name[0] == '\0') {
    if (why.empty()) why = "the node's leader offers no segment";
  } else if (rank == 0) {
    Status served = server.serve(segment->fd(), deadline,
                                 [this] { return revocation_.revoked() || revocation_.aborted(); });
    server.close();
    mapped = served.isOk();
    if (!mapped) why = served.message();
  } else {
    shm::NodeLayout layout;
    Status got = shm::NodeLayout::make(n, offer.slotBytes, static_cast<int>(offer.slotsPerRank),
                                       epoch, &layout);
    net::Fd fd;
    if (got.isOk()) {
      got = shm::receiveFd(offer.name, *authRoot_, context, view->ofRank(local[0]).pid, deadline,
                           &fd);
    }
    if (got.isOk()) got = shm::NodeSegment::map(fd.get(), layout, segment.get());
    mapped = got.isOk();
    if (!mapped) why = got.message();
  }
  // Only where an op would use it (every rank knows the layout alike, so all probe or
  // none): the probe and its agreement would otherwise cost every init and rebuild.
  const bool probeSingleCopy = oneNode && n <= kShmSingleCopyMaxRanks;
  std::unique_ptr<shm::NodeArena> arena;
  if (mapped && n > 1) {
    arena = std::make_unique<shm::NodeArena>(*segment, rank);
    // Read by the peers only after the agreement below.
    if (probeSingleCopy) arena->publishProbe();
  }

  // Whether every rank says yes (an all-reduce, min, of `yes` over the transport).
  auto allSay = [&](bool yes, uint32_t opSeq, const std::string& what, int timeoutMs,
                    bool* agreed) -> Status {
    int32_t mine = yes ? 1 : 0, least = 0;
    CollectiveArgs agree;
    agree.sendbuff = &mine;
    agree.recvbuff = &least;
    agree.count = 1;
    agree.type = ftcclInt32;
    agree.op = ftcclMin;
    agree.opSeq = opSeq;
    agree.signature = kSetupSignature;
    std::unique_ptr<Collective> op = makeRecursiveDoublingAllReduce(all, scratch_, agree);
    FTCCL_CHECK(driver_.drive(*transport_, *op, what + when, {}, timeoutMs));
    *agreed = least == 1;
    return Status::ok();
  };
  // A rank whose node was quick (or has one rank) waits here for the slowest node's
  // whole set-up: its leader's creation and offer (an op's bound) and its hand-off.
  bool everyoneMapped = false;
  FTCCL_CHECK(allSay(mapped, kAgreementSeq, "agreeing on shared memory at ",
                     driver_.internalOpTimeoutMs() + boundMs + kAgreementMarginMs,
                     &everyoneMapped));
  if (!everyoneMapped) {
    const bool chosen = rank == 0 && !config_.sharedMemory;  // FTCCL_SHM=0: no warning
    if (chosen && n > 1) {
      FTCCL_LOG(Info, Init, "rank {}: FTCCL_SHM=0 on this node's leader: no shared memory at {}",
                view->rank, when);
    } else if (!why.empty() && why != "the node's leader offers no segment" && !chosen) {
      FTCCL_LOG(Warn, Init, "rank {}: no shared memory at {}: {}", view->rank, when, why);
    } else if (view->rank == 0) {
      FTCCL_LOG(Info, Init, "no shared memory at {}: {}", when,
                why.empty() ? "a rank could not map the segment (its log says why)" : why);
    }
    return Status::ok();
  }
  bool singleCopy = false;
  if (probeSingleCopy) {
    std::string whyNotSingle = "FTCCL_SHM_SINGLE_COPY=0";
    bool canRead = false;
    if (config_.shmSingleCopy) {
      std::vector<pid_t> pids;
      for (int r = 0; r < n; ++r) pids.push_back(view->ofRank(local[r]).pid);
      Status probed = arena->probeSingleCopy(pids);
      canRead = probed.isOk();
      if (!canRead) whyNotSingle = probed.message();
    }
    FTCCL_CHECK(allSay(canRead, kSingleCopySeq, "agreeing on single copy at ",
                       driver_.internalOpTimeoutMs(), &singleCopy));
    if (!canRead) {
      FTCCL_LOG(Info, Init, "rank {}: no single copy at {}: {}", view->rank, when, whyNotSingle);
    }
  }
  if (arena) {
    arena->useSingleCopy(singleCopy);
    nodeSegment_ = std::move(segment);
    nodeArena_ = std::move(arena);
  }
  builder_.setNodeMemory(nodeArena_.get(), true);
  if (view->rank == 0 && nodeSegment_) {
    const shm::NodeLayout& layout = nodeSegment_->layout();
    FTCCL_LOG(Info, Init,
              "shared memory at {}: {} ranks x {} slots of {} KiB, {:.1f} MiB for the node{}, "
              "single copy {}, mapped by all in {:.1f} ms",
              when, n, layout.slotsPerRank(), layout.slotBytes() >> 10,
              layout.totalBytes() / 1048576.0,
              oneNode ? "" : " (rank 0's of " + std::to_string(nodes) + " nodes)",
              singleCopy ? "on" : "off", msSince(start));
  } else if (view->rank == 0) {
    FTCCL_LOG(Info, Init,
              "shared memory at {}: on every node of several ranks ({} nodes in all), in "
              "{:.1f} ms",
              when, nodes, msSince(start));
  }
  return Status::ok();
}

// As shareTuningAfterCommit: a failure while the new epoch sets up revokes that epoch;
// the member is in it all the same, and its next op reports the failure.
Status Communicator::setUpNodeMemoryAfterCommit(const char* when) {
  Status set = setUpNodeMemory(when);
  if (set.isOk() || revocation_.revoked()) return Status::ok();
  return set;
}

}  // namespace ftccl
