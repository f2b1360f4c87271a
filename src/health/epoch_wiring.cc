#include "health/epoch_wiring.h"

#include "health/monitoring.h"

namespace ftccl {

EpochTable buildEpochTable(std::shared_ptr<const Membership> membership,
                           const std::function<ProcessPlace(const ProcessKey&)>& placeOf,
                           const std::vector<ProcessKey>& known) {
  EpochTable t;
  std::vector<MemberInfo> members;
  members.reserve(membership->ranks.size() + membership->spares.size());
  std::vector<std::string> nodeOfRank;
  nodeOfRank.reserve(membership->ranks.size());
  for (const auto* list : {&membership->ranks, &membership->spares}) {
    for (const ProcessKey& key : *list) {
      ProcessPlace place = placeOf(key);
      if (list == &membership->ranks) {
        nodeOfRank.push_back(place.node.empty() ? place.host : std::move(place.node));
      }
      members.push_back(
          MemberInfo{{key, std::move(place.host), place.pid}, static_cast<int>(members.size())});
    }
  }
  t.members = MemberTable::make(std::move(members), static_cast<int>(membership->ranks.size()));
  for (const ProcessKey& key : known) {
    if (!t.members->find(key)) t.formerMembers.push_back(key);
  }
  t.leaders = nodeLeaders(nodeOfRank);
  t.membership = std::move(membership);
  return t;
}

HealthRegistration registrationFor(const EpochTable& table, const ProcessKey& self,
                                   uint64_t commKey, const HealthPolicy& policy,
                                   std::shared_ptr<const AgreementCommit> enteredBy,
                                   HealthListener* listener) {
  HealthRegistration reg;
  reg.commKey = commKey;
  reg.epoch = static_cast<uint32_t>(table.membership->epoch);
  reg.members = table.members;
  reg.membership = table.membership;
  reg.formerMembers = table.formerMembers;
  if (enteredBy) reg.epochSalt = enteredBy->salt;
  reg.enteredBy = std::move(enteredBy);
  reg.listener = listener;
  reg.probeIntervalMs = policy.probeIntervalMs;
  reg.failureTimeoutMs = policy.failureTimeoutMs;
  reg.recoverable = true;
  reg.shrinkWhenNoSpares = policy.shrinkWhenNoSpares;
  reg.stragglerMinLateMs = policy.stragglerMinLateMs;
  const MemberInfo* me = table.members->find(self);
  if (me == nullptr) return reg;  // not a member (expelled, or left)
  reg.myRank = me->rank;
  const int nRanks = table.members->nRanks;
  const int nSpares = static_cast<int>(table.membership->spares.size());
  if (reg.myRank < nRanks) {
    reg.monitored = monitoredRanks(nRanks, table.leaders, reg.myRank);
    for (int j = reg.myRank; j < nSpares; j += nRanks) reg.monitored.push_back(nRanks + j);
  } else if (nRanks > 0) {
    reg.monitored.push_back((reg.myRank - nRanks) % nRanks);
  }
  return reg;
}

}  // namespace ftccl
