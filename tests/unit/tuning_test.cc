// The cost model and the algorithm choice: FTCCL_ALGO and FTCCL_TUNING parsing, the
// choices the model makes where the answer is known, and that forcing always wins.
#include <gtest/gtest.h>

#include "tuning/algorithm_choice.h"

namespace ftccl {
namespace {

CommShape oneNode(int n) { return CommShape{n, 1, n, true}; }

TEST(AlgorithmOverrides, BareNameAppliesToEveryCollectiveThatHasIt) {
  AlgorithmOverrides o;
  ASSERT_TRUE(parseAlgorithmOverrides("tree", "FTCCL_ALGO", &o).isOk());
  EXPECT_TRUE(o.forced[static_cast<int>(CollectiveKind::kAllReduce)]);
  EXPECT_EQ(o.algorithm[static_cast<int>(CollectiveKind::kAllReduce)], Algorithm::kTree);
  EXPECT_FALSE(o.forced[static_cast<int>(CollectiveKind::kBroadcast)]);
  ASSERT_TRUE(parseAlgorithmOverrides("ring", "FTCCL_ALGO", &o).isOk());
  for (bool forced : o.forced) EXPECT_TRUE(forced);
}

TEST(AlgorithmOverrides, PerCollective) {
  AlgorithmOverrides o;
  ASSERT_TRUE(parseAlgorithmOverrides("allreduce:hier;broadcast:chain", "x", &o).isOk());
  EXPECT_EQ(o.algorithm[static_cast<int>(CollectiveKind::kAllReduce)], Algorithm::kHierarchical);
  EXPECT_EQ(o.algorithm[static_cast<int>(CollectiveKind::kBroadcast)], Algorithm::kRing);
  EXPECT_FALSE(o.forced[static_cast<int>(CollectiveKind::kReduce)]);
}

TEST(AlgorithmOverrides, ErrorsNameTheProblem) {
  AlgorithmOverrides o;
  Status st = parseAlgorithmOverrides("allreduce:bogus", "FTCCL_ALGO", &o);
  EXPECT_EQ(st.code(), ftcclInvalidArgument);
  EXPECT_NE(st.message().find("bogus"), std::string::npos);
  st = parseAlgorithmOverrides("gather:ring", "FTCCL_ALGO", &o);
  EXPECT_NE(st.message().find("unknown collective 'gather'"), std::string::npos);
  st = parseAlgorithmOverrides("broadcast:tree", "config.algorithm", &o);
  EXPECT_NE(st.message().find("broadcast has no tree"), std::string::npos) << st.message();
}

TEST(CostModel, ParsesTuningAndRoundTrips) {
  CostModel m;
  ASSERT_TRUE(parseCostModel("alpha_us=2,beta_gbps=8,inter_gbps=1", &m).isOk());
  EXPECT_DOUBLE_EQ(m.alphaUs, 2);
  EXPECT_NEAR(m.betaUsPerMiB, 131.072, 1e-9);
  EXPECT_EQ(m.source, "FTCCL_TUNING");
  CostModel back;
  ASSERT_TRUE(CostModel::fromVector(m.toVector(), &back).isOk());
  EXPECT_DOUBLE_EQ(back.interBetaUsPerMiB, m.interBetaUsPerMiB);
  EXPECT_EQ(parseCostModel("alpha_us=-1", &m).code(), ftcclInvalidArgument);
  EXPECT_EQ(parseCostModel("speed=3", &m).code(), ftcclInvalidArgument);
  EXPECT_EQ(parseCostModel("alpha_us=3x", &m).code(), ftcclInvalidArgument);
}

TEST(Tuner, TreeForSmallRingForLargeOnOneNode) {
  Tuner tuner(CostModel{}, AlgorithmOverrides{}, PipelineConfig{});
  for (int n : {4, 8, 16}) {
    EXPECT_EQ(tuner.choose(CollectiveKind::kAllReduce, 8, oneNode(n)).algorithm, Algorithm::kTree);
    EXPECT_EQ(tuner.choose(CollectiveKind::kAllReduce, 64 << 20, oneNode(n)).algorithm,
              Algorithm::kRing)
        << n;
  }
  // Collectives with only the ring get the ring whatever the size.
  EXPECT_EQ(tuner.choose(CollectiveKind::kBroadcast, 8, oneNode(4)).algorithm, Algorithm::kRing);
}

TEST(Tuner, HierarchicalWhenNodesAreFarApart) {
  CostModel slow;
  ASSERT_TRUE(parseCostModel("inter_alpha_us=50,inter_gbps=0.5", &slow).isOk());
  Tuner tuner(slow, AlgorithmOverrides{}, PipelineConfig{});
  CommShape fourByTwo{8, 4, 2, true};
  EXPECT_EQ(tuner.choose(CollectiveKind::kAllReduce, 16 << 20, fourByTwo).algorithm,
            Algorithm::kHierarchical);
  // One node: hierarchical is only the ring, never chosen.
  EXPECT_NE(tuner.choose(CollectiveKind::kAllReduce, 16 << 20, oneNode(8)).algorithm,
            Algorithm::kHierarchical);
}

TEST(Tuner, ForcedAlgorithmAlwaysWins) {
  AlgorithmOverrides o;
  ASSERT_TRUE(parseAlgorithmOverrides("allreduce:tree", "x", &o).isOk());
  Tuner tuner(CostModel{}, o, PipelineConfig{});
  AlgorithmChoice c = tuner.choose(CollectiveKind::kAllReduce, 256 << 20, oneNode(8));
  EXPECT_EQ(c.algorithm, Algorithm::kTree);
  EXPECT_TRUE(c.forced);
  EXPECT_GE(c.pipeline.chunkBytes, 16u * 1024);
}

}  // namespace
}  // namespace ftccl
