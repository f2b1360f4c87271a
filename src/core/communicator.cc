#include "core/communicator.h"

#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <thread>

#include "algorithms/subset_transport.h"
#include "bootstrap/bootstrap.h"
#include "bootstrap/socket.h"
#include "health/epoch_wiring.h"
#include "reduce/reduce.h"
#include "topology/topology.h"
#include "transports/tag_layout.h"
#include "transports/ucx/ucx_transport.h"
#include "util/byte_io.h"
#include "util/env.h"
#include "util/log.h"

namespace ftccl {
namespace {

using Clock = std::chrono::steady_clock;

// How long an idle op spins before sleeping on the worker's event fd. With a core per
// rank, spinning keeps small-message latency near the wire's; with more ranks than
// cores on this host, a spinning rank steals the CPU its peer needs to answer, so it
// sleeps almost at once (the wakeup costs a few us; a stolen time slice costs ms).
constexpr auto kSpinWithCoreEach = std::chrono::microseconds(200);
constexpr auto kSpinOversubscribed = std::chrono::microseconds(5);

int usableCores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}
// Sleeps are bounded so abort and timeouts are seen even if no event arrives.
constexpr int kSleepSliceMs = 1;

std::string hostName() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return host;
}

std::string describeRanks(const std::vector<int>& ranks) {
  if (ranks.empty()) return "no rank (local progress stalled)";
  std::string text = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) text += (i ? "," : "") + std::to_string(ranks[i]);
  return text;
}

double msSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

int64_t steadyNs(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

const char* opKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kAllReduce: return "AllReduce";
    case OpKind::kBroadcast: return "Broadcast";
    case OpKind::kReduce: return "Reduce";
    case OpKind::kAllGather: return "AllGather";
    case OpKind::kReduceScatter: return "ReduceScatter";
    case OpKind::kSend: return "Send";
    case OpKind::kRecv: return "Recv";
  }
  return "?";
}

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

namespace {

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
  if (asyncError_ != ftcclSuccess) {
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
  {
    std::lock_guard<std::mutex> lock(mutex_);
    joinSecrets_.push_back(secret);
  }
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
  UniqueIdContents contents;
  FTCCL_CHECK(decodeUniqueId(joinId, &contents));
  commKey_ = contents.nonce;
  board_ = std::make_shared<ProgressBoard>(commKey_);
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
  RecoveryMessage ask;
  ask.type = RecoveryMessage::kJoin;
  ask.joined.push_back(JoiningSpare{mine.healthKey, mine.host, mine.pid, encodePeerInfo(mine)});
  ask.blob = {1};  // "from the newcomer itself": the join key's seal is its proof (health_auth.h)
  std::string member = joinKey(contents);
  health_->sendRecovery(member, commKey_, ask);
  RecoveryMessage accept;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    bool answered = decided_.wait_for(lock, std::chrono::milliseconds(config_.bootstrapTimeoutMs),
                                      [&] { return hasJoinAccept_ || aborted_; });
    if (!answered) {
      lock.unlock();
      health_->remove(healthId_, /*orderly=*/false, 0);
      healthId_ = 0;
      return timeoutError("no answer from member " + member + " to the join request within " +
                          std::to_string(config_.bootstrapTimeoutMs) +
                          " ms (unreachable, a stale join id, or a recovery under way: try again)");
    }
    accept = joinAccept_;
  }
  // The pending registration stays until applyCommit registers this process as a
  // spare: it acks the members' heartbeats in between (they watch it from the pool
  // commit on, and the transport's connect may take longer than their timeout).

  uint64_t commKey = 0;
  FTCCL_CHECK(decodeJoinPackage(accept.blob, &commKey, &config_.pipeline, &peers_));
  if (commKey != commKey_) return internalError("the join answer names another communicator");
  for (size_t w = 0; w < peers_.size(); ++w) {
    if (peers_[w].healthKey == mine.healthKey) worldRank_ = static_cast<int>(w);
  }
  if (worldRank_ < 0) {
    worldRank_ = static_cast<int>(peers_.size());
    peers_.push_back(mine);
  }
  std::vector<std::vector<uint8_t>> addresses;
  for (const PeerInfo& p : peers_) addresses.push_back(p.transportAddress);
  FTCCL_CHECK(transport_->connect(worldRank_, std::move(addresses),
                                  static_cast<uint32_t>(accept.next.epoch)));
  markLocalPeers();
  FTCCL_CHECK(applyCommit(accept));
  chooseSpin();
  FTCCL_CHECK(allocateScratch());
  FTCCL_CHECK(openStats());
  FTCCL_LOG(Info, Init,
            "joined the spare pool through {} in {:.1f} ms: {} ranks, {} spares, epoch {}", member,
            msSince(start), nranks_, spares_.size(), epoch_);
  return Status::ok();
}

void Communicator::onSpareJoined(const JoiningSpare& spare) {
  PeerInfo info;
  if (!decodePeerInfo(spare.peerInfo, &info).isOk()) return;
  std::lock_guard<std::mutex> lock(mutex_);
  for (const PeerInfo& p : peers_) {
    if (p.healthKey == info.healthKey) return;
  }
  for (const PeerInfo& p : joinedPeers_) {
    if (p.healthKey == info.healthKey) return;
  }
  joinedPeers_.push_back(std::move(info));
}

std::vector<uint8_t> Communicator::joinPackage() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<PeerInfo> all = peers_;
  all.insert(all.end(), joinedPeers_.begin(), joinedPeers_.end());
  return encodeJoinPackage(commKey_, config_.pipeline, all);
}

void Communicator::onJoinAccepted(const RecoveryMessage& accept, const crypto::Key& rootKey) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    joinAccept_ = accept;
    authRoot_ = std::make_shared<const crypto::Key>(rootKey);
    hasJoinAccept_ = true;
  }
  decided_.notify_all();
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
  nranks_ = nranks;
  rank_ = rank < nranks ? rank : -1;
  worldRank_ = rank;

  PeerInfo mine;
  FTCCL_CHECK(startLocal(contents, &mine));
  std::vector<std::vector<uint8_t>> blobs;
  FTCCL_CHECK(rendezvous(contents, rank, processes, encodePeerInfo(mine),
                         config_.bootstrapTimeoutMs, &blobs, cancelled));
  peers_.resize(processes);
  std::vector<std::vector<uint8_t>> addresses(processes);
  std::vector<bool> present(processes, true);
  for (int r = 0; r < processes; ++r) {
    if (blobs[r].empty()) {  // did not join: killed or stopped during init
      present[r] = false;
      peers_[r].host = "(absent)";
      peers_[r].healthKey = "absent:" + std::to_string(r);  // matches no live process
      continue;
    }
    Status st = decodePeerInfo(blobs[r], &peers_[r]);
    if (!st.isOk()) return invalidArgument("rank " + std::to_string(r) + ": " + st.message());
    addresses[r] = peers_[r].transportAddress;
  }
  // Chunking is decided once, by rank 0, so every rank cuts messages alike.
  config_.pipeline = peers_[0].pipeline;
  FTCCL_CHECK(transport_->connect(rank, std::move(addresses), /*epoch=*/0));
  markLocalPeers();

  commKey_ = peers_[0].commSalt ^ contents.nonce;
  authRoot_ = std::make_shared<const crypto::Key>(communicatorRootKey(contents.secret, commKey_));
  board_ = std::make_shared<ProgressBoard>(commKey_);
  FTCCL_CHECK(seatInitialMembers(present));
  FTCCL_CHECK(transport_->remap(/*epoch=*/0, worldOf_, rank_));
  registerHealth();
  chooseSpin();
  FTCCL_CHECK(allocateScratch());
  computeLayout();
  tuner_ = Tuner(config_.costModel, config_.overrides, config_.pipeline);
  if (rank_ >= 0) {  // spares learn the model when they are activated
    Status tuned = tuneAtInit();
    if (!tuned.isOk() && asyncError_.load() == ftcclSuccess) return tuned;
    if (!tuned.isOk()) {
      // A member failed after the rendezvous: init completes, revoked, and the
      // application rebuilds as after any failure (the model is shared again then).
      FTCCL_LOG(Warn, Init, "rank {}: a member failed during init; the communicator starts "
                "revoked (rebuild it): {}", rank_, tuned.message());
    }
  }
  FTCCL_CHECK(openStats());

  FTCCL_LOG(Info, Init,
            "{} {}/{} ready on {} pid {} in {:.1f} ms (chunk {} B, {} channels, {} spares, "
            "{} reduction kernels)",
            rank_ < 0 ? "spare" : "rank", rank_ < 0 ? rank - nranks : rank_, nranks_, mine.host,
            mine.pid, msSince(start), config_.pipeline.chunkBytes, config_.pipeline.channels,
            spares_.size(), reduce_detail::isaName(reduce_detail::bestIsa()));
  return Status::ok();
}

