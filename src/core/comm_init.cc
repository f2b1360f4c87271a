// A communicator comes to be: by the rendezvous of init (ranks and spares), or by a
// newcomer joining the spare pool of a running one through a member's join id.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "bootstrap/bootstrap.h"
#include "core/communicator.h"
#include "reduce/reduce.h"
#include "topology/topology.h"
#include "transports/tag_layout.h"
#include "util/env.h"
#include "util/log.h"
#include "util/net/socket.h"

namespace ftccl {
namespace {

using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string hostName() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return host;
}

// A health key ("127.0.0.1:4242", "[::1]:4242") <-> the address fields of an id.
bool splitKey(const std::string& key, std::string* host, uint16_t* port) {
  size_t colon = key.rfind(':');
  if (colon == std::string::npos) return false;
  *host = key.substr(0, colon);
  if (host->size() > 2 && host->front() == '[') *host = host->substr(1, host->size() - 2);
  long p = std::atol(key.c_str() + colon + 1);
  *port = static_cast<uint16_t>(p);
  return p > 0 && p < 65536;
}

std::string joinKey(const UniqueIdContents& c) {
  bool v6 = c.rootHost.find(':') != std::string::npos;
  return (v6 ? "[" + c.rootHost + "]" : c.rootHost) + ":" + std::to_string(c.rootPort);
}

}  // namespace

Status Communicator::joinId(ftcclUniqueId* id) {
  if (revocation_.revoked()) {
    return invalidUsage("the communicator is revoked: rebuild it before handing out join ids");
  }
  UniqueIdContents c;
  if (!splitKey(health_->selfKey(), &c.rootHost, &c.rootPort)) {
    return internalError("bad health address " + health_->selfKey());
  }
  std::random_device random;
  for (uint8_t& b : c.secret) b = static_cast<uint8_t>(random());
  c.nonce = commKey_;
  std::vector<uint8_t> secret(c.secret, c.secret + sizeof(c.secret));
  inbox_.addJoinSecret(secret);
  health_->allowJoin(healthId_, std::move(secret));
  encodeUniqueId(c, id);
  return Status::ok();
}

// The newcomer: listens for its answer, asks the member named by the id, and once the
// pool commit is in, connects to everyone and waits as a spare like those of init.
Status Communicator::initJoining(const ftcclUniqueId& joinId, const ftcclConfig_t* config) {
  auto start = Clock::now();
  FTCCL_CHECK(initLogging());
  FTCCL_CHECK(resolveConfig(config, &config_));
  driver_.setLimits({config_.opTimeoutMs, config_.failureTimeoutMs, config_.probeIntervalMs});
  UniqueIdContents contents;
  FTCCL_CHECK(decodeUniqueId(joinId, &contents));
  commKey_ = contents.nonce;
  board_ = std::make_shared<ProgressBoard>(commKey_);
  driver_.setBoard(board_.get());
  PeerInfo mine;
  FTCCL_CHECK(startLocal(contents, &mine));

  HealthRegistration pending;
  pending.commKey = commKey_;
  pending.joining = true;
  pending.listener = this;
  pending.probeIntervalMs = config_.probeIntervalMs;
  pending.failureTimeoutMs = config_.failureTimeoutMs;
  pending.joinSecrets.emplace_back(contents.secret, contents.secret + sizeof(contents.secret));
  healthId_ = health_->add(std::move(pending));
  JoinRequest ask;
  ask.candidate = JoiningSpare{{mine.key, mine.host, mine.pid}, encodePeerInfo(mine)};
  ask.secret = {1};  // "from the newcomer itself": the join key's seal is its proof (health_auth.h)
  std::string member = joinKey(contents);
  health_->sendRecovery(member, commKey_, ask);
  JoinAccept accept;
  crypto::Key rootKey{};
  if (!inbox_.awaitJoinAccept(
          config_.bootstrapTimeoutMs, [&] { return revocation_.aborted(); }, &accept, &rootKey)) {
    health_->remove(healthId_, /*orderly=*/false, 0);
    healthId_ = 0;
    return timeoutError("no answer from member " + member + " to the join request within " +
                        std::to_string(config_.bootstrapTimeoutMs) +
                        " ms (unreachable, a stale join id, or a recovery under way: try again)");
  }
  authRoot_ = std::make_shared<const crypto::Key>(rootKey);
  // The pending registration stays until applyCommit registers this process as a
  // spare: it acks the members' heartbeats in between (they watch it from the pool
  // commit on, and the transport's connect may take longer than their timeout).

  uint64_t commKey = 0;
  auto view = std::make_shared<EpochView>();
  FTCCL_CHECK(decodeJoinPackage(accept.package, &commKey, &config_.pipeline, &view->peers));
  if (commKey != commKey_) return internalError("the join answer names another communicator");
  for (size_t w = 0; w < view->peers.size(); ++w) {
    if (view->peers[w].key == mine.key) view->worldRank = static_cast<int>(w);
  }
  if (view->worldRank < 0) {
    view->worldRank = static_cast<int>(view->peers.size());
    view->peers.push_back(mine);
  }
  std::vector<std::vector<uint8_t>> addresses;
  for (const PeerInfo& p : view->peers) addresses.push_back(p.transportAddress);
  FTCCL_CHECK(transport_->connect(view->worldRank, std::move(addresses),
                                  static_cast<uint32_t>(accept.commit.next.epoch)));
  markLocalPeers(view->peers);
  epochs_.publish(std::move(view));  // the process table; the commit makes the epoch
  FTCCL_CHECK(applyCommit(accept.commit, /*fromJoinAnswer=*/true));
  auto entered = epochs_.current();
  chooseSpin(*entered);
  FTCCL_CHECK(allocateScratch());
  FTCCL_CHECK(openStats());
  FTCCL_LOG(Info, Init,
            "joined the spare pool through {} in {:.1f} ms: {} ranks, {} spares, epoch {}", member,
            msSince(start), entered->nranks(), entered->spares.size(), entered->epoch);
  return Status::ok();
}

