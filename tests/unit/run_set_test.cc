// RunSet (util/run_set.h) against std::set<int>: random inserts of single elements and
// ranges, erases and lookups, checked element by element and as runs.
#include "util/run_set.h"

#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace ftccl {
namespace {

void expectSame(const RunSet& runs, const std::set<int>& model) {
  ASSERT_EQ(runs.size(), model.size());
  ASSERT_EQ(runs.empty(), model.empty());
  std::vector<int> listed;
  runs.forEach([&](int x) { listed.push_back(x); });
  ASSERT_EQ(listed, std::vector<int>(model.begin(), model.end()));
  // Ranges: ascending, apart (never touching), and covering the model exactly.
  std::vector<uint32_t> ranges = runs.ranges();
  ASSERT_EQ(ranges.size(), runs.runCount() * 2);
  size_t covered = 0;
  for (size_t i = 0; i < ranges.size(); i += 2) {
    ASSERT_GT(ranges[i + 1], 0u);
    if (i > 0) {
      ASSERT_GT(ranges[i], ranges[i - 2] + ranges[i - 1]) << "runs touch";
    }
    covered += ranges[i + 1];
  }
  ASSERT_EQ(covered, model.size());
}

TEST(RunSet, MatchesASetUnderRandomInsertsAndErases) {
  std::mt19937 rng(27);
  for (int round = 0; round < 200; ++round) {
    RunSet runs;
    std::set<int> model;
    const int span = 1 + static_cast<int>(rng() % 300);
    for (int op = 0; op < 400; ++op) {
      const int x = static_cast<int>(rng() % static_cast<unsigned>(span));
      switch (rng() % 5) {
        case 0:
          ASSERT_EQ(runs.insert(x), model.insert(x).second);
          break;
        case 1: {
          const uint32_t n = rng() % 40;
          size_t added = 0;
          for (uint32_t i = 0; i < n; ++i) added += model.insert(x + static_cast<int>(i)).second;
          ASSERT_EQ(runs.insert(static_cast<uint32_t>(x), n), added);
          break;
        }
        case 2:
          ASSERT_EQ(runs.erase(x), model.erase(x) == 1);
          break;
        case 3: {  // a whole set merged in
          RunSet other;
          for (int k = static_cast<int>(rng() % 6); k > 0; --k) {
            const uint32_t at = rng() % static_cast<unsigned>(span), n = rng() % 12;
            other.insert(at, n);
            for (uint32_t i = 0; i < n; ++i) model.insert(static_cast<int>(at + i));
          }
          runs.insertAll(other);
          break;
        }
        default: {
          ASSERT_EQ(runs.count(x), model.count(x) == 1);
          const uint32_t n = rng() % 8;
          bool all = true;
          for (uint32_t i = 0; i < n; ++i) all = all && model.count(x + static_cast<int>(i));
          ASSERT_EQ(runs.covers(static_cast<uint32_t>(x), n), all) << x << " +" << n;
        }
      }
      ASSERT_NO_FATAL_FAILURE(expectSame(runs, model));
    }
    RunSet copy;
    copy.insertAll(runs);
    EXPECT_TRUE(copy == runs);
  }
}

TEST(RunSet, NegativeIsNoElementAndARackIsOneRun) {
  RunSet runs;
  EXPECT_FALSE(runs.insert(-1));
  EXPECT_FALSE(runs.count(-1));
  EXPECT_FALSE(runs.erase(-1));
  EXPECT_TRUE(runs.empty());
  for (int x = 1000; x < 1256; ++x) runs.insert(x);  // a rack, one by one
  EXPECT_EQ(runs.size(), 256u);
  EXPECT_EQ(runs.runCount(), 1u);
  EXPECT_TRUE(runs.erase(1100));  // split in two
  EXPECT_EQ(runs.runCount(), 2u);
  EXPECT_FALSE(runs.count(1100));
  EXPECT_TRUE(runs.count(1099));
  EXPECT_TRUE(runs.count(1101));
  EXPECT_EQ(runs.insert(1100, 1), 1u);  // joined again
  EXPECT_EQ(runs.runCount(), 1u);
  runs.clear();
  EXPECT_TRUE(runs.empty());
  EXPECT_EQ(runs.runCount(), 0u);
}

// Every element fits an int: ranges past 2^31 are refused whole, never wrapped.
TEST(RunSet, RefusesRangesPastTheIntRange) {
  RunSet runs;
  EXPECT_EQ(runs.insert(0xFFFFFFFFu, 2), 0u);
  EXPECT_EQ(runs.insert(0x7FFFFFFFu, 2), 0u);
  EXPECT_EQ(runs.insert(0x80000000u, 1), 0u);
  EXPECT_TRUE(runs.empty());
  EXPECT_EQ(runs.insert(0x7FFFFFFEu, 2), 2u);  // the last two that fit
  EXPECT_TRUE(runs.count(0x7FFFFFFF));
  std::vector<int> listed;
  runs.forEach([&](int x) { listed.push_back(x); });
  EXPECT_EQ(listed, (std::vector<int>{0x7FFFFFFE, 0x7FFFFFFF}));
}

}  // namespace
}  // namespace ftccl