Status Communicator::tuneAtInit() {
  FTCCL_CHECK(measureCostModel());
  FTCCL_CHECK(shareTuning("init"));
  if (tuner_.calibration().requested) {
    FTCCL_CHECK(calibrate());
    FTCCL_CHECK(shareTuning("calibration"));
  }
  return Status::ok();
}

// Epoch 0 from the rendezvous table, alike on every process (they all got the same
// table): a rank whose process did not join is taken by the next spare that did, in
// order, or dropped when shrinkWhenNoSpares (order kept, numbering dense); with neither,
// init fails naming it. Spares that did not join just leave the pool.
Status Communicator::seatInitialMembers(const std::vector<bool>& present) {
  int processes = static_cast<int>(present.size());
  std::vector<int> pool;
  for (int s = nranks_; s < processes; ++s) {
    if (present[s]) pool.push_back(s);
  }
  size_t nextSpare = 0;
  std::string replaced;
  worldOf_.clear();
  lastFailedRanks_.clear();
  for (int r = 0; r < nranks_; ++r) {
    if (present[r]) {
      worldOf_.push_back(r);
      continue;
    }
    lastFailedRanks_.push_back(r);
    if (nextSpare < pool.size()) {
      worldOf_.push_back(pool[nextSpare]);
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
  spares_.assign(pool.begin() + static_cast<long>(nextSpare), pool.end());
  bool wasSpare = worldRank_ >= nranks_;
  nranks_ = static_cast<int>(worldOf_.size());
  auto mine = std::find(worldOf_.begin(), worldOf_.end(), worldRank_);
  rank_ = mine == worldOf_.end() ? -1 : static_cast<int>(mine - worldOf_.begin());
  promotedAtInit_ = wasSpare && rank_ >= 0;
  long absent = std::count(present.begin(), present.end(), false);
  if (absent > 0) {
    FTCCL_LOG(Warn, Init, "{} process(es) did not join the rendezvous (killed or stopped "
              "during init?):{} {} ranks, {} spares left", absent, replaced, nranks_,
              spares_.size());
  }
  return Status::ok();
}

// The process's health service and UCX worker, on the job's interface: the one named by
// FTCCL_SOCKET_IFNAME, else the one this host reaches the bootstrap root through (a job
// that bootstraps on loopback is not reachable from the network at all).
Status Communicator::startLocal(const UniqueIdContents& contents, PeerInfo* mine) {
  FTCCL_CHECK(HealthService::acquire(&health_, contents.rootHost, contents.rootPort));
  UcxOptions ucxOptions;
  FTCCL_CHECK(ucxOptionsFromEnv(&ucxOptions));
  ucxOptions.netDevice = envString("FTCCL_SOCKET_IFNAME");
  bootstrap::SockAddr root, local;
  std::string iface;
  if (ucxOptions.netDevice.empty() &&
      bootstrap::numericSockAddr(contents.rootHost, contents.rootPort, &root).isOk() &&
      bootstrap::localAddressToward(root, &local, &iface).isOk() && iface != "?") {
    ucxOptions.netDevice = iface;
  }
  FTCCL_CHECK(UcxTransport::create(ucxOptions, &transport_));
  mine->host = hostName();
  mine->pid = getpid();
  struct stat ns;
  if (stat("/proc/self/ns/net", &ns) == 0) mine->netns = static_cast<uint64_t>(ns.st_ino);
  mine->pipeline = config_.pipeline;
  mine->transportAddress = transport_->workerAddress();
  transport_->setCounting(config_.stats);
  FTCCL_CHECK(createStandbys());
  for (const auto& standby : standbys_) mine->standbyAddresses.push_back(standby->workerAddress());
  // Each init gets its own id even when FTCCL_COMM_ID makes every unique id alike.
  mine->commSalt = std::random_device{}() ^ (uint64_t(std::random_device{}()) << 32);
  mine->healthKey = health_->selfKey();
  mine->node = envString("FTCCL_NODE_ID");
  if (mine->node.empty()) mine->node = mine->host;
  Locality where;
  if (probeLocality(&where).isOk()) {
    mine->package = where.package;
    mine->numaNode = where.numaNode;
  }
  return Status::ok();
}

// Spin budget from the ranks on this host (spares sleep until activated: no core).
void Communicator::chooseSpin() {
  int localRanks = 0;
  const std::string& host = peers_[worldRank_].host;
  for (int w : worldOf_) localRanks += peers_[w].host == host ? 1 : 0;
  int cores = usableCores();
  spinBudget_ = localRanks > cores ? kSpinOversubscribed : kSpinWithCoreEach;
  FTCCL_LOG(Info, Init, "{} ranks on this host, {} cores: spin {} us before sleeping",
            localRanks, cores, spinBudget_.count());
}

// Staging: two slots per channel, allocated and pre-faulted once (first touch of a page
// costs ~10 us here; never pay it per call).
Status Communicator::allocateScratch() {
  size_t slotBytes = (config_.pipeline.chunkBytes + 4095) & ~size_t(4095);
  size_t total = slotBytes * 2 * config_.pipeline.channels;
  void* memory = aligned_alloc(4096, total);
  if (memory == nullptr) return systemError("cannot allocate " + std::to_string(total) + " B");
  std::memset(memory, 0, total);
  scratchMemory_.reset(static_cast<uint8_t*>(memory));
  scratch_ = Scratch{static_cast<uint8_t*>(memory), slotBytes, 2 * config_.pipeline.channels};
  return Status::ok();
}

// Every member (ranks, then spares) is listed so that FAILED notices reach them all and
// a failed process is named with its host and pid. A rank probes its ring neighbours
// (and node leaders) and the spares dealt to it; spare j and rank j % nranks probe each
// other, so a spare that dies leaves the pool and a spare learns when its rank dies.
// The health wiring of this epoch (health/epoch_wiring.h, the simulator's too): whom
// this process probes, and which known processes are former members. O(N).
void Communicator::registerHealth() {
  auto membership = std::make_shared<Membership>();
  membership->epoch = static_cast<uint64_t>(epoch_);
  for (int w : worldOf_) membership->ranks.push_back(peers_[w].healthKey);
  for (int w : spares_) membership->spares.push_back(peers_[w].healthKey);
  std::unordered_map<ProcessKey, size_t> worldByKey = worldIndexByKey();
  std::vector<ProcessKey> known;
  known.reserve(peers_.size());
  for (const PeerInfo& p : peers_) known.push_back(p.healthKey);
  EpochTable table = buildEpochTable(
      std::move(membership),
      [&](const ProcessKey& key) {
        const PeerInfo& p = peers_[worldByKey.at(key)];
        return ProcessPlace{p.host, p.pid, p.node};
      },
      known);
  HealthPolicy policy;
  policy.probeIntervalMs = config_.probeIntervalMs;
  policy.failureTimeoutMs = config_.failureTimeoutMs;
  policy.shrinkWhenNoSpares = config_.shrinkWhenNoSpares != 0;
  policy.stragglerMinLateMs = config_.stragglerMs;
  std::shared_ptr<const RecoveryMessage> enteredBy;
  if (enteredBy_.type == RecoveryMessage::kCommit) {
    enteredBy = std::make_shared<const RecoveryMessage>(enteredBy_);
  }
  HealthRegistration reg = registrationFor(table, peers_[worldRank_].healthKey, commKey_, policy,
                                           std::move(enteredBy), this);
  if (rank_ >= 0) reg.progress = board_;  // a spare runs no ops
  reg.epochSalt = enteredBy_.salt;  // a commit's, or the join answer's (a copy of one)
  {
    std::lock_guard<std::mutex> lock(mutex_);
    reg.joinSecrets = joinSecrets_;
    reg.authRoot = authRoot_;
  }
  healthId_ = health_->add(std::move(reg));
}

std::unordered_map<ProcessKey, size_t> Communicator::worldIndexByKey() const {
  std::unordered_map<ProcessKey, size_t> index;
  index.reserve(peers_.size());
  for (size_t w = 0; w < peers_.size(); ++w) index.emplace(peers_[w].healthKey, w);
  return index;
}

void Communicator::onRebuilt(const RecoveryMessage& commit) {
  {
    // Told twice (the old registration still hears while the new one is added, also
    // while this very commit is being entered) or entered already: nothing to do, and
    // no revoke of the epoch it made. Calls come from the one health thread.
    std::lock_guard<std::mutex> lock(mutex_);
    if (commit.next.epoch <= std::max(epoch_, newestTold_)) return;
    newestTold_ = commit.next.epoch;
  }
  // A new epoch ends the old one even if this rank heard of no failure first (the
  // agreement can outrun the FAILED notice): its ops must not wait on the lost.
  if (rank_ >= 0) {
    std::string lost;
    std::unique_lock<std::mutex> lock(mutex_);  // the numbering may be changing
    for (int r : commit.failedRanks) {
      if (r < 0 || r >= static_cast<int>(worldOf_.size())) continue;
      const PeerInfo& p = peers_[worldOf_[r]];
      lost += (lost.empty() ? "" : "; ") + ("rank " + std::to_string(r) + " (host " + p.host +
                                             ", pid " + std::to_string(p.pid) + ")");
    }
    lock.unlock();
    revoke(remoteError(lost + " failed: learnt from the members' agreement on epoch " +
                       std::to_string(commit.next.epoch) + ", before its FAILED notice"));
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    commits_.push_back(commit);
  }
  decided_.notify_all();
}

void Communicator::onAllRanksLeft() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    allRanksLeft_ = true;
  }
  decided_.notify_all();
}

