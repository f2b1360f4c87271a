// Recursive doubling schedule math (for the recursive doubling all-reduce), header-only
// so that unit tests check it for every rank count without a network.
//
// With n a power of two, in round k every rank swaps its partial with the rank whose
// number differs in bit k and both combine: log2(n) rounds, the fewest latencies of any
// all-reduce, at the price of sending the whole buffer every round. Otherwise, with p
// the largest power of two <= n and e = n - p, the first 2e ranks pair up first: each
// even one folds its input into its odd neighbour and waits, the odd one takes part in
// the p-rank rounds for both and hands the result back (two more latencies).
//
// Participants are numbered 0..p-1 ("virtual" ranks) in rank order, so a partial always
// covers a contiguous run of ranks and the lower virtual rank's run comes first.
#pragma once

#include <vector>

namespace ftccl {

struct DoublingPlan {
  enum Role { kPlain, kFolds, kAbsorbs };
  Role role = kPlain;
  int neighbour = -1;         // kFolds: the rank that absorbs it; kAbsorbs: the folded rank
  std::vector<int> partners;  // real ranks, one per round (none for kFolds)
};

namespace doubling_detail {

inline int largestPowerOfTwo(int n) {
  int p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}

}  // namespace doubling_detail

// Virtual rank of a participant, and the real rank of virtual rank v.
inline int doublingVirtual(int n, int rank) {
  int extra = n - doubling_detail::largestPowerOfTwo(n);
  return rank < 2 * extra ? rank / 2 : rank - extra;
}
inline int doublingReal(int n, int v) {
  int extra = n - doubling_detail::largestPowerOfTwo(n);
  return v < extra ? 2 * v + 1 : v + extra;
}

inline DoublingPlan doublingPlan(int n, int rank) {
  DoublingPlan plan;
  if (n <= 1) return plan;
  int p = doubling_detail::largestPowerOfTwo(n);
  int extra = n - p;
  if (rank < 2 * extra) {
    plan.role = rank % 2 == 0 ? DoublingPlan::kFolds : DoublingPlan::kAbsorbs;
    plan.neighbour = rank % 2 == 0 ? rank + 1 : rank - 1;
    if (plan.role == DoublingPlan::kFolds) return plan;
  }
  int v = doublingVirtual(n, rank);
  for (int mask = 1; mask < p; mask *= 2) plan.partners.push_back(doublingReal(n, v ^ mask));
  return plan;
}

}  // namespace ftccl
