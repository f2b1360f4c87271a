// Whom each rank probes (DESIGN.md section 4, step 1): its ring neighbours, the rank
// across the ring (rank + n/2) and, when it leads its node (its lowest rank), the
// neighbouring node leaders, so that the loss of a whole node is seen by the leaders
// that hierarchical algorithms talk to. Each rank probes at most five others, whatever
// the size of the job.
//
// Across the ring: hosts and racks are runs of consecutive ranks, so a ring neighbour of
// a rank that dies with its host or rack usually dies with it, and most of them were
// watched only by each other: the coordinator had to wait out two stalls before it
// evicted them (ftccl_sim host: 100 ms at 30 ms timeouts). The rank n/2 away is on
// another host and rack whenever those hold fewer than half of the ranks, so every
// process of a host or rack that fails together is seen by a survivor within one
// probe round plus the failure timeout (issue 27). For an even n the pairs watch each
// other, which halves their acks.
#pragma once

#include <string>
#include <vector>

namespace ftccl {

// The lowest rank of each node, in rank order (nodeOfRank: any name per node).
std::vector<int> nodeLeaders(const std::vector<std::string>& nodeOfRank);

// The ranks `rank` of `nranks` probes, ascending; `leaders` from nodeLeaders.
std::vector<int> monitoredRanks(int nranks, const std::vector<int>& leaders, int rank);

}  // namespace ftccl