void Communicator::onRecoveryFailed(const std::string& why) {
  if (rank_ >= 0) revoke(remoteError(why));  // permanent: ops in flight fail now
  {
    std::lock_guard<std::mutex> lock(mutex_);
    recoveryError_ = why;
  }
  decided_.notify_all();
}

std::vector<int> Communicator::failedRanks() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return lastFailedRanks_;
}

// Waits for the agreement's decision, bounded by the round's own progress: while the
// agreement is live it moves at least every few failure timeouts (the coordinator gives
// up on a silent member at its second stall, a member on a silent coordinator at its
// third), so kStuckTimeouts failure timeouts without a move mean a stuck round (or, for
// a rebuild, none under way), and the wait gives up saying what it waited for. A
// standby with no round under way waits as long as it takes: its rank is being heard.
Status Communicator::awaitDecision(const char* call, bool forever, RecoveryMessage* commit) {
  constexpr int kStuckTimeouts = 10;
  const auto slice = std::chrono::milliseconds(std::max(config_.failureTimeoutMs, 10));
  std::unique_lock<std::mutex> lock(mutex_);
  auto ready = [&] {
    return !commits_.empty() || !recoveryError_.empty() || aborted_ || allRanksLeft_;
  };
  uint64_t lastMark = 0;
  int unmoved = -1;  // slices since the mark last moved (-1: not read yet)
  while (!decided_.wait_for(lock, slice, ready)) {
    lock.unlock();  // health's callbacks take mutex_ under its own lock: never the reverse
    HealthProtocol::AgreementView view = health_->agreementView(healthId_);
    lock.lock();
    if (ready()) break;
    if (forever && !view.waiting) {
      unmoved = -1;
      continue;
    }
    if (unmoved < 0 || view.mark != lastMark) {
      lastMark = view.mark;
      unmoved = 0;
      continue;
    }
    if (++unmoved < kStuckTimeouts) continue;
    std::string why = std::string(call) + ": the agreement on the next epoch has not moved in " +
                      std::to_string(kStuckTimeouts * slice.count()) + " ms: " + view.description;
    return forever ? remoteError(why + " (is this process cut off?)") : timeoutError(why);
  }
  if (aborted_) return invalidUsage(std::string(call) + ": the communicator was aborted");
  if (!commits_.empty()) {  // oldest first; only newer than the epoch entered (onRebuilt)
    *commit = std::move(commits_.front());
    commits_.pop_front();
    return Status::ok();
  }
  if (!recoveryError_.empty()) return remoteError("cannot rebuild: " + recoveryError_);
  return Status(ftcclInProgress, "every rank left");  // allRanksLeft_: only standby asks
}

// Waits for the agreement, then enters the new epoch.
Status Communicator::rebuild(ftcclRebuildInfo_t* info) {
  if (rank_ < 0) return invalidUsage("this process is a hot spare: it calls ftcclCommStandby");
  if (asyncError_ == ftcclSuccess) {
    return invalidUsage("nothing to rebuild: the communicator is not revoked");
  }
  waitForIssuedOps();  // queued ops of the old epoch fail at once
  auto start = Clock::now();
  RecoveryMessage commit;
  Status decided = awaitDecision("ftcclCommRebuild", /*forever=*/false, &commit);
  if (decided.code() == ftcclInProgress) {
    return remoteError("cannot rebuild: the other ranks left in order");
  }
  FTCCL_CHECK(decided);
  FTCCL_CHECK(applyCommit(commit));
  FTCCL_CHECK(shareTuningAfterCommit("rebuild"));
  if (info) {
    info->epoch = epoch_;
    info->nranks = nranks_;
    info->nFailed = static_cast<int>(commit.failedRanks.size());
    info->nReplaced = commit.replaced;
    info->sparesLeft = static_cast<int>(commit.next.spares.size());
    info->shrunk = commit.shrunk ? 1 : 0;
  }
  FTCCL_LOG(Warn, Recovery,
            "rank {}/{}: rebuilt into epoch {} ({} failed, {} replaced by spares{}, {} spares "
            "left) in {:.1f} ms",
            rank_, nranks_, epoch_, commit.failedRanks.size(), commit.replaced,
            commit.shrunk ? ", shrunk" : "", spares_.size(), msSince(start));
  return Status::ok();
}