Status Communicator::init(int nranks, const ftcclUniqueId& id, int rank,
                          const ftcclConfig_t* config, const std::function<bool()>& cancelled) {
  auto start = Clock::now();
  FTCCL_CHECK(initLogging());
  if (nranks < 1) return invalidArgument("nranks=" + std::to_string(nranks) + " must be >= 1");
  if (static_cast<uint64_t>(nranks) > TagLayout::kMaxRanks) {
    return invalidArgument("nranks=" + std::to_string(nranks) + " exceeds 2^20");
  }
  FTCCL_CHECK(resolveConfig(config, &config_));
  driver_.setLimits({config_.opTimeoutMs, config_.failureTimeoutMs, config_.probeIntervalMs});
  // Ranks nranks .. nranks+nSpares-1 are hot spares: connected, but holding no rank.
  int processes = nranks + config_.nSpares;
  if (static_cast<uint64_t>(processes) > TagLayout::kMaxRanks) {
    return invalidArgument("nranks + nSpares = " + std::to_string(processes) + " exceeds 2^20");
  }
  if (rank < 0 || rank >= processes) {
    return invalidArgument("rank=" + std::to_string(rank) + " is outside [0, " +
                           std::to_string(processes) + ") (nranks=" + std::to_string(nranks) +
                           ", nSpares=" + std::to_string(config_.nSpares) + ")");
  }
  UniqueIdContents contents;
  FTCCL_CHECK(decodeUniqueId(id, &contents));

  PeerInfo mine;
  FTCCL_CHECK(startLocal(contents, &mine));
  std::vector<std::vector<uint8_t>> blobs;
  const std::vector<uint8_t> myBlob = encodePeerInfo(mine);
  const auto rendezvousStart = Clock::now();
  RendezvousStats how;
  FTCCL_CHECK(rendezvous(contents, rank, processes, myBlob, config_.bootstrapTimeoutMs, &blobs,
                         cancelled, &how));
  // What init's cost grows with (issue 27, docs/init-scaling.md): every process receives
  // the whole table, O(N) bytes; the root sends it to a few and each process to at most
  // FTCCL_BOOTSTRAP_FANOUT others (bootstrap/relay.h).
  size_t tableBytes = 0;
  for (const auto& blob : blobs) tableBytes += blob.size();
  FTCCL_LOG(Info, Init,
            "process {}/{}: rendezvous in {:.1f} ms: sent a {} B blob, received a {} B table "
            "(a {} B frame from {}{}), relays it to {}",
            rank, processes, msSince(rendezvousStart), myBlob.size(), tableBytes, how.tableBytes,
            how.tableFrom < 0 ? std::string("the root") : "rank " + std::to_string(how.tableFrom),
            how.parentFailed ? ", its parent having failed it" : "", how.children);
  auto view = std::make_shared<EpochView>();
  view->worldRank = rank;
  view->peers.resize(processes);
  std::vector<std::vector<uint8_t>> addresses(processes);
  std::vector<bool> present(processes, true);
  for (int r = 0; r < processes; ++r) {
    PeerInfo& peer = view->peers[static_cast<size_t>(r)];
    if (blobs[r].empty()) {  // did not join: killed or stopped during init
      present[r] = false;
      peer.host = "(absent)";
      peer.key = "absent:" + std::to_string(r);  // matches no live process
      continue;
    }
    Status st = decodePeerInfo(blobs[r], &peer);
    if (!st.isOk()) return invalidArgument("rank " + std::to_string(r) + ": " + st.message());
    addresses[r] = peer.transportAddress;
  }
  // Chunking is decided once, by rank 0, so every rank cuts messages alike.
  config_.pipeline = view->peers[0].pipeline;
  FTCCL_CHECK(transport_->connect(rank, std::move(addresses), /*epoch=*/0));
  markLocalPeers(view->peers);

  commKey_ = view->peers[0].commSalt ^ contents.nonce;
  authRoot_ = std::make_shared<const crypto::Key>(communicatorRootKey(contents.secret, commKey_));
  board_ = std::make_shared<ProgressBoard>(commKey_);
  driver_.setBoard(board_.get());
  FTCCL_CHECK(seatInitialMembers(present, nranks, view.get()));
  FTCCL_CHECK(transport_->remap(/*epoch=*/0, view->worldOf, view->rank));
  order_.startEpoch(0, view->nranks());
  epochs_.publish(view);
  registerHealth(*view);
  chooseSpin(*view);
  FTCCL_CHECK(allocateScratch());
  computeLayout(*view);
  builder_.setTuner(Tuner(config_.costModel, config_.overrides, config_.pipeline));
  if (view->rank >= 0) {  // spares learn the model when they are activated
    Status tuned = tuneAtInit();
    if (!tuned.isOk() && !revocation_.revoked()) return tuned;
    if (!tuned.isOk()) {
      // A member failed after the rendezvous: init completes, revoked, and the
      // application rebuilds as after any failure (the model is shared again then).
      FTCCL_LOG(Warn, Init,
                "rank {}: a member failed during init; the communicator starts "
                "revoked (rebuild it): {}",
                view->rank, tuned.message());
    }
  }
  FTCCL_CHECK(openStats());

  FTCCL_LOG(Info, Init,
            "{} {}/{} ready on {} pid {} in {:.1f} ms (chunk {} B, {} channels, {} spares, "
            "{} reduction kernels)",
            view->rank < 0 ? "spare" : "rank", view->rank < 0 ? rank - nranks : view->rank,
            view->nranks(), mine.host, mine.pid, msSince(start), config_.pipeline.chunkBytes,
            config_.pipeline.channels, view->spares.size(),
            reduce_detail::isaName(reduce_detail::bestIsa()));
  return Status::ok();
}

