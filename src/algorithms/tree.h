// Double binary tree schedule math (for tree all-reduce), header-only so that unit
// tests check it for every rank count without a network.
//
// One binary tree pays only log2(n) latencies but its leaves (half the ranks) never
// send down and its interior ranks carry the load. Two trees that share no interior
// rank, each carrying half of the data, use every rank's links in both directions.
//
// Tree 0 is the in-order binary tree over positions 1..n: position k's level is the
// number of trailing zero bits of k, so odd positions are leaves and the root is the
// largest power of two <= n. Rank r sits at position r + 1 in tree 0. Tree 1 moves
// every rank by one place so that its interior positions fall on tree 0's leaves:
// mirrored (position n - r) when n is even, shifted (position (r + 1) mod n, + 1)
// when n is odd. Hence each rank is interior in at most one of the two trees.
#pragma once

#include <vector>

namespace ftccl {

struct TreeLinks {
  int parent = -1;            // -1 at the root
  std::vector<int> children;  // 0, 1 or 2 ranks
};

namespace tree_detail {

inline int lowestBit(int k) { return k & -k; }

// Parent position of k in the in-order tree over 1..n, 0 for the root.
inline int parentPosition(int n, int k) {
  int root = 1;
  while (root * 2 <= n) root *= 2;
  if (k == root) return 0;
  for (int step = lowestBit(k);; step *= 2) {
    // k's ancestor at the next level: whichever neighbour at distance `step` has its
    // lowest set bit at 2 * step.
    int up = (k & (2 * step)) ? k - step : k + step;
    if (up <= n) return up;
    k = up;  // beyond n: climb on (the missing node's place is taken by its parent)
  }
}

// Child positions of k: its left child always exists at level > 0; its right child is
// the nearest existing node down the right branch.
inline std::vector<int> childPositions(int n, int k) {
  std::vector<int> children;
  int half = lowestBit(k) / 2;
  if (half == 0) return children;  // a leaf
  children.push_back(k - half);
  for (int right = k + half, step = half; step >= 1; step /= 2, right -= step) {
    if (right <= n) {
      children.push_back(right);
      break;
    }
    if (step == 1) break;
  }
  return children;
}

}  // namespace tree_detail

// Position (1..n) of `rank` in tree `t` (0 or 1), and its inverse.
inline int treePosition(int n, int t, int rank) {
  if (t == 0) return rank + 1;
  return n % 2 == 0 ? n - rank : (rank + 1) % n + 1;
}
inline int treeRank(int n, int t, int position) {
  if (t == 0) return position - 1;
  return n % 2 == 0 ? n - position : (position - 2 + n) % n;
}

// `rank`'s parent and children in tree `t` of the double binary tree over n ranks.
inline TreeLinks doubleTreeLinks(int n, int t, int rank) {
  TreeLinks links;
  if (n <= 1) return links;
  int k = treePosition(n, t, rank);
  int up = tree_detail::parentPosition(n, k);
  links.parent = up == 0 ? -1 : treeRank(n, t, up);
  for (int c : tree_detail::childPositions(n, k)) links.children.push_back(treeRank(n, t, c));
  return links;
}

}  // namespace ftccl