Status Communicator::standby(int* activated) {
  if (promotedAtInit_) {  // took a missing rank's place at init: active from the start
    promotedAtInit_ = false;
    *activated = 1;
    return Status::ok();
  }
  if (rank_ >= 0) {
    return invalidUsage("this process holds rank " + std::to_string(rank_) + ", not a spare");
  }
  auto start = Clock::now();
  for (;;) {
    RecoveryMessage commit;
    Status decided = awaitDecision("ftcclCommStandby", /*forever=*/true, &commit);
    if (decided.code() == ftcclInProgress) {  // every rank left in order
      *activated = 0;
      FTCCL_LOG(Info, Recovery, "spare: every rank left; standing down");
      return Status::ok();
    }
    FTCCL_CHECK(decided);
    FTCCL_CHECK(applyCommit(commit));
    if (rank_ >= 0) {
      FTCCL_CHECK(shareTuningAfterCommit("activation"));
      *activated = 1;
      FTCCL_LOG(Warn, Recovery, "spare activated as rank {}/{} in epoch {} after {:.1f} ms on standby",
                rank_, nranks_, epoch_, msSince(start));
      return Status::ok();
    }
  }
}

// The transport's error mode differs for peers that shared memory and CMA reach: this
// host, and this network namespace (other namespaces are emulated hosts: TCP, where peer
// error handling costs nothing and keeps UCX from logging a departed peer as an error).
void Communicator::markLocalPeers() {
  int self = transport_->selfWorld();
  if (self < 0) return;
  const PeerInfo& me = peers_[static_cast<size_t>(self)];
  for (size_t w = 0; w < peers_.size(); ++w) {
    transport_->setLocal(w, peers_[w].host == me.host && peers_[w].netns == me.netns);
  }
}

// Enters the committed epoch: new numbering, the transport's tags carry the new epoch
// (nothing of the old one can match), health probes the new neighbours, and op
// sequence numbers start again at 0 on every member.
Status Communicator::applyCommit(const RecoveryMessage& commit) {
  if (commit.next.epoch >= TagLayout::kEpochs) {
    // Tags never reuse an epoch (tag_layout.h): old leftovers could match again.
    return remoteError("this communicator has been rebuilt " + std::to_string(commit.next.epoch - 1) +
                       " times, the most its data path can tell apart: create a new one "
                       "(ftcclCommSplit or a new init)");
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);  // spares that joined since: reachable now
    for (PeerInfo& p : joinedPeers_) {
      transport_->addPeer(p.transportAddress);
      peers_.push_back(std::move(p));
    }
    joinedPeers_.clear();
  }
  const std::unordered_map<ProcessKey, size_t> worldByKey = worldIndexByKey();
  FTCCL_CHECK(switchWorkersSince(commit.next, worldByKey));
  markLocalPeers();
  auto worldIndex = [&](const Member& key) {
    auto found = worldByKey.find(key);
    return found == worldByKey.end() ? -1 : static_cast<int>(found->second);
  };
  std::vector<int> worldOf, spares;
  int myRank = -1;
  bool mySpare = false;
  for (const Member& key : commit.next.ranks) {
    int world = worldIndex(key);
    if (world < 0) return internalError("the new membership names an unknown process " + key);
    if (world == worldRank_) myRank = static_cast<int>(worldOf.size());
    worldOf.push_back(world);
  }
  for (const Member& key : commit.next.spares) {
    int world = worldIndex(key);
    if (world < 0) return internalError("the new spare pool names an unknown process " + key);
    mySpare = mySpare || world == worldRank_;
    spares.push_back(world);
  }
  if (myRank < 0 && !mySpare) {
    return remoteError("expelled: not a member of epoch " + std::to_string(commit.next.epoch));
  }
  FTCCL_CHECK(transport_->remap(static_cast<uint32_t>(commit.next.epoch), worldOf, myRank));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    worldOf_ = worldOf;
    spares_ = spares;
    rank_ = myRank;
    nranks_ = static_cast<int>(worldOf.size());
    epoch_ = commit.next.epoch;
    board_->reset(static_cast<uint32_t>(epoch_));
    collectivesIssued_ = 0;
    sendsIssued_.assign(worldOf.size(), 0);
    recvsIssued_.assign(worldOf.size(), 0);
    lastFailedRanks_ = commit.failedRanks;
    enteredBy_ = commit;
    asyncError_ = ftcclSuccess;
    revokeReason_.clear();
    lastError_.clear();
  }
  // The old registration hears the agreement until the new one is added, with no gap in
  // which a commit could be missed: a later commit it passes on while this one is
  // applied (the worker switch takes tens of ms) waits in commits_, and its failure news
  // is ignored (onMemberFailed).
  const HealthService::RegistrationId left = healthId_;
  registerHealth();
  health_->remove(left, /*orderly=*/false, 0);
  computeLayout();
  RecoveryMessage newer;
  if (takeNewerCommit(&newer)) {
    FTCCL_LOG(Info, Recovery, "rank {}: epoch {} was agreed on while this process entered epoch {}",
              rank_, newer.next.epoch, epoch_);
    return applyCommit(newer);
  }
  return Status::ok();
}

// A commit told while an earlier one was being applied: its revoke was wiped by the
// epoch's fresh start, so it is entered at once (chaos seed 7975: ops of the skipped
// epoch waited for good on members that had moved on).
bool Communicator::takeNewerCommit(RecoveryMessage* newer) {
  std::lock_guard<std::mutex> lock(mutex_);
  while (!commits_.empty() && commits_.front().next.epoch <= epoch_) commits_.pop_front();
  if (commits_.empty()) return false;
  *newer = std::move(commits_.front());
  commits_.pop_front();
  return true;
}

Communicator::~Communicator() {
  leaveHealth(/*orderly=*/false);
  // Before the staging memory goes: no late transfer may land in freed memory.
  transport_.reset();
}

void Communicator::leaveHealth(bool orderly) {
  closeStats();  // its last line still has the health thread's view
  // After a failure a peer may be stopped and never read: do not wait for it long.
  bool revoked = asyncError_ != ftcclSuccess;
  if (health_ && healthId_) health_->remove(healthId_, orderly, revoked ? 20 : 500);
  healthId_ = 0;
  // A revoked communicator may have dead peers: do not wait for them on close.
  if (transport_ && (asyncError_ != ftcclSuccess || aborted_)) transport_->setForceClose();
}

void Communicator::onMemberFailed(const FailureReport& report) {
  // A lost spare only leaves the pool; a waiting spare has no op to fail (its standby
  // follows the agreement instead).
  if (report.spare || rank_ < 0) return;
  {
    // The registration of the epoch being left hears until the next one is added: its
    // news is not this epoch's (the commit excluded that process already, or the new
    // registration reports it again).
    std::lock_guard<std::mutex> lock(mutex_);
    if (report.epoch < epoch_) return;
  }
  std::string how = report.direct
                        ? "detected by this rank through " +
                              std::string(detectionCauseName(report.cause))
                        : "reported by rank " + std::to_string(report.detectedBy) +
                              ", who detected it through " + detectionCauseName(report.cause);
  char after[32];
  std::snprintf(after, sizeof(after), "%.1f", report.afterMs);
  revoke(remoteError("rank " + std::to_string(report.rank) + " (host " + report.host + ", pid " +
                     std::to_string(report.pid) + ") failed: " + how + ", " + after +
                     " ms after its last sign of life"));
}