// Epoch 0 from the rendezvous table, alike on every process (they all got the same
// table): a rank whose process did not join is taken by the next spare that did, in
// order, or dropped when shrinkWhenNoSpares (order kept, numbering dense); with neither,
// init fails naming it. Spares that did not join just leave the pool.
Status Communicator::seatInitialMembers(const std::vector<bool>& present, int nranks,
                                        EpochView* view) {
  int processes = static_cast<int>(present.size());
  std::vector<int> pool;
  for (int s = nranks; s < processes; ++s) {
    if (present[s]) pool.push_back(s);
  }
  size_t nextSpare = 0;
  std::string replaced;
  view->worldOf.clear();
  view->failedRanks.clear();
  for (int r = 0; r < nranks; ++r) {
    if (present[r]) {
      view->worldOf.push_back(r);
      continue;
    }
    view->failedRanks.push_back(r);
    if (nextSpare < pool.size()) {
      view->worldOf.push_back(pool[nextSpare]);
      replaced += " rank " + std::to_string(r) + " -> spare process " +
                  std::to_string(pool[nextSpare++]) + ";";
    } else if (config_.shrinkWhenNoSpares) {
      replaced += " rank " + std::to_string(r) + " dropped (shrink);";
    } else {
      return remoteError("rank " + std::to_string(r) + " did not join the rendezvous within " +
                         std::to_string(config_.bootstrapTimeoutMs) +
                         " ms (killed or stopped during init?) and no spare is left to take "
                         "its place (shrinkWhenNoSpares is off)");
    }
  }
  view->spares.assign(pool.begin() + static_cast<long>(nextSpare), pool.end());
  bool wasSpare = view->worldRank >= nranks;
  auto mine = std::find(view->worldOf.begin(), view->worldOf.end(), view->worldRank);
  view->rank = mine == view->worldOf.end() ? -1 : static_cast<int>(mine - view->worldOf.begin());
  promotedAtInit_ = wasSpare && view->rank >= 0;
  long absent = std::count(present.begin(), present.end(), false);
  if (absent > 0) {
    FTCCL_LOG(Warn, Init,
              "{} process(es) did not join the rendezvous (killed or stopped "
              "during init?):{} {} ranks, {} spares left",
              absent, replaced, view->nranks(), view->spares.size());
  }
  return Status::ok();
}

