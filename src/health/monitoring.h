// Whom each rank probes (DESIGN.md section 4, step 1): its ring neighbours and, when it
// leads its node (its lowest rank), the neighbouring node leaders, so that the loss of
// a whole node is seen by the leaders that hierarchical algorithms talk to. Each rank
// probes at most four others, whatever the size of the job.
#pragma once

#include <string>
#include <vector>

namespace ftccl {

// The lowest rank of each node, in rank order (nodeOfRank: any name per node).
std::vector<int> nodeLeaders(const std::vector<std::string>& nodeOfRank);

// The ranks `rank` of `nranks` probes, ascending; `leaders` from nodeLeaders.
std::vector<int> monitoredRanks(int nranks, const std::vector<int>& leaders, int rank);

}  // namespace ftccl