Communicator::Ticket Communicator::issue(std::vector<OpRequest>* batch) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (sendsIssued_.size() != static_cast<size_t>(nranks_)) {
    sendsIssued_.assign(nranks_, 0);
    recvsIssued_.assign(nranks_, 0);
  }
  for (OpRequest& op : *batch) {
    if (op.kind == OpKind::kSend) {
      op.args.opSeq = sendsIssued_[op.peer]++;
    } else if (op.kind == OpKind::kRecv) {
      op.args.opSeq = recvsIssued_[op.peer]++;
    } else {
      op.args.opSeq = static_cast<uint32_t>(collectivesIssued_++);
    }
  }
  return Ticket{issued_++, epoch_};
}

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

CollectiveKind collectiveKindOf(OpKind kind) {
  switch (kind) {
    case OpKind::kBroadcast: return CollectiveKind::kBroadcast;
    case OpKind::kReduce: return CollectiveKind::kReduce;
    case OpKind::kAllGather: return CollectiveKind::kAllGather;
    case OpKind::kReduceScatter: return CollectiveKind::kReduceScatter;
    default: return CollectiveKind::kAllReduce;
  }
}

}  // namespace

Status Communicator::execute(const Ticket& ticket, const std::vector<OpRequest>& batch) {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    turn_.wait(lock, [&] { return executed_ == ticket.index || aborted_; });
  }
  std::string what = describeBatch(batch, rank_);
  Status result;
  if (aborted_) {
    result = invalidUsage(what + ": the communicator was aborted");
  } else if (asyncError_ != ftcclSuccess) {
    result = revokedStatus(what.c_str());
  } else if (ticket.epoch != epoch_) {
    result = remoteError(what + ": issued before the rebuild into epoch " +
                         std::to_string(epoch_) + "; issue it again");
  } else {
    uint64_t collectives = 0;
    int kind = static_cast<int>(batch[0].kind);
    for (const OpRequest& op : batch) {
      if (op.kind == OpKind::kSend || op.kind == OpKind::kRecv) continue;
      if (collectives++ == 0) kind = static_cast<int>(op.kind);
    }
    auto start = Clock::now();
    board_->begin(kind, collectives, steadyNs(start));
    try {
      std::unique_ptr<Collective> op = buildBatch(batch);
      result = drive(*op, what, start);
    } catch (const std::exception& e) {  // the turn below must be released whatever happens
      result = internalError(what + ": " + e.what());
      revoke(result);
    }
    auto end = Clock::now();
    uint64_t elapsedNs = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(end - start).count());
    board_->end(result.isOk(), elapsedNs, steadyNs(end));
    if (result.code() == ftcclInvalidUsage && !aborted_ && batch.size() == 1) {
      result = Status(result.code(), result.message() + " (this rank called it with count " +
                                         std::to_string(batch[0].args.count) + " of " +
                                         dataTypeName(batch[0].args.type) + ")");
    }
    if (result.isOk() && config_.stats) recordStats(batch, elapsedNs);
    if (result.isOk() && nranks_ > 1 && ticket.index == 0) {
      transport_->logLanes((rank_ + 1) % nranks_);
      transport_->logLanes((rank_ + nranks_ - 1) % nranks_);
    }
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (executed_ == ticket.index) ++executed_;
  }
  turn_.notify_all();
  if (!result.isOk()) setLastError(result.message());
  return result;
}

// Send/Recv of a batch are posted together (a group never deadlocks on its own
// transfers); the collectives follow in issue order, the same on every rank.
std::unique_ptr<Collective> Communicator::buildBatch(const std::vector<OpRequest>& batch) {
  std::vector<PointToPoint> transfers;
  std::vector<std::unique_ptr<Collective>> parts;
  for (const OpRequest& op : batch) {
    if (op.kind != OpKind::kSend && op.kind != OpKind::kRecv) continue;
    bool send = op.kind == OpKind::kSend;
    void* buffer = send ? const_cast<void*>(op.args.sendbuff) : op.args.recvbuff;
    transfers.push_back({send, op.peer, buffer, op.args.count * dataTypeSize(op.args.type),
                         MessageKey{op.args.opSeq, kPointToPointChannel}});
  }
  if (!transfers.empty()) parts.push_back(makePointToPoint(*transport_, std::move(transfers)));
  for (const OpRequest& op : batch) {
    if (op.kind != OpKind::kSend && op.kind != OpKind::kRecv) parts.push_back(buildCollective(op));
  }
  if (parts.size() == 1) return std::move(parts[0]);
  return makeSequence(std::move(parts));
}

