#include "health/epoch_wiring.h"

#include "health/monitoring.h"

namespace ftccl {

EpochTable buildEpochTable(std::shared_ptr<const Membership> membership,
                           const std::function<ProcessPlace(const ProcessKey&)>& placeOf,
                           const std::vector<ProcessKey>& known) {
  EpochTable t;
  auto members = std::make_shared<std::vector<MemberInfo>>();
  auto index = std::make_shared<std::unordered_map<ProcessKey, int>>();
  const size_t n = membership->ranks.size() + membership->spares.size();
  members->reserve(n);
  index->reserve(n);
  std::vector<std::string> nodeOfRank;
  nodeOfRank.reserve(membership->ranks.size());
  for (const auto* list : {&membership->ranks, &membership->spares}) {
    for (const ProcessKey& key : *list) {
      ProcessPlace place = placeOf(key);
      int at = static_cast<int>(members->size());
      (*index)[key] = at;
      if (list == &membership->ranks) {
        nodeOfRank.push_back(place.node.empty() ? place.host : std::move(place.node));
      }
      members->push_back(MemberInfo{at, std::move(place.host), place.pid, key});
    }
  }
  for (const ProcessKey& key : known) {
    if (!index->count(key)) t.formerMembers.push_back(key);
  }
  t.leaders = nodeLeaders(nodeOfRank);
  t.membership = std::move(membership);
  t.members = std::move(members);
  t.index = std::move(index);
  return t;
}

HealthRegistration registrationFor(const EpochTable& table, const ProcessKey& self,
                                   uint64_t commKey, const HealthPolicy& policy,
                                   std::shared_ptr<const RecoveryMessage> enteredBy,
                                   HealthListener* listener) {
  HealthRegistration reg;
  reg.commKey = commKey;
  reg.epoch = static_cast<uint32_t>(table.membership->epoch);
  reg.nRanks = static_cast<int>(table.membership->ranks.size());
  reg.sharedMembers = table.members;
  reg.sharedIndex = table.index;
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
  auto me = table.index->find(self);
  if (me == table.index->end()) return reg;  // not a member (expelled, or left)
  reg.myRank = me->second;
  const int nRanks = reg.nRanks;
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
