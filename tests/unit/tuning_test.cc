// The cost model and the algorithm choice: FTCCL_ALGO and FTCCL_TUNING parsing, the
// choices the model makes where the answer is known, that forcing always wins, and
// that a calibration overrides the model where they disagree.
#include <gtest/gtest.h>

#include <algorithm>

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

// The messages come from the algorithm table (algorithms/catalog.h): pinned whole.
TEST(AlgorithmOverrides, MessagesListTheTablesNames) {
  AlgorithmOverrides o;
  EXPECT_EQ(
      parseAlgorithmOverrides("allreduce:bogus", "FTCCL_ALGO", &o).message(),
      "FTCCL_ALGO: unknown algorithm 'bogus' in 'allreduce:bogus' (ring, tree, hier, rd, shm)");
  EXPECT_EQ(parseAlgorithmOverrides("reducescatter:rd", "x", &o).message(),
            "x: reducescatter has no rd algorithm (it has ring, shm)");
  for (const char* alias :
       {"chain", "hierarchical", "recursive-doubling", "hier", "rd", "shm", "shared-memory"}) {
    EXPECT_TRUE(parseAlgorithmOverrides(std::string("allreduce:") + alias, "x", &o).isOk());
  }
}

TEST(Catalog, NamesNumbersAndDefaults) {
  EXPECT_STREQ(algorithmName(Algorithm::kRing), "ring");
  EXPECT_STREQ(algorithmName(Algorithm::kTree), "tree");
  EXPECT_STREQ(algorithmName(Algorithm::kHierarchical), "hier");
  EXPECT_STREQ(algorithmName(Algorithm::kRecursiveDoubling), "rd");
  EXPECT_STREQ(algorithmName(Algorithm::kSharedMemory), "shm");
  // Shared by number (Tuner::toVector, calibration slots): the numbering is fixed.
  EXPECT_EQ(static_cast<int>(Algorithm::kRecursiveDoubling), 3);
  for (CollectiveKind kind : kAllCollectiveKinds) {
    EXPECT_EQ(algorithmsFor(kind).front().algorithm, Algorithm::kRing) << collectiveName(kind);
    EXPECT_TRUE(supports(kind, Algorithm::kRing));
    EXPECT_EQ(supports(kind, Algorithm::kTree), kind == CollectiveKind::kAllReduce);
  }
  EXPECT_STREQ(collectiveName(CollectiveKind::kReduceScatter), "reducescatter");
}

