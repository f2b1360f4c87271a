// How a process registers with health for one epoch: one wiring, used by the library
// (core/'s Communicator) and by the scale simulator (tools/ftccl_sim), so that the
// simulator runs the library's own wiring and not a copy of it.
//
// Everything follows from the epoch's membership (which process is which rank or spare),
// where each member runs, this process and the policy: whom it probes (monitoring.h:
// ring neighbours and node leaders; spare j is watched by rank j % nRanks and watches
// it back), and which processes are former members (one still sending heartbeats slept
// through a rebuild and is told it was expelled). The table is built once per epoch in
// O(N) (hash index, no scan per member) and is immutable, so the simulator's virtual
// processes share one.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "health/health_protocol.h"
#include "recovery/agreement.h"

namespace ftccl {

// Where a member runs. Node leaders are chosen per `node` (FTCCL_NODE_ID in the
// library), the host when it is empty.
struct ProcessPlace {
  std::string host;
  int pid = 0;
  std::string node;
};

struct EpochTable {
  std::shared_ptr<const Membership> membership;
  std::shared_ptr<const MemberTable> members;  // ranks, then spares
  std::vector<int> leaders;                    // the lowest rank of each node (monitoring.h)
  std::vector<ProcessKey> formerMembers;       // known processes that are not members now
};

// `placeOf` tells where a member runs; `known` lists every process the members may still
// hear from (those of earlier epochs included).
EpochTable buildEpochTable(std::shared_ptr<const Membership> membership,
                           const std::function<ProcessPlace(const ProcessKey&)>& placeOf,
                           const std::vector<ProcessKey>& known);

struct HealthPolicy {
  int probeIntervalMs = 10;
  int failureTimeoutMs = 1000;
  bool shrinkWhenNoSpares = true;
  double stragglerMinLateMs = 5.0;
};

// This process's registration for the epoch (recoverable: a failure starts the
// agreement on the next membership). myRank < 0 when `self` is not a member.
HealthRegistration registrationFor(const EpochTable& table, const ProcessKey& self,
                                   uint64_t commKey, const HealthPolicy& policy,
                                   std::shared_ptr<const AgreementCommit> enteredBy,
                                   HealthListener* listener);

}  // namespace ftccl