namespace {

// A digest of what every rank must pass alike for the op's messages to pair up: it
// rides in every message's tag (tag_layout.h), so ranks that disagree never match and
// the receiver names the mismatch instead of reducing the wrong bytes.
uint32_t opSignature(CollectiveKind kind, const CollectiveArgs& args, const AlgorithmChoice& choice) {
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

}  // namespace

std::unique_ptr<Collective> Communicator::buildCollective(const OpRequest& request) {
  CollectiveArgs args = request.args;
  CollectiveKind kind = collectiveKindOf(request.kind);
  size_t bytes = args.count * dataTypeSize(args.type);
  if (kind == CollectiveKind::kAllGather || kind == CollectiveKind::kReduceScatter) {
    bytes *= static_cast<size_t>(nranks_);
  }
  if (request.algorithm >= 0) {
    AlgorithmChoice choice = tuner_.with(static_cast<Algorithm>(request.algorithm), kind, bytes, shape_);
    args.signature = opSignature(kind, args, choice);
    return makeAllReduce(choice, args);
  }
  AlgorithmChoice choice = tuner_.choose(kind, bytes, shape_);
  args.signature = opSignature(kind, args, choice);
  // The choice is logged once per collective, algorithm and power-of-two size class.
  int sizeClass = 0;
  while (sizeClass < 63 && (size_t{2} << sizeClass) <= bytes) ++sizeClass;
  uint64_t logKey = (static_cast<uint64_t>(kind) << 16) |
                    (static_cast<uint64_t>(choice.algorithm) << 8) | sizeClass;
  if (std::find(loggedChoices_.begin(), loggedChoices_.end(), logKey) == loggedChoices_.end()) {
    loggedChoices_.push_back(logKey);
    FTCCL_LOG(Info, Tuning,
              "rank {}: {} of {} B on {} ranks ({} nodes): {} {}, chunk {} B, {} channels, "
              "predicted {:.1f} us",
              rank_, collectiveName(kind), bytes, nranks_, shape_.nodes,
              algorithmName(choice.algorithm), choice.forced ? "(forced)" : "(cost model)",
              choice.pipeline.chunkBytes, choice.pipeline.channels, choice.predictedUs);
  }
  switch (request.kind) {
    case OpKind::kBroadcast: return makeChainBroadcast(*transport_, choice.pipeline, args);
    case OpKind::kReduce: return makeChainReduce(*transport_, scratch_, choice.pipeline, args);
    case OpKind::kAllGather: return makeRingAllGather(*transport_, choice.pipeline, args);
    case OpKind::kReduceScatter:
      return makeRingReduceScatter(*transport_, scratch_, choice.pipeline, args);
    default: break;
  }
  return makeAllReduce(choice, args);
}

std::unique_ptr<Collective> Communicator::makeAllReduce(const AlgorithmChoice& choice,
                                                        const CollectiveArgs& args) {
  switch (choice.algorithm) {
    case Algorithm::kTree: return makeTreeAllReduce(*transport_, scratch_, choice.pipeline, args);
    case Algorithm::kHierarchical:
      return makeHierarchicalAllReduce(*transport_, scratch_, choice.pipeline, nodes_, args);
    case Algorithm::kRecursiveDoubling:
      return makeRecursiveDoublingAllReduce(*transport_, scratch_, args);
    case Algorithm::kRing: break;
  }
  return makeRingAllReduce(*transport_, scratch_, choice.pipeline, args);
}

namespace {

constexpr int kPingRounds = 20;
constexpr int kBulkRounds = 4;
constexpr size_t kBulkBytes = 1 << 20;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

// Rank 0 times, with rank 1, round trips of 8 B and of 1 MiB over the real transport
// (alpha, and beta from the difference), and a 1 MiB float sum alone (gamma). The
// pair's link is inside a node or between nodes, and only that kind is measured; the
// other keeps its default. A few ms, once per communicator.
Status Communicator::measureCostModel() {
  CostModel model = config_.costModel;
  if (rank_ > 1 || nranks_ < 2) return Status::ok();
  if (rank_ == 0 && config_.tuningGiven) return Status::ok();
  SubsetTransport pair(*transport_, {0, 1}, kTuningChannel);
  std::vector<uint8_t> buffer(kBulkBytes, 1);
  std::vector<double> small, bulk;
  for (int round = 0; round < kPingRounds + kBulkRounds; ++round) {
    bool isBulk = round >= kPingRounds;
    size_t bytes = isBulk ? kBulkBytes : 8;
    MessageKey key{static_cast<uint32_t>(round + 1), 0};
    PointToPoint send{true, 1 - rank_, buffer.data(), bytes, key};
    PointToPoint recv{false, 1 - rank_, buffer.data(), bytes, key};
    auto start = Clock::now();
    for (const PointToPoint& step : rank_ == 0 ? std::vector<PointToPoint>{send, recv}
                                               : std::vector<PointToPoint>{recv, send}) {
      std::unique_ptr<Collective> op = makePointToPoint(pair, {step});
      FTCCL_CHECK(drive(*op, "cost model measurement", {}, internalOpTimeoutMs()));
    }
    double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
    (isBulk ? bulk : small).push_back(us / 2);
  }
  if (rank_ == 1) return Status::ok();
  double alpha = std::max(0.1, median(small));
  double beta = std::max(1.0, median(bulk) - alpha);  // us per MiB
  std::vector<float> a(kBulkBytes / 4, 1.0f), b(kBulkBytes / 4, 2.0f);
  double gamma = 1e9;
  for (int round = 0; round < 3; ++round) {
    auto start = Clock::now();
    reduce(a.data(), a.data(), b.data(), a.size(), ftcclFloat32, ftcclSum);
    gamma = std::min(gamma, std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  if (peers_[worldOf_[0]].node == peers_[worldOf_[1]].node) {
    model.alphaUs = model.interAlphaUs = alpha;
    model.betaUsPerMiB = model.interBetaUsPerMiB = beta;
  } else {
    model.interAlphaUs = alpha;
    model.interBetaUsPerMiB = beta;
  }
  model.gammaUsPerMiB = std::max(1.0, gamma);
  model.source = "measured by rank 0";
  config_.costModel = model;
  Calibration request;  // every rank runs the probes once the model is shared
  // Nothing to choose: one candidate, or the all-reduce's algorithm forced.
  request.requested = Tuner::candidates(CollectiveKind::kAllReduce, shape_).size() > 1 &&
                      !config_.overrides.forced[static_cast<int>(CollectiveKind::kAllReduce)];
  request.shape = shape_;
  tuner_ = Tuner(model, config_.overrides, config_.pipeline, request);
  return Status::ok();
}

// Every rank runs each candidate all-reduce at the probe sizes (the same sequence of
// collectives everywhere, so the usual op numbering keeps them apart); rank 0's times
// become the calibration, shared next. A first untimed pass pays for what only first
// use costs (endpoint wire-up, first touch): with one call per probe, the tree's 64 KiB
// probe still measured 2-4x its steady time (UCX was still wiring the tree's non-ring
// pairs); with 8 it came within 1.5x.
// Then each probe is a median of batches (5, or 3 from 256 KiB) of back-to-back calls, as an
// application issues them; the algorithms take turns batch by batch, in rotated order,
// so a slow spell of the machine (ranks share cores here) hits them alike. Each batch
// starts after one untimed call, since a batch timed from its first call includes the
// ranks' arrival skew (2 calls timed so took 5x the steady time of 8 B).
Status Communicator::calibrate() {
  Calibration calibration;
  calibration.shape = shape_;
  size_t maxCount = Calibration::kProbeBytes[Calibration::kProbes - 1] / sizeof(float);
  std::vector<float> send(maxCount, 1.0f), recv(maxCount);
  auto run = [&](Algorithm algorithm, size_t bytes, int calls) -> Status {
    for (int i = 0; i < calls; ++i) {
      OpRequest op;
      op.kind = OpKind::kAllReduce;
      op.algorithm = static_cast<int>(algorithm);
      op.internal = true;
      op.args.sendbuff = send.data();
      op.args.recvbuff = recv.data();
      op.args.count = bytes / sizeof(float);
      op.args.type = ftcclFloat32;
      op.args.op = ftcclSum;
      std::vector<OpRequest> batch{op};
      FTCCL_CHECK(execute(issue(&batch), batch));
    }
    return Status::ok();
  };
  std::vector<Algorithm> candidates = Tuner::candidates(CollectiveKind::kAllReduce, shape_);
  for (Algorithm algorithm : candidates) {
    for (int p = 0; p < Calibration::kProbes; ++p) {
      size_t bytes = Calibration::kProbeBytes[p];
      if (!Calibration::probed(algorithm, p)) continue;
      FTCCL_CHECK(run(algorithm, bytes, bytes >= (256u << 10) ? 3 : 8));
    }
  }
  for (int p = 0; p < Calibration::kProbes; ++p) {
    size_t bytes = Calibration::kProbeBytes[p];
    std::vector<Algorithm> probed;
    for (Algorithm a : candidates) {
      if (Calibration::probed(a, p)) probed.push_back(a);
    }
    size_t variants = probed.size();
    int calls = bytes >= (1u << 20) ? 3 : bytes >= 65536 ? 8 : 16;
    int batches = bytes >= (256u << 10) ? 3 : 5;
    std::vector<std::vector<double>> perCall(variants);
    for (int batch = 0; batch < batches; ++batch) {
      for (size_t k = 0; k < variants; ++k) {  // rotated: no algorithm always goes first
        size_t v = (k + batch) % variants;
        FTCCL_CHECK(run(probed[v], bytes, 1));  // absorbs the ranks' skew
        auto start = Clock::now();
        FTCCL_CHECK(run(probed[v], bytes, calls));
        perCall[v].push_back(
            std::chrono::duration<double, std::micro>(Clock::now() - start).count() / calls);
      }
    }
    for (size_t v = 0; v < variants; ++v) {
      calibration.us[static_cast<int>(probed[v])][p] = std::max(0.1, median(perCall[v]));
    }
  }
  tuner_.setCalibration(calibration);
  return Status::ok();
}

// A failure while the new epoch shares its tuning revokes that epoch: the member is in
// it all the same, and its next op reports the failure and leads to the next rebuild
// (which shares again). Only other errors fail the rebuild itself.
Status Communicator::shareTuningAfterCommit(const char* when) {
  Status shared = shareTuning(when);
  if (shared.isOk() || asyncError_.load() != ftcclSuccess) return Status::ok();
  return shared;
}

// Rank 0's model, overrides and calibration reach every member by a chain broadcast on
// the tuning channel: members that joined as spares, or whose FTCCL_ALGO differs, still
// choose as rank 0 does. After a rebuild the new rank 0 passes on what it adopted.
Status Communicator::shareTuning(const char* when) {
  std::vector<double> payload = tuner_.toVector();
  if (nranks_ > 1) {
    std::vector<int> everyone(nranks_);
    for (int r = 0; r < nranks_; ++r) everyone[r] = r;
    SubsetTransport all(*transport_, everyone, kTuningChannel);
    CollectiveArgs args;
    args.sendbuff = args.recvbuff = payload.data();
    args.count = payload.size();
    args.type = ftcclFloat64;
    args.root = 0;
    std::unique_ptr<Collective> op = makeChainBroadcast(all, config_.pipeline, args);
    FTCCL_CHECK(drive(*op, std::string("sharing the cost model at ") + when, {},
                      internalOpTimeoutMs()));
  }
  std::string source = rank_ == 0 ? tuner_.model().source : "rank 0's";
  Tuner shared;
  FTCCL_CHECK(Tuner::fromVector(payload, config_.pipeline, &shared));
  CostModel model = shared.model();
  model.source = source;
  tuner_ = Tuner(model, shared.overrides(), config_.pipeline, shared.calibration());
  if (rank_ == 0) {
    FTCCL_LOG(Info, Tuning, "cost model at {}: {}; {}; algorithm: {}", when,
              describe(tuner_.model()), describe(tuner_.calibration()),
              config_.algorithm.empty() ? "chosen by the model" : config_.algorithm);
  }
  return Status::ok();
}

Status Communicator::allGatherBytes(const void* mine, void* all, size_t bytesEach) {
  OpRequest op;
  op.kind = OpKind::kAllGather;
  op.args.sendbuff = mine;
  op.args.recvbuff = all;
  op.args.count = bytesEach;
  op.args.type = ftcclUint8;
  op.internal = true;
  std::vector<OpRequest> batch{op};
  Ticket ticket = issue(&batch);
  return execute(ticket, batch);
}

// Two all-gathers on the parent: (color, key) of every rank, then the id of each child's
// rendezvous, created by the child's new rank 0 in its own process (a fresh listener even
// under FTCCL_COMM_ID). Each child is then a communicator like any other: its own UCX
// worker, tags and health registration (the process's health thread is shared, so one
// dead process is detected by every communicator it belongs to).
Status Communicator::split(int color, int key, const ftcclConfig_t* config,
                           std::unique_ptr<Communicator>* out) {
  out->reset();
  if (rank_ < 0) return invalidUsage("ftcclCommSplit: a hot spare holds no rank to split");
  CommConfig childConfig;
  FTCCL_CHECK(resolveConfig(config, &childConfig));
  if (childConfig.nSpares > 0) {
    return invalidUsage("ftcclCommSplit: a child has no spares of its own (nSpares=" +
                        std::to_string(childConfig.nSpares) + "); it shrinks when a rank fails");
  }
  int32_t mine[2] = {color < 0 ? FTCCL_SPLIT_NOCOLOR : color, key};
  std::vector<int32_t> all(2 * static_cast<size_t>(nranks_));
  FTCCL_CHECK(allGatherBytes(mine, all.data(), sizeof(mine)));
  std::vector<int> members;  // my color's ranks, by (key, rank)
  for (int r = 0; r < nranks_; ++r) {
    if (color >= 0 && all[2 * r] == color) members.push_back(r);
  }
  std::stable_sort(members.begin(), members.end(),
                   [&](int a, int b) { return all[2 * a + 1] < all[2 * b + 1]; });
  ftcclUniqueId myId;
  std::memset(&myId, 0, sizeof(myId));
  bool leader = !members.empty() && members[0] == rank_;
  if (leader) FTCCL_CHECK(createListeningId(&myId));
  // The ids (each holds its child's secret) cross the data path, which authenticates
  // nobody: sealed under a key of this communicator, epoch and op, so a stranger can
  // neither read a child's secret nor hand the members an id of its own. The op number
  // is one every member has alike (a spare activated since has done no earlier split).
  crypto::Key splitKey{};
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const uint64_t epoch = epoch_, split = collectivesIssued_;
    if (authRoot_) {
      splitKey = crypto::MacKey(*authRoot_).derive(
          "ftccl split", {{&epoch, sizeof(epoch)}, {&split, sizeof(split)}});
    }
  }
  const std::vector<uint8_t> sealedId = crypto::seal(
      splitKey, std::vector<uint8_t>(myId.internal, myId.internal + sizeof(myId.internal)),
      "ftccl split id");
  std::vector<uint8_t> sealedIds(sealedId.size() * static_cast<size_t>(nranks_));
  FTCCL_CHECK(allGatherBytes(sealedId.data(), sealedIds.data(), sealedId.size()));
  if (color < 0) return Status::ok();
  std::vector<uint8_t> leaderId;
  if (!crypto::open(splitKey, sealedIds.data() + sealedId.size() * static_cast<size_t>(members[0]),
                    sealedId.size(), "ftccl split id", &leaderId) ||
      leaderId.size() != sizeof(myId.internal)) {
    return remoteError("ftcclCommSplit: the child's id from rank " + std::to_string(members[0]) +
                       " did not verify (altered on the way)");
  }
  std::vector<ftcclUniqueId> ids(nranks_);
  std::memcpy(ids[members[0]].internal, leaderId.data(), leaderId.size());
  int childRank = static_cast<int>(std::find(members.begin(), members.end(), rank_) -
                                   members.begin());
  FTCCL_LOG(Info, Init, "rank {}: split color {} key {}: rank {} of {}", rank_, color, key,
            childRank, members.size());
  // A member lost while the child forms (its root's process, say) revokes this
  // communicator too: the child's rendezvous stops waiting then (chaos seed 53: it waited
  // for a stopped root until the bootstrap timeout), and the revoke is the error to
  // report, the one an application recovers from.
  auto parentRevoked = [this] { return asyncError_.load() != ftcclSuccess || aborted_.load(); };
  Status child = create(static_cast<int>(members.size()), ids[members[0]], childRank, config, out,
                        parentRevoked);
  if (!child.isOk() && asyncError_.load() != ftcclSuccess) {
    Status revoked = revokedStatus("ftcclCommSplit");
    return Status(revoked.code(), revoked.message() + " (the child failed: " + child.message() +
                                      ")");
  }
  return child;
}

void Communicator::computeLayout() {
  std::vector<std::string> names;
  std::vector<Locality> where;
  for (int w : worldOf_) {
    names.push_back(peers_[w].node);
    Locality l;
    l.package = peers_[w].package;
    l.numaNode = peers_[w].numaNode;
    where.push_back(l);
  }
  NodeLayout layout = groupByNode(names, where);
  nodes_ = layout.nodes;
  shape_ = CommShape{nranks_, static_cast<int>(nodes_.size()), layout.maxRanksPerNode(),
                     layout.uniform()};
  if (rank_ == 0) FTCCL_LOG(Info, Init, "node layout: {}", describe(layout));
}

// Runs one op to completion: progress, then spin briefly, then sleep on the worker's
// event fd so oversubscribed ranks yield the CPU and waiting ranks cost nothing.
int Communicator::internalOpTimeoutMs() const {
  return config_.opTimeoutMs > 0 ? config_.opTimeoutMs : 10 * config_.failureTimeoutMs;
}

Status Communicator::drive(Collective& op, const std::string& what, Clock::time_point started,
                           int timeoutMs) {
  if (timeoutMs < 0) timeoutMs = config_.opTimeoutMs;
  auto lastActivity = started == Clock::time_point{} ? Clock::now() : started;
  auto spinStart = lastActivity;
  uint64_t lastMark = op.progressMark();
  unsigned idleRounds = 0;
  uint64_t busyRounds = 0;
  constexpr uint64_t kBusyCheckRounds = 4096;
  auto timedOut = [&] {
    return timeoutMs > 0 && Clock::now() - lastActivity > std::chrono::milliseconds(timeoutMs);
  };
  for (;;) {
    if (aborted_) {
      op.abort();
      return invalidUsage(what + ": the communicator was aborted");
    }
    if (asyncError_.load(std::memory_order_relaxed) != ftcclSuccess) {
      logMidTransfer();
      op.abort();  // cancels posted receives: nothing waits on a dead peer
      std::lock_guard<std::mutex> lock(mutex_);
      return Status(asyncError_.load(), what + ": " + revokeReason_);
    }
    bool done = false;
    Status st = op.progress(&done);
    if (!st.isOk() && st.code() == ftcclInvalidUsage) return failDisagreement(op, what, st);
    if (!st.isOk()) {
      logMidTransfer();
      op.abort();
      // A transfer that fails (UCX I/O error) almost always means a peer died: health
      // names it within its failure timeout, and its diagnosis is the recoverable one
      // (ftcclRemoteError, agreement under way). Only without one is UCX's error final.
      if (awaitHealthVerdict()) {
        std::lock_guard<std::mutex> lock(mutex_);
        return Status(asyncError_.load(), what + ": " + revokeReason_ +
                                              " (the transfer failed: " + st.message() + ")");
      }
      Status failed(st.code(), what + ": " + st.message());
      revoke(failed);
      return failed;
    }
    if (done) return Status::ok();
    if (op.progressMark() != lastMark) {  // only this op's own progress defers its timeout
      lastMark = op.progressMark();
      lastActivity = Clock::now();
      board_->step(lastMark);
    }
    // A worker that always reports activity (a retired peer's endpoint retrying) must
    // not starve the timeout: it is checked every kBusyCheckRounds busy rounds too.
    if (transport_->progress()) {
      idleRounds = 0;
      if ((++busyRounds % kBusyCheckRounds) != 0 || !timedOut()) continue;
    } else {
      if (idleRounds++ == 0) spinStart = Clock::now();
      if ((idleRounds & 31) == 0) sched_yield();
      if ((idleRounds & 63) != 0 || Clock::now() - spinStart < spinBudget_) continue;
      Status mismatch = transport_->findMismatchedMessage();
      if (!mismatch.isOk()) return failDisagreement(op, what, mismatch);
    }
    if (timedOut()) {
      std::string waitingFor = describeRanks(op.pendingPeers());  // before abort clears them
      op.abort();
      Status failed =
          timeoutError(what + ": no progress for " + std::to_string(timeoutMs) +
                       " ms; waiting for " + waitingFor + ". " + diagnoseHang());
      revoke(failed);
      return failed;
    }
    Status waited = transport_->waitForActivity(kSleepSliceMs);
    if (!waited.isOk()) {
      op.abort();
      revoke(waited);
      return waited;
    }
    if (transport_->progress()) idleRounds = 0;
  }
}

// The ranks disagree on the op (a count or a type differs): nobody failed, so waiting
// for health would only delay the error. The peers' ops are left to their own checks
// and timeouts.
Status Communicator::failDisagreement(Collective& op, const std::string& what,
                                      const Status& cause) {
  op.abort();
  Status failed(cause.code(), what + ": " + cause.message());
  revoke(failed);
  return failed;
}

// Which transfers a revoke cut short, per peer: a fault that strikes in the middle of a
// rendezvous is the hard case for the data path, and the chaos campaign counts them.
void Communicator::logMidTransfer() {
  for (const OutstandingTransfers& t : transport_->outstanding()) {
    if (t.world < 0 || t.world >= static_cast<int>(peers_.size())) continue;
    auto logical = std::find(worldOf_.begin(), worldOf_.end(), t.world);
    int peerRank = logical == worldOf_.end() ? -1 : static_cast<int>(logical - worldOf_.begin());
    FTCCL_LOG(Info, Net,
              "mid-transfer: rank {} had {} transfer(s) of {} bytes outstanding with rank {} "
              "(pid {}) at revoke; largest {} B, {} at or above UCX's rendezvous threshold "
              "({} B)", rank_, t.count, t.bytes, peerRank, peers_[t.world].pid, t.largest,
              t.rendezvous, t.rendezvousThreshold);
  }
}

bool Communicator::awaitHealthVerdict() {
  auto deadline = Clock::now() + std::chrono::milliseconds(config_.failureTimeoutMs +
                                                           4 * config_.probeIntervalMs);
  while (Clock::now() < deadline && !aborted_) {
    if (asyncError_.load() != ftcclSuccess) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return asyncError_.load() != ftcclSuccess;
}

void Communicator::revoke(const Status& cause) {
  {
    std::lock_guard<std::mutex> lock(mutex_);  // the only writer of an error
    if (asyncError_.load() != ftcclSuccess) return;
    // The message is in place before the error can be seen (GetAsyncError, then
    // GetLastError from a watchdog must never read an empty message).
    revokeReason_ = cause.message();
    lastError_ = "communicator revoked: " + cause.message();
    asyncError_.store(cause.code());
  }
  // A failure found by health is already logged once by it; log other causes here.
  if (cause.code() == ftcclRemoteError) {
    FTCCL_LOG(Debug, Coll, "rank {}: communicator revoked: {}", rank_, cause.message());
  } else {
    FTCCL_LOG(Error, Coll, "rank {}: communicator revoked: {}", rank_, cause.message());
  }
  // Wake the thread driving an op (it sleeps on the worker's event fd) and ops waiting
  // for their turn: they fail at once. (Under the lock: a worker switch may replace it.)
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (transport_) transport_->interrupt();
  }
  turn_.notify_all();
}

Status Communicator::revokedStatus(const char* opName) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return Status(asyncError_.load(),
                std::string(opName) + ": the communicator is revoked: " + revokeReason_);
}

void Communicator::waitForIssuedOps() {
  std::unique_lock<std::mutex> lock(mutex_);
  turn_.wait(lock, [&] { return executed_ == issued_ || aborted_; });
}

void Communicator::abort() {
  aborted_ = true;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (transport_) transport_->interrupt();
  }
  turn_.notify_all();
  decided_.notify_all();  // a waiting rebuild or standby returns at once
}

void Communicator::enter() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++users_;
}

void Communicator::leave() {
  std::lock_guard<std::mutex> lock(mutex_);
  --users_;
  turn_.notify_all();
}

void Communicator::waitUntilUnused() {
  std::unique_lock<std::mutex> lock(mutex_);
  turn_.wait(lock, [&] { return users_ == 0; });
}

void Communicator::holdForGroup() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++groupHolds_;
}

bool Communicator::releaseGroupHold() {
  std::lock_guard<std::mutex> lock(mutex_);
  --groupHolds_;
  return released_ && groupHolds_ == 0;
}

bool Communicator::markReleased() {
  std::lock_guard<std::mutex> lock(mutex_);
  released_ = true;
  return groupHolds_ == 0;
}

bool Communicator::isReleased() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return released_;
}

void Communicator::closeTransport() {
  std::unique_ptr<UcxTransport> closing;
  {
    std::lock_guard<std::mutex> lock(mutex_);  // abort() interrupts it under this lock
    closing = std::move(transport_);
  }
  closing.reset();
}

void Communicator::setLastError(const std::string& message) {
  std::lock_guard<std::mutex> lock(mutex_);
  lastError_ = message;
}

std::string Communicator::lastError() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return lastError_;
}

}  // namespace ftccl
