#include "core/communicator.h"

#include <algorithm>

#include "reduce/reduce.h"
#include "topology/topology.h"
#include "transports/shm/node_arena.h"
#include "transports/shm/node_segment.h"
#include "util/log.h"

namespace ftccl {
namespace {

std::string describeBatch(const std::vector<OpRequest>& batch, int rank) {
  std::string what = batch.size() == 1 ? opKindName(batch[0].kind)
                                       : "group of " + std::to_string(batch.size()) + " ops";
  if (batch.size() == 1 && batch[0].kind != OpKind::kSend && batch[0].kind != OpKind::kRecv) {
    what += " (op " + std::to_string(batch[0].args.opSeq) + ", rank " + std::to_string(rank) + ")";
  } else if (batch.size() == 1) {
    what += " (peer " + std::to_string(batch[0].peer) + ", rank " + std::to_string(rank) + ")";
  } else {
    what += " (rank " + std::to_string(rank) + ")";
  }
  return what;
}

}  // namespace

Communicator::Communicator()
    : driver_(revocation_,
              OpDriver::Hooks{[this](const Status& cause) { revoke(cause); },
                              [this] { return diagnoseHang(); }, [this] { logMidTransfer(); }}) {}

Status Communicator::create(int nranks, const ftcclUniqueId& id, int rank,
                            const ftcclConfig_t* config, std::unique_ptr<Communicator>* out,
                            const std::function<bool()>& cancelled) {
  std::unique_ptr<Communicator> comm(new Communicator());
  FTCCL_CHECK(comm->init(nranks, id, rank, config, cancelled));
  *out = std::move(comm);
  return Status::ok();
}

Status Communicator::joinAsSpare(const ftcclUniqueId& joinId, const ftcclConfig_t* config,
                                 std::unique_ptr<Communicator>* out) {
  std::unique_ptr<Communicator> comm(new Communicator());
  FTCCL_CHECK(comm->initJoining(joinId, config));
  *out = std::move(comm);
  return Status::ok();
}

Communicator::~Communicator() {
  leaveHealth(/*orderly=*/false);
  // Before the staging memory goes: no late transfer may land in freed memory.
  transport_.reset();
}

OpBuilder::Target Communicator::opTarget() const {
  return OpBuilder::Target{transport_.get(), &scratch_, epochs_.rank(), epochs_.nranks()};
}

Status Communicator::execute(const Ticket& ticket, const std::vector<OpRequest>& batch) {
  order_.awaitTurn(ticket, [&] { return revocation_.aborted(); });
  const int rank = epochs_.rank();
  auto describe = [&batch, rank] { return describeBatch(batch, rank); };
  Status result;
  if (revocation_.aborted()) {
    result = invalidUsage(describe() + ": the communicator was aborted");
  } else if (revocation_.revoked()) {
    result = revokedStatus(describe().c_str());
  } else if (ticket.epoch != epochs_.epoch()) {
    result = remoteError(describe() + ": issued before the rebuild into epoch " +
                         std::to_string(epochs_.epoch()) + "; issue it again");
  } else {
    uint64_t collectives = 0;
    int kind = static_cast<int>(batch[0].kind);
    for (const OpRequest& op : batch) {
      if (op.kind == OpKind::kSend || op.kind == OpKind::kRecv) continue;
      if (collectives++ == 0) kind = static_cast<int>(op.kind);
    }
    const bool quick =
        batch.size() == 1 &&
        batch[0].args.count * dataTypeSize(batch[0].args.type) <= OpTimer::kQuickBytes;
    const OpTimer::Start start = timer_.begin(kind, quick);
    board_->begin(kind, collectives, start.boardNs);
    OpTimer::Clock::time_point waited{};
    try {
      std::unique_ptr<Collective> op = builder_.build(opTarget(), batch);
      result = driver_.drive(*transport_, *op, OpDriver::Describe(describe), start.at);
      waited = driver_.firstClockRead();
    } catch (const std::exception& e) {  // the turn below must be released whatever happens
      result = internalError(describe() + ": " + e.what());
      revoke(result);
    }
    const OpTimer::End end = timer_.end(start, waited);
    const uint64_t elapsedNs = end.elapsedNs;
    board_->end(result.isOk(), elapsedNs, end.boardNs);
    if (result.code() == ftcclInvalidUsage && !revocation_.aborted() && batch.size() == 1) {
      result = Status(result.code(), result.message() + " (this rank called it with count " +
                                         std::to_string(batch[0].args.count) + " of " +
                                         dataTypeName(batch[0].args.type) + ")");
    }
    if (result.isOk() && config_.stats) recordStats(batch, elapsedNs);
    const int nranks = epochs_.nranks();
    if (result.isOk() && nranks > 1 && ticket.index == 0) {
      transport_->logLanes((rank + 1) % nranks);
      transport_->logLanes((rank + nranks - 1) % nranks);
    }
  }
  order_.finish(ticket);
  if (!result.isOk()) setLastError(result.message());
  return result;
}

void Communicator::waitForIssuedOps() {
  order_.awaitAllRun([&] { return revocation_.aborted(); });
}

void Communicator::revoke(const Status& cause, uint64_t newsEpoch) {
  if (!revocation_.revoke(cause, newsEpoch)) return;
  // A failure found by health is already logged once by it; log other causes here.
  if (cause.code() == ftcclRemoteError) {
    FTCCL_LOG(Debug, Coll, "rank {}: communicator revoked: {}", epochs_.rank(), cause.message());
  } else {
    FTCCL_LOG(Error, Coll, "rank {}: communicator revoked: {}", epochs_.rank(), cause.message());
  }
  // Wake the thread driving an op (it sleeps on the worker's event fd) and ops waiting
  // for their turn: they fail at once. (Under the lock: a worker switch may replace it.)
  {
    std::lock_guard<std::mutex> lock(transportMutex_);
    if (transport_) transport_->interrupt();
  }
  order_.wakeAll();
}

void Communicator::abort() {
  revocation_.abort();
  {
    std::lock_guard<std::mutex> lock(transportMutex_);
    if (transport_) transport_->interrupt();
  }
  order_.wakeAll();
  inbox_.wake();  // a waiting rebuild or standby returns at once
}

void Communicator::closeTransport() {
  std::unique_ptr<WorldTransport> closing;
  {
    std::lock_guard<std::mutex> lock(transportMutex_);  // abort() interrupts it under this lock
    closing = std::move(transport_);
  }
  closing.reset();
}

std::vector<int> Communicator::failedRanks() const { return epochs_.current()->failedRanks; }

// Shared memory and CMA reach the peers of this host and network namespace (other
// namespaces are emulated hosts: TCP, where peer error handling costs nothing and keeps
// UCX from logging a departed peer as an error).
void Communicator::markLocalPeers(const std::vector<PeerInfo>& peers) {
  int self = transport_->selfWorld();
  if (self < 0) return;
  const PeerInfo& me = peers[static_cast<size_t>(self)];
  for (size_t w = 0; w < peers.size(); ++w) {
    transport_->setLocal(w, peers[w].host == me.host && peers[w].netns == me.netns);
  }
}

void Communicator::computeLayout(const EpochView& view) {
  std::vector<std::string> names;
  std::vector<Locality> where;
  for (int w : view.worldOf) {
    const PeerInfo& p = view.peers[static_cast<size_t>(w)];
    names.push_back(p.node);
    Locality l;
    l.package = p.package;
    l.numaNode = p.numaNode;
    where.push_back(l);
  }
  NodeLayout layout = groupByNode(names, where);
  CommShape shape{view.nranks(), static_cast<int>(layout.nodes.size()), layout.maxRanksPerNode(),
                  layout.uniform()};
  builder_.setLayout(layout.nodes, shape);
  if (view.rank == 0) FTCCL_LOG(Info, Init, "node layout: {}", describe(layout));
}

// Spin budget from the ranks on this host (spares sleep until activated: no core).
void Communicator::chooseSpin(const EpochView& view) {
  int localRanks = 0;
  const std::string& host = view.self().host;
  for (int w : view.worldOf) localRanks += view.peers[static_cast<size_t>(w)].host == host ? 1 : 0;
  driver_.chooseSpin(localRanks);
}

}  // namespace ftccl
