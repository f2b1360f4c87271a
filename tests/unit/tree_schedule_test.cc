// The double binary tree (src/algorithms/tree.h) for every rank count 1..64: each tree
// spans every rank exactly once from one root, links agree in both directions, depth
// stays logarithmic, and no rank is interior in both trees.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "algorithms/tree.h"

namespace ftccl {
namespace {

TEST(DoubleBinaryTree, EveryRankCountGivesTwoSpanningTreesWithDisjointInteriors) {
  for (int n = 1; n <= 64; ++n) {
    std::vector<int> interiorIn(n, 0);
    for (int t = 0; t < 2; ++t) {
      std::vector<TreeLinks> links(n);
      int roots = 0, root = -1;
      for (int r = 0; r < n; ++r) {
        ASSERT_EQ(treeRank(n, t, treePosition(n, t, r)), r) << "n=" << n << " t=" << t;
        links[r] = doubleTreeLinks(n, t, r);
        if (links[r].parent < 0) {
          ++roots;
          root = r;
        }
        EXPECT_LE(links[r].children.size(), 2u);
        if (!links[r].children.empty()) ++interiorIn[r];
      }
      ASSERT_EQ(roots, 1) << "n=" << n << " t=" << t;
      for (int r = 0; r < n; ++r) {
        for (int c : links[r].children) {
          ASSERT_GE(c, 0);
          ASSERT_LT(c, n);
          EXPECT_EQ(links[c].parent, r) << "n=" << n << " t=" << t << " child " << c;
        }
        if (links[r].parent >= 0) {
          const auto& siblings = links[links[r].parent].children;
          EXPECT_NE(std::find(siblings.begin(), siblings.end(), r), siblings.end())
              << "n=" << n << " t=" << t << " rank " << r << " unknown to its parent";
        }
      }
      // Every rank reached once from the root, no deeper than log2(n) + 1 levels.
      std::vector<int> depth(n, -1), frontier = {root};
      depth[root] = 0;
      int reached = 0, deepest = 0;
      while (!frontier.empty()) {
        int r = frontier.back();
        frontier.pop_back();
        ++reached;
        deepest = std::max(deepest, depth[r]);
        for (int c : links[r].children) {
          ASSERT_EQ(depth[c], -1) << "n=" << n << " rank " << c << " reached twice";
          depth[c] = depth[r] + 1;
          frontier.push_back(c);
        }
      }
      EXPECT_EQ(reached, n) << "n=" << n << " t=" << t;
      EXPECT_LE(deepest, static_cast<int>(std::ceil(std::log2(n))) + 1) << "n=" << n;
    }
    for (int r = 0; r < n; ++r) {
      EXPECT_LE(interiorIn[r], 1) << "n=" << n << ": rank " << r << " interior in both trees";
    }
  }
}

TEST(DoubleBinaryTree, KnownShapes) {
  // 8 ranks, tree 0: positions 1..8, root 8 (rank 7) -> 4 (rank 3) -> 2, 6 ...
  EXPECT_EQ(doubleTreeLinks(8, 0, 7).parent, -1);
  EXPECT_EQ(doubleTreeLinks(8, 0, 7).children, (std::vector<int>{3}));
  EXPECT_EQ(doubleTreeLinks(8, 0, 3).children, (std::vector<int>{1, 5}));
  EXPECT_EQ(doubleTreeLinks(8, 0, 5).children, (std::vector<int>{4, 6}));
  // Tree 1 mirrors it: rank 0 is the root.
  EXPECT_EQ(doubleTreeLinks(8, 1, 0).parent, -1);
  // One rank: no links at all.
  EXPECT_EQ(doubleTreeLinks(1, 0, 0).parent, -1);
  EXPECT_TRUE(doubleTreeLinks(1, 1, 0).children.empty());
}

}  // namespace
}  // namespace ftccl