// The process's health service and UCX worker, on the job's interface: the one named by
// FTCCL_SOCKET_IFNAME, else the one this host reaches the bootstrap root through (a job
// that bootstraps on loopback is not reachable from the network at all).
Status Communicator::startLocal(const UniqueIdContents& contents, PeerInfo* mine) {
  services_ = currentCommServices();
  FTCCL_CHECK(services_.acquireHealth(contents.rootHost, contents.rootPort, &health_));
  netDevice_ = envString("FTCCL_SOCKET_IFNAME");
  net::SockAddr root, local;
  std::string iface;
  if (netDevice_.empty() &&
      net::numericSockAddr(contents.rootHost, contents.rootPort, &root).isOk() &&
      net::localAddressToward(root, &local, &iface).isOk() && iface != "?") {
    netDevice_ = iface;
  }
  FTCCL_CHECK(services_.makeTransport(netDevice_, &transport_));
  mine->host = hostName();
  mine->pid = getpid();
  struct stat ns;
  if (stat("/proc/self/ns/net", &ns) == 0) mine->netns = static_cast<uint64_t>(ns.st_ino);
  if (stat("/proc/self/ns/pid", &ns) == 0) mine->pidns = static_cast<uint64_t>(ns.st_ino);
  mine->pipeline = config_.pipeline;
  mine->transportAddress = transport_->workerAddress();
  transport_->setCounting(config_.stats);
  FTCCL_CHECK(createStandbys());
  for (const auto& standby : standbys_) mine->standbyAddresses.push_back(standby->workerAddress());
  // Each init gets its own id even when FTCCL_COMM_ID makes every unique id alike.
  mine->commSalt = std::random_device{}() ^ (uint64_t(std::random_device{}()) << 32);
  mine->key = health_->selfKey();
  mine->node = envString("FTCCL_NODE_ID");
  if (mine->node.empty()) mine->node = mine->host;
  Locality where;
  if (probeLocality(&where).isOk()) {
    mine->package = where.package;
    mine->numaNode = where.numaNode;
    mine->memoryNode = where.memoryNode;
  }
  return Status::ok();
}

// Staging: two slots per channel, allocated and pre-faulted once (first touch of a page
// costs ~10 us here; never pay it per call).
Status Communicator::allocateScratch() {
  constexpr size_t kPage = 4096;
  constexpr int kSlotsPerChannel = 2;  // double buffering: one receives while one is used
  size_t slotBytes = (config_.pipeline.chunkBytes + kPage - 1) & ~(kPage - 1);
  size_t total = slotBytes * kSlotsPerChannel * config_.pipeline.channels;
  void* memory = aligned_alloc(kPage, total);
  if (memory == nullptr) return systemError("cannot allocate " + std::to_string(total) + " B");
  std::memset(memory, 0, total);
  scratchMemory_.reset(static_cast<uint8_t*>(memory));
  scratch_ = Scratch{static_cast<uint8_t*>(memory), slotBytes,
                     kSlotsPerChannel * config_.pipeline.channels};
  return Status::ok();
}

}  // namespace ftccl