// The table's conditions give the same candidates, in the same order, as the rules the
// tuner had before the table: ring; tree above 2 ranks; rd above 1; hier across nodes
// with some node holding several ranks.
TEST(Catalog, CandidatesMatchTheFormerRules) {
  for (int n = 1; n <= 16; ++n) {
    for (int nodes = 1; nodes <= n; ++nodes) {
      CommShape shape{n, nodes, (n + nodes - 1) / nodes, n % nodes == 0};
      std::vector<Algorithm> want{Algorithm::kRing};
      if (n > 2) want.push_back(Algorithm::kTree);
      if (n > 1) want.push_back(Algorithm::kRecursiveDoubling);
      if (nodes > 1 && nodes < n) want.push_back(Algorithm::kHierarchical);
      EXPECT_EQ(Tuner::candidates(CollectiveKind::kAllReduce, shape), want) << n << " " << nodes;
      for (CollectiveKind kind : kAllCollectiveKinds) {
        if (kind == CollectiveKind::kAllReduce) continue;
        EXPECT_EQ(Tuner::candidates(kind, shape), std::vector<Algorithm>{Algorithm::kRing});
      }
    }
  }
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

TEST(Tuner, DoublingForSmallRingForLargeOnOneNode) {
  Tuner tuner(CostModel{}, AlgorithmOverrides{}, PipelineConfig{});
  for (int n : {2, 4, 6, 8, 16}) {
    EXPECT_EQ(tuner.choose(CollectiveKind::kAllReduce, 8, oneNode(n)).algorithm,
              Algorithm::kRecursiveDoubling)
        << n;
    // Recursive doubling's latency is the lowest, but it moves the whole buffer every round.
    EXPECT_LT(
        tuner.modelUs(CollectiveKind::kAllReduce, Algorithm::kRecursiveDoubling, 8, oneNode(n)),
        tuner.modelUs(CollectiveKind::kAllReduce, Algorithm::kTree, 8, oneNode(n)));
    EXPECT_GT(tuner.modelUs(CollectiveKind::kAllReduce, Algorithm::kRecursiveDoubling, 1 << 20,
                            oneNode(n)),
              tuner.modelUs(CollectiveKind::kAllReduce, Algorithm::kRing, 1 << 20, oneNode(n)));
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
  EXPECT_GE(c.pipeline.chunkBytes, 8u * 1024);
}

TEST(Tuner, TreeChunksStayEagerUntilLanesAreLarge) {
  Tuner tuner(CostModel{}, AlgorithmOverrides{}, PipelineConfig{});
  EXPECT_EQ(tuner.pipelineFor(Algorithm::kTree, 64 * 1024).chunkBytes, 8u * 1024);
  EXPECT_EQ(tuner.pipelineFor(Algorithm::kTree, 1 << 20).chunkBytes, 8u * 1024);
  EXPECT_EQ(tuner.pipelineFor(Algorithm::kTree, 4 << 20).chunkBytes, 128u * 1024);
  EXPECT_EQ(tuner.pipelineFor(Algorithm::kTree, 256 << 20).chunkBytes, 128u * 1024);  // base / 4
  EXPECT_EQ(tuner.pipelineFor(Algorithm::kRing, 64 * 1024).chunkBytes, PipelineConfig{}.chunkBytes);
}

TEST(Tuner, CandidatesFollowTheShape) {
  auto has = [](const std::vector<Algorithm>& list, Algorithm a) {
    return std::find(list.begin(), list.end(), a) != list.end();
  };
  EXPECT_EQ(Tuner::candidates(CollectiveKind::kAllReduce, oneNode(1)).size(), 1u);
  EXPECT_EQ(Tuner::candidates(CollectiveKind::kAllReduce, oneNode(2)),
            (std::vector<Algorithm>{Algorithm::kRing, Algorithm::kRecursiveDoubling}));
  EXPECT_TRUE(has(Tuner::candidates(CollectiveKind::kAllReduce, oneNode(3)), Algorithm::kTree));
  EXPECT_FALSE(
      has(Tuner::candidates(CollectiveKind::kAllReduce, oneNode(8)), Algorithm::kHierarchical));
  EXPECT_TRUE(has(Tuner::candidates(CollectiveKind::kAllReduce, CommShape{8, 2, 4, true}),
                  Algorithm::kHierarchical));
  EXPECT_FALSE(has(Tuner::candidates(CollectiveKind::kAllReduce, CommShape{4, 4, 1, true}),
                   Algorithm::kHierarchical));  // one rank per node: it is the ring
  EXPECT_EQ(Tuner::candidates(CollectiveKind::kAllGather, CommShape{8, 2, 4, true}).size(), 1u);
  // Shared memory only where every rank mapped the node's segment (core decides).
  EXPECT_FALSE(
      has(Tuner::candidates(CollectiveKind::kAllReduce, oneNode(4)), Algorithm::kSharedMemory));
  CommShape mapped = oneNode(4);
  mapped.sharedMemory = true;
  EXPECT_TRUE(has(Tuner::candidates(CollectiveKind::kAllReduce, mapped), Algorithm::kSharedMemory));
  mapped.nranks = 1;
  EXPECT_FALSE(
      has(Tuner::candidates(CollectiveKind::kAllReduce, mapped), Algorithm::kSharedMemory));
}

// Times as a machine where the model is wrong would measure them: the tree is slower
// than the ring at 8 B (the model says faster) and faster at 1 MiB (the model says
// slower).
Calibration invertedCalibration(const CommShape& shape) {
  Calibration c;
  c.shape = shape;
  double ring[] = {40, 200, 400, 600, 2000}, tree[] = {80, 100, 200, 300, 1000};
  for (int p = 0; p < Calibration::kProbes; ++p) {
    c.us[static_cast<int>(Algorithm::kRing)][p] = ring[p];
    c.us[static_cast<int>(Algorithm::kTree)][p] = tree[p];
  }
  return c;
}

TEST(Calibration, PredictionsMatchTheProbesAndChoicesFollowThem) {
  CommShape shape = oneNode(4);
  Tuner bare(CostModel{}, AlgorithmOverrides{}, PipelineConfig{});
  auto model = [&](Algorithm a, size_t bytes) {
    return bare.modelUs(CollectiveKind::kAllReduce, a, bytes, shape);
  };
  ASSERT_LT(model(Algorithm::kTree, 8), model(Algorithm::kRing, 8));
  ASSERT_GT(model(Algorithm::kTree, 1 << 20), model(Algorithm::kRing, 1 << 20));
  Tuner tuner(CostModel{}, AlgorithmOverrides{}, PipelineConfig{}, invertedCalibration(shape));
  const double ring[] = {40, 200, 400, 600, 2000}, tree[] = {80, 100, 200, 300, 1000};
  for (int p = 0; p < Calibration::kProbes; ++p) {
    size_t bytes = Calibration::kProbeBytes[p];
    EXPECT_NEAR(tuner.predictUs(CollectiveKind::kAllReduce, Algorithm::kRing, bytes, shape),
                ring[p], 1e-6);
    EXPECT_NEAR(tuner.predictUs(CollectiveKind::kAllReduce, Algorithm::kTree, bytes, shape),
                tree[p], 1e-6);
  }
  EXPECT_EQ(tuner.choose(CollectiveKind::kAllReduce, 8, shape).algorithm, Algorithm::kRing);
  EXPECT_EQ(tuner.choose(CollectiveKind::kAllReduce, 1 << 20, shape).algorithm, Algorithm::kTree);
  // Between probes the correction is interpolated: 8 KiB lies between 8 B and 64 KiB.
  double mid = tuner.predictUs(CollectiveKind::kAllReduce, Algorithm::kRing, 8192, shape);
  double lo = bare.predictUs(CollectiveKind::kAllReduce, Algorithm::kRing, 8192, shape) *
              (40 / bare.predictUs(CollectiveKind::kAllReduce, Algorithm::kRing, 8, shape));
  double hi = bare.predictUs(CollectiveKind::kAllReduce, Algorithm::kRing, 8192, shape) *
              (200 / bare.predictUs(CollectiveKind::kAllReduce, Algorithm::kRing, 65536, shape));
  EXPECT_GT(mid, std::min(lo, hi));
  EXPECT_LT(mid, std::max(lo, hi));
  // Only the all-reduce is calibrated.
  EXPECT_DOUBLE_EQ(tuner.predictUs(CollectiveKind::kBroadcast, Algorithm::kRing, 8, shape),
                   bare.predictUs(CollectiveKind::kBroadcast, Algorithm::kRing, 8, shape));
}

// Recursive doubling runs the probes up to 256 KiB only; it counts as measured, and
// beyond its last probe its correction is that probe's or, if worse, the worst of the
// algorithms measured there.
TEST(Calibration, DoublingStopsAt256KiBAndKeepsTheWorseCorrection) {
  CommShape shape = oneNode(4);
  Calibration c = invertedCalibration(shape);
  const int rd = static_cast<int>(Algorithm::kRecursiveDoubling);
  c.us[rd][0] = 20;
  c.us[rd][1] = 90;
  c.us[rd][2] = 500;
  ASSERT_EQ(Calibration::kProbeBytes[2], 256u * 1024);
  EXPECT_FALSE(Calibration::probed(Algorithm::kRecursiveDoubling, 3));
  EXPECT_TRUE(Calibration::probed(Algorithm::kRing, 3));
  EXPECT_TRUE(c.measured(Algorithm::kRecursiveDoubling));
  c.us[rd][1] = 0;
  EXPECT_FALSE(c.measured(Algorithm::kRecursiveDoubling));
  c.us[rd][1] = 90;
  Tuner bare(CostModel{}, AlgorithmOverrides{}, PipelineConfig{});
  Tuner tuner(CostModel{}, AlgorithmOverrides{}, PipelineConfig{}, c);
  auto predict = [&](const Tuner& t, Algorithm a, size_t bytes) {
    return t.predictUs(CollectiveKind::kAllReduce, a, bytes, shape);
  };
  const Algorithm kRd = Algorithm::kRecursiveDoubling;
  EXPECT_NEAR(predict(tuner, kRd, 8), 20, 1e-6);
  EXPECT_NEAR(predict(tuner, kRd, 256 * 1024), 500, 1e-6);
  const size_t big = 4 << 20;
  double own = 500 / predict(bare, kRd, 256 * 1024);
  double worst = std::max(2000 / predict(bare, Algorithm::kRing, 2 << 20),
                          1000 / predict(bare, Algorithm::kTree, 2 << 20));
  EXPECT_NEAR(predict(tuner, kRd, big), predict(bare, kRd, big) * std::max(own, worst), 1e-6);
  EXPECT_EQ(tuner.choose(CollectiveKind::kAllReduce, 8, shape).algorithm, kRd);
  EXPECT_NE(tuner.choose(CollectiveKind::kAllReduce, big, shape).algorithm, kRd);
}

// Seen at 2 ranks on one node: a latency measured high (a ping-pong that slept) makes
// recursive doubling look far faster than its model at 256 KiB; carried to 4 MiB alone,
// that ratio chose it over shared memory, which it trails 2x there.
TEST(Calibration, AHighLatencyDoesNotCarryDoublingPastItsProbes) {
  CommShape shape = oneNode(2);
  shape.sharedMemory = true;
  CostModel model;
  ASSERT_TRUE(parseCostModel("alpha_us=37.1,beta_gbps=6.19,gamma_gbps=24.5", &model).isOk());
  Calibration c;
  c.shape = shape;
  const double ring[] = {0, 16, 35, 261, 424}, rd[] = {0, 15, 57, 0, 0},
               shm[] = {0.5, 9, 34, 168, 335};
  for (int p = 0; p < Calibration::kProbes; ++p) {
    c.us[static_cast<int>(Algorithm::kRing)][p] = ring[p];
    c.us[static_cast<int>(Algorithm::kRecursiveDoubling)][p] = rd[p];
    c.us[static_cast<int>(Algorithm::kSharedMemory)][p] = shm[p];
  }
  const int ringIndex = static_cast<int>(Algorithm::kRing);
  const int rdIndex = static_cast<int>(Algorithm::kRecursiveDoubling);
  c.skipped = 1u << (ringIndex * Calibration::kProbes) | 1u << (rdIndex * Calibration::kProbes);
  ASSERT_TRUE(c.measured(Algorithm::kRecursiveDoubling));
  ASSERT_TRUE(c.measured(Algorithm::kSharedMemory));
  Tuner tuner(model, AlgorithmOverrides{}, PipelineConfig{}, c);
  for (size_t bytes : {size_t{1} << 20, size_t{4} << 20, size_t{16} << 20, size_t{64} << 20}) {
    EXPECT_EQ(tuner.choose(CollectiveKind::kAllReduce, bytes, shape).algorithm,
              Algorithm::kSharedMemory)
        << bytes;
  }
}

// Seen at 2 ranks on one node: a shared-memory flag round modelled at 1 us, where the
// all-reduce's 8 B probe measured 0.4, had the transport's ring chosen for all-gathers of
// 4 KiB that shared memory ran faster (1.2 against 1.5 us).
TEST(Calibration, TheFirstProbeSetsTheFlagRoundOfSymmetricCollectives) {
  CommShape shape = oneNode(2);
  shape.sharedMemory = true;
  CostModel model;
  ASSERT_TRUE(parseCostModel("alpha_us=0.6,beta_gbps=4.19,gamma_gbps=16", &model).isOk());
  auto calibrated = [&](double shmProbeUs) {
    Calibration c;
    c.shape = shape;
    const double ring[] = {1.6, 16, 35, 261, 424}, shm[] = {shmProbeUs, 9, 34, 168, 335};
    for (int p = 0; p < Calibration::kProbes; ++p) {
      c.us[static_cast<int>(Algorithm::kRing)][p] = ring[p];
      c.us[static_cast<int>(Algorithm::kSharedMemory)][p] = shm[p];
    }
    return c;
  };
  const Tuner bare(model, AlgorithmOverrides{}, PipelineConfig{});
  const Tuner fast(model, AlgorithmOverrides{}, PipelineConfig{}, calibrated(0.4));
  const Tuner slow(model, AlgorithmOverrides{}, PipelineConfig{}, calibrated(3.0));
  const size_t bytes = 4096;
  auto shmUs = [&](const Tuner& t, CollectiveKind kind) {
    return t.predictUs(kind, Algorithm::kSharedMemory, bytes, shape);
  };
  for (CollectiveKind kind : {CollectiveKind::kAllGather, CollectiveKind::kReduceScatter}) {
    EXPECT_NEAR(shmUs(bare, kind) - shmUs(fast, kind), 0.6, 1e-9) << "one round, 0.4 not 1 us";
    EXPECT_DOUBLE_EQ(shmUs(slow, kind), shmUs(bare, kind)) << "never above the model's 1 us";
  }
  EXPECT_EQ(bare.choose(CollectiveKind::kAllGather, bytes, shape).algorithm, Algorithm::kRing);
  EXPECT_EQ(fast.choose(CollectiveKind::kAllGather, bytes, shape).algorithm,
            Algorithm::kSharedMemory);
  // A rooted collective's transport root runs ahead: its model keeps the 1 us round.
  for (CollectiveKind kind : {CollectiveKind::kBroadcast, CollectiveKind::kReduce}) {
    EXPECT_DOUBLE_EQ(shmUs(fast, kind), shmUs(bare, kind));
  }
}

// At 2 ranks with single copy an all-gather reads the other's part as a ring's message
// would go through the kernel, without the ring's messages: whatever link the init
// measured, the shared memory wins from kShmSingleCopyPartBytes (and a reduce-scatter
// in its single-copy range). Before, a link measured
// at 6 GB/s and above sent 256 KiB all-gathers to the ring at twice the time.
TEST(Tuner, SingleCopyAllGatherBeatsTheRingWhateverTheLink) {
  CommShape shape = oneNode(2);
  shape.sharedMemory = true;
  shape.singleCopy = true;
  CommShape slots = shape;
  slots.singleCopy = false;
  for (const char* link : {"beta_gbps=2", "beta_gbps=6.07", "beta_gbps=30"}) {
    CostModel model;
    ASSERT_TRUE(parseCostModel(link, &model).isOk());
    const Tuner tuner(model, AlgorithmOverrides{}, PipelineConfig{});
    for (size_t part : {kShmSingleCopyPartBytes, size_t{128} << 10, size_t{8} << 20}) {
      const size_t bytes = 2 * part;
      EXPECT_EQ(tuner.choose(CollectiveKind::kAllGather, bytes, shape).algorithm,
                Algorithm::kSharedMemory)
          << link << ", " << bytes << " B";
      EXPECT_LT(tuner.modelUs(CollectiveKind::kAllGather, Algorithm::kSharedMemory, bytes, shape),
                tuner.modelUs(CollectiveKind::kAllGather, Algorithm::kSharedMemory, bytes, slots))
          << link << ", " << bytes << " B: the single copy costs less than the slots";
    }
    // A reduce-scatter reads its part of the other's input the same way, then reduces it.
    for (size_t part : {kShmSingleCopyReducePartBytes, kShmSingleCopyReduceMaxPartBytes}) {
      EXPECT_EQ(tuner.choose(CollectiveKind::kReduceScatter, 2 * part, shape).algorithm,
                Algorithm::kSharedMemory)
          << link << ", " << part << " B parts";
    }
  }
}

TEST(Calibration, OnlyMeasuredAlgorithmsCompete) {
  // Measured on one node; after a rebuild the members span two nodes, so hierarchical
  // becomes a candidate, but it was never measured and cannot be compared.
  Calibration c = invertedCalibration(oneNode(8));
  CostModel slow;
  ASSERT_TRUE(parseCostModel("inter_alpha_us=500,inter_gbps=0.01", &slow).isOk());
  Tuner tuner(slow, AlgorithmOverrides{}, PipelineConfig{}, c);
  CommShape twoNodes{8, 2, 4, true};
  for (size_t bytes : {size_t{8}, size_t{1} << 20, size_t{64} << 20}) {
    EXPECT_NE(tuner.choose(CollectiveKind::kAllReduce, bytes, twoNodes).algorithm,
              Algorithm::kHierarchical);
  }
  Tuner bare(slow, AlgorithmOverrides{}, PipelineConfig{});
  EXPECT_EQ(bare.choose(CollectiveKind::kAllReduce, 64 << 20, twoNodes).algorithm,
            Algorithm::kHierarchical);
}

// The plan: an algorithm modelled more than kHopeless times slower than the best at a
// probe is not run there; one skipped everywhere competes on its bare model, one
// skipped at some probes is corrected from the others; the plan travels with the rest.
TEST(Calibration, PlanSkipsWhatTheModelRulesOut) {
  const std::vector<Algorithm> candidates{Algorithm::kRing, Algorithm::kTree,
                                          Algorithm::kRecursiveDoubling};
  // Ring: hopeless at every probe; tree: hopeless at the first two only.
  auto modelled = [](Algorithm a, size_t bytes) {
    if (a == Algorithm::kRing) return 1e6;
    if (a == Algorithm::kTree) return bytes <= 64 * 1024 ? 100.0 * 11 : 50.0;
    return 100.0;
  };
  Calibration c;
  c.plan(candidates, modelled);
  for (int p = 0; p < Calibration::kProbes; ++p) {
    EXPECT_FALSE(c.planned(Algorithm::kRing, p)) << p;
    EXPECT_EQ(c.planned(Algorithm::kTree, p), p >= 2) << p;
    EXPECT_EQ(c.planned(Algorithm::kRecursiveDoubling, p),
              Calibration::probed(Algorithm::kRecursiveDoubling, p))
        << p;
  }
  EXPECT_TRUE(c.ruledOut(Algorithm::kRing));
  EXPECT_FALSE(c.ruledOut(Algorithm::kTree));
  EXPECT_FALSE(c.ruledOut(Algorithm::kHierarchical)) << "not a candidate: nothing was skipped";

  // Measured where planned: tree counts as measured with three probes.
  const int tree = static_cast<int>(Algorithm::kTree);
  const int rd = static_cast<int>(Algorithm::kRecursiveDoubling);
  EXPECT_FALSE(c.measured(Algorithm::kTree));
  for (int p = 2; p < Calibration::kProbes; ++p) c.us[tree][p] = 1000;
  for (int p = 0; p < 3; ++p) c.us[rd][p] = 10;
  EXPECT_TRUE(c.measured(Algorithm::kTree));
  EXPECT_FALSE(c.measured(Algorithm::kRing));

  CommShape shape = oneNode(4);
  c.shape = shape;
  Tuner bare(CostModel{}, AlgorithmOverrides{}, PipelineConfig{});
  Tuner tuner(CostModel{}, AlgorithmOverrides{}, PipelineConfig{}, c);
  auto predict = [&](const Tuner& t, Algorithm a, size_t bytes) {
    return t.predictUs(CollectiveKind::kAllReduce, a, bytes, shape);
  };
  // Below its first planned probe the tree takes the worse of its own nearest ratio
  // and the measured algorithms' there.
  const double atFirstPlanned = 1000 / predict(bare, Algorithm::kTree, 256 * 1024);
  const double rdAt8 = 10 / predict(bare, Algorithm::kRecursiveDoubling, 8);
  EXPECT_NEAR(predict(tuner, Algorithm::kTree, 8),
              predict(bare, Algorithm::kTree, 8) * std::max(atFirstPlanned, rdAt8), 1e-6);
  // A machine slow at small sizes (recursive doubling measured at 100x the tree's model
  // at 8 B): the tree, measured only from 256 KiB at 2x its model, must not win 8 B on
  // that small ratio.
  {
    Calibration slowSmall = c;
    for (int p = 2; p < Calibration::kProbes; ++p) {
      slowSmall.us[tree][p] = 2 * predict(bare, Algorithm::kTree, Calibration::kProbeBytes[p]);
    }
    for (int p = 0; p < 3; ++p) {
      slowSmall.us[rd][p] = 100 * predict(bare, Algorithm::kTree, Calibration::kProbeBytes[p]);
    }
    const Tuner slowTuner(CostModel{}, AlgorithmOverrides{}, PipelineConfig{}, slowSmall);
    EXPECT_NE(slowTuner.choose(CollectiveKind::kAllReduce, 8, shape).algorithm, Algorithm::kTree);
  }
  // The ring, ruled out everywhere, still competes, corrected as the worst measured
  // algorithm at each size (its bare model alone would beat measured times unfairly);
  // merely unmeasured (not ruled out), it does not compete.
  for (size_t bytes : {size_t{8}, size_t{100} << 10, size_t{1} << 30}) {
    const double worst =
        std::max(predict(tuner, Algorithm::kTree, bytes) / predict(bare, Algorithm::kTree, bytes),
                 predict(tuner, Algorithm::kRecursiveDoubling, bytes) /
                     predict(bare, Algorithm::kRecursiveDoubling, bytes));
    EXPECT_NEAR(predict(tuner, Algorithm::kRing, bytes) / predict(bare, Algorithm::kRing, bytes),
                worst, 1e-9 * worst)
        << bytes;
  }
  // Tree and doubling measured exactly as modelled: the ring is corrected by 1 and
  // wins where its model does (a large buffer).
  Calibration exact = c;
  for (int p = 0; p < Calibration::kProbes; ++p) {
    const size_t bytes = Calibration::kProbeBytes[p];
    if (exact.planned(Algorithm::kTree, p)) {
      exact.us[tree][p] = predict(bare, Algorithm::kTree, bytes);
    }
    if (exact.planned(Algorithm::kRecursiveDoubling, p)) {
      exact.us[rd][p] = predict(bare, Algorithm::kRecursiveDoubling, bytes);
    }
  }
  const Tuner exactTuner(CostModel{}, AlgorithmOverrides{}, PipelineConfig{}, exact);
  for (size_t bytes : {size_t{8}, size_t{1} << 20, size_t{1} << 30}) {
    Algorithm best = Algorithm::kRing;
    for (Algorithm a : candidates) {
      if (predict(bare, a, bytes) < predict(bare, best, bytes)) best = a;
    }
    EXPECT_EQ(exactTuner.choose(CollectiveKind::kAllReduce, bytes, shape).algorithm, best) << bytes;
    if (bytes == size_t{1} << 30) {
      ASSERT_EQ(best, Algorithm::kRing);
    }
  }
  Calibration slow = c;
  for (int p = 0; p < Calibration::kProbes; ++p) {
    if (slow.planned(Algorithm::kTree, p)) slow.us[tree][p] = 1e12;
  }
  // Unmeasured but not ruled out (a plan that skipped nothing), the ring does not
  // compete, however slow the measured ones.
  slow.skipped = 0;
  for (int p = 0; p < Calibration::kProbes; ++p) {
    if (Calibration::probed(Algorithm::kTree, p)) slow.us[tree][p] = 1e12;
    if (Calibration::probed(Algorithm::kRecursiveDoubling, p)) slow.us[rd][p] = 1e12;
  }
  EXPECT_NE(Tuner(CostModel{}, AlgorithmOverrides{}, PipelineConfig{}, slow)
                .choose(CollectiveKind::kAllReduce, 8, shape)
                .algorithm,
            Algorithm::kRing);

  Tuner back;
  ASSERT_TRUE(Tuner::fromVector(tuner.toVector(), PipelineConfig{}, &back).isOk());
  EXPECT_EQ(back.calibration().skipped, c.skipped);
  EXPECT_NE(describe(back.calibration()).find("tree -/-/1000/1000/1000 us"), std::string::npos)
      << describe(back.calibration());
  std::vector<double> v = tuner.toVector();
  const size_t at = v.size() - Calibration::kVectorSize + 8;
  for (double bad : {0.5, double(1u << 25), -1.0}) {
    v[at] = bad;
    EXPECT_FALSE(Tuner::fromVector(v, PipelineConfig{}, &back).isOk()) << bad;
  }
}

TEST(Calibration, SharedStateRoundTrips) {
  AlgorithmOverrides o;
  ASSERT_TRUE(parseAlgorithmOverrides("broadcast:ring", "x", &o).isOk());
  CostModel m;
  m.alphaUs = 3.5;
  Calibration c = invertedCalibration(CommShape{6, 3, 2, false, false, false, true});
  c.requested = true;
  Tuner tuner(m, o, PipelineConfig{}, c);
  Tuner back;
  ASSERT_TRUE(Tuner::fromVector(tuner.toVector(), PipelineConfig{}, &back).isOk());
  EXPECT_DOUBLE_EQ(back.model().alphaUs, 3.5);
  EXPECT_TRUE(back.overrides().forced[static_cast<int>(CollectiveKind::kBroadcast)]);
  EXPECT_FALSE(back.overrides().forced[static_cast<int>(CollectiveKind::kAllReduce)]);
  EXPECT_TRUE(back.calibration().requested);
  EXPECT_EQ(back.calibration().shape.nodes, 3);
  EXPECT_FALSE(back.calibration().shape.uniformNodes);
  EXPECT_TRUE(back.calibration().shape.nodesShareMemory) << "the model measured must be known";
  EXPECT_FALSE(back.calibration().shape.sharedMemory);
  EXPECT_TRUE(back.calibration().measured(Algorithm::kTree));
  EXPECT_FALSE(back.calibration().measured(Algorithm::kHierarchical));
  EXPECT_DOUBLE_EQ(back.calibration().us[static_cast<int>(Algorithm::kTree)][3], 300);
  std::vector<double> v = tuner.toVector();
  v.pop_back();
  EXPECT_FALSE(Tuner::fromVector(v, PipelineConfig{}, &back).isOk());
  v = tuner.toVector();
  v[5] = 7;  // an algorithm that does not exist
  EXPECT_FALSE(Tuner::fromVector(v, PipelineConfig{}, &back).isOk());
  EXPECT_NE(describe(c).find("tree 80/100/200/300/1000 us"), std::string::npos) << describe(c);
}

}  // namespace
}  // namespace ftccl
