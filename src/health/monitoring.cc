#include "health/monitoring.h"

#include <algorithm>
#include <set>
#include <unordered_set>

namespace ftccl {

std::vector<int> nodeLeaders(const std::vector<std::string>& nodeOfRank) {
  std::vector<int> leaders;
  std::unordered_set<std::string> seen;
  for (int r = 0; r < static_cast<int>(nodeOfRank.size()); ++r) {
    if (seen.insert(nodeOfRank[r]).second) leaders.push_back(r);
  }
  return leaders;
}

std::vector<int> monitoredRanks(int nranks, const std::vector<int>& leaders, int rank) {
  std::set<int> watch;
  if (nranks > 1) watch.insert((rank + 1) % nranks);
  if (nranks > 2) watch.insert((rank + nranks - 1) % nranks);
  if (nranks >= 4) watch.insert((rank + nranks / 2) % nranks);  // across the ring
  auto me = std::lower_bound(leaders.begin(), leaders.end(), rank);
  int nl = static_cast<int>(leaders.size());
  if (me != leaders.end() && *me == rank && nl > 1) {
    int i = static_cast<int>(me - leaders.begin());
    watch.insert(leaders[(i + 1) % nl]);
    watch.insert(leaders[(i + nl - 1) % nl]);
  }
  watch.erase(rank);
  return std::vector<int>(watch.begin(), watch.end());
}

}  // namespace ftccl
