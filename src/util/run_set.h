// A set of small non-negative integers (places, ranks) kept as disjoint runs: a rack or
// a subtree that fails together is one run, so what a process remembers of N failures
// costs O(runs), not O(N) nodes (issue 27: 100,000 simulated processes each kept a copy
// of every failure of a rack, 265 bytes apiece, 12 GiB in all). The runs sit in one
// sorted array, 8 bytes each: failures learnt one by one in random order (a rack whose
// coordinator died with it) leave a hundred runs per process for a while, and as map
// nodes (48 bytes, an allocation each) those were a third of a 100,000-rank run's memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ftccl {

class RunSet {
 public:
  void clear() { runs_.clear(), count_ = 0; }
  // Elements are below kEnd (2^31: each fits an int): a range reaching past it is refused.
  static constexpr uint64_t kEnd = uint64_t{1} << 31;
  // Adds [first, first + n); returns how many were new (0 for a refused range).
  size_t insert(uint32_t first, uint32_t n);
  // Adds one (a negative one is not added: "no place"); whether it was new.
  bool insert(int x) { return x >= 0 && insert(static_cast<uint32_t>(x), 1) > 0; }
  void insertAll(const RunSet& other);
  // Whether it was there.
  bool erase(int x);
  bool count(int x) const;
  // Whether every element of [first, first + n) is in the set.
  bool covers(uint32_t first, uint32_t n) const;
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  size_t runCount() const { return runs_.size(); }
  // Ascending ranges (first, count, ...), as AgreementVotes carries them.
  std::vector<uint32_t> ranges() const;
  // Every element, ascending.
  template <typename F>
  void forEach(F&& f) const {
    for (const Run& run : runs_) {
      for (uint32_t x = run.first; x < run.end; ++x) f(static_cast<int>(x));
    }
  }
  // Every run, ascending: f(first, end), end exclusive.
  template <typename F>
  void forEachRun(F&& f) const {
    for (const Run& run : runs_) f(run.first, run.end);
  }
  bool operator==(const RunSet& other) const;
  bool operator!=(const RunSet& other) const { return !(*this == other); }

 private:
  struct Run {
    uint32_t first, end;  // end exclusive
  };
  // The first run that ends at or after x (so that it contains x, touches it from
  // below, or lies above it).
  std::vector<Run>::iterator reaching(uint32_t x);
  // The run holding x, or end().
  std::vector<Run>::const_iterator holding(uint32_t x) const;

  std::vector<Run> runs_;  // apart (never touching), ascending
  size_t count_ = 0;
};

}  // namespace ftccl
