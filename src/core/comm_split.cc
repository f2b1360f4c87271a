// ftcclCommSplit: children formed by two all-gathers over the parent's op order.
#include <algorithm>
#include <cstring>

#include "bootstrap/bootstrap.h"
#include "core/communicator.h"
#include "util/crypto.h"
#include "util/log.h"

namespace ftccl {

Status Communicator::allGatherBytes(const void* mine, void* all, size_t bytesEach) {
  OpRequest op;
  op.kind = OpKind::kAllGather;
  op.args.sendbuff = mine;
  op.args.recvbuff = all;
  op.args.count = bytesEach;
  op.args.type = ftcclUint8;
  op.internal = true;
  std::vector<OpRequest> batch{op};
  return execute(issue(&batch), batch);
}

// Two all-gathers on the parent: (color, key) of every rank, then the id of each child's
// rendezvous, created by the child's new rank 0 in its own process (a fresh listener even
// under FTCCL_COMM_ID). Each child is then a communicator like any other: its own UCX
// worker, tags and health registration (the process's health thread is shared, so one
// dead process is detected by every communicator it belongs to).
Status Communicator::split(int color, int key, const ftcclConfig_t* config,
                           std::unique_ptr<Communicator>* out) {
  out->reset();
  const int rank = epochs_.rank(), nranks = epochs_.nranks();
  if (rank < 0) return invalidUsage("ftcclCommSplit: a hot spare holds no rank to split");
  CommConfig childConfig;
  FTCCL_CHECK(resolveConfig(config, &childConfig));
  if (childConfig.nSpares > 0) {
    return invalidUsage("ftcclCommSplit: a child has no spares of its own (nSpares=" +
                        std::to_string(childConfig.nSpares) + "); it shrinks when a rank fails");
  }
  int32_t mine[2] = {color < 0 ? FTCCL_SPLIT_NOCOLOR : color, key};
  std::vector<int32_t> all(2 * static_cast<size_t>(nranks));
  FTCCL_CHECK(allGatherBytes(mine, all.data(), sizeof(mine)));
  std::vector<int> members;  // my color's ranks, by (key, rank)
  for (int r = 0; r < nranks; ++r) {
    if (color >= 0 && all[2 * r] == color) members.push_back(r);
  }
  std::stable_sort(members.begin(), members.end(),
                   [&](int a, int b) { return all[2 * a + 1] < all[2 * b + 1]; });
  ftcclUniqueId myId;
  std::memset(&myId, 0, sizeof(myId));
  bool leader = !members.empty() && members[0] == rank;
  if (leader) FTCCL_CHECK(createListeningId(&myId));
  // The ids (each holds its child's secret) cross the data path, which authenticates
  // nobody: sealed under a key of this communicator, epoch and op, so a stranger can
  // neither read a child's secret nor hand the members an id of its own. The op number
  // is one every member has alike (a spare activated since has done no earlier split).
  crypto::Key splitKey{};
  const uint64_t epoch = epochs_.epoch(), split = order_.collectivesIssued();
  if (authRoot_) {
    splitKey = crypto::MacKey(*authRoot_)
                   .derive("ftccl split", {{&epoch, sizeof(epoch)}, {&split, sizeof(split)}});
  }
  const std::vector<uint8_t> sealedId = crypto::seal(
      splitKey, std::vector<uint8_t>(myId.internal, myId.internal + sizeof(myId.internal)),
      "ftccl split id");
  std::vector<uint8_t> sealedIds(sealedId.size() * static_cast<size_t>(nranks));
  FTCCL_CHECK(allGatherBytes(sealedId.data(), sealedIds.data(), sealedId.size()));
  if (color < 0) return Status::ok();
  std::vector<uint8_t> leaderId;
  if (!crypto::open(splitKey, sealedIds.data() + sealedId.size() * static_cast<size_t>(members[0]),
                    sealedId.size(), "ftccl split id", &leaderId) ||
      leaderId.size() != sizeof(myId.internal)) {
    return remoteError("ftcclCommSplit: the child's id from rank " + std::to_string(members[0]) +
                       " did not verify (altered on the way)");
  }
  std::vector<ftcclUniqueId> ids(nranks);
  std::memcpy(ids[members[0]].internal, leaderId.data(), leaderId.size());
  int childRank =
      static_cast<int>(std::find(members.begin(), members.end(), rank) - members.begin());
  FTCCL_LOG(Info, Init, "rank {}: split color {} key {}: rank {} of {}", rank, color, key,
            childRank, members.size());
  // A member lost while the child forms (its root's process, say) revokes this
  // communicator too: the child's rendezvous stops waiting then (chaos seed 53: it waited
  // for a stopped root until the bootstrap timeout), and the revoke is the error to
  // report, the one an application recovers from.
  auto parentRevoked = [this] { return revocation_.revoked() || revocation_.aborted(); };
  Status child = create(static_cast<int>(members.size()), ids[members[0]], childRank, config, out,
                        parentRevoked);
  if (!child.isOk() && revocation_.revoked()) {
    Status revoked = revokedStatus("ftcclCommSplit");
    return Status(revoked.code(),
                  revoked.message() + " (the child failed: " + child.message() + ")");
  }
  return child;
}

}  // namespace ftccl
