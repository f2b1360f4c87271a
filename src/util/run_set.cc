#include "util/run_set.h"

#include <algorithm>
#include <iterator>

namespace ftccl {
namespace {

uint64_t overlap(uint64_t a, uint64_t b, uint64_t first, uint64_t end) {
  const uint64_t lo = std::max(a, first), hi = std::min(b, end);
  return hi > lo ? hi - lo : 0;
}

}  // namespace

std::vector<RunSet::Run>::iterator RunSet::reaching(uint32_t x) {
  return std::lower_bound(runs_.begin(), runs_.end(), x,
                          [](const Run& run, uint32_t v) { return run.end < v; });
}

std::vector<RunSet::Run>::const_iterator RunSet::holding(uint32_t x) const {
  auto it = std::upper_bound(runs_.begin(), runs_.end(), x,
                             [](uint32_t v, const Run& run) { return v < run.first; });
  if (it == runs_.begin() || x >= std::prev(it)->end) return runs_.end();
  return std::prev(it);
}

// A range already inside a run (the news of a failure that every copy of a spread
// repeats) changes nothing; one that touches or overlaps runs merges them into the
// first. Insertion moves the runs above it, few in practice.
size_t RunSet::insert(uint32_t first, uint32_t n) {
  if (n == 0 || uint64_t{first} + n > kEnd) return 0;
  const uint32_t end = first + n;
  auto it = reaching(first);
  if (it == runs_.end() || it->first > end) {  // touches nothing: a run of its own
    runs_.insert(it, Run{first, end});
    count_ += n;
    return n;
  }
  if (it->first <= first && it->end >= end) return 0;  // inside one run already
  uint64_t covered = 0;
  uint32_t hi = end;
  auto last = it;
  for (; last != runs_.end() && last->first <= end; ++last) {
    covered += overlap(last->first, last->end, first, end);
    hi = std::max(hi, last->end);
  }
  it->first = std::min(it->first, first);
  it->end = hi;
  runs_.erase(std::next(it), last);
  const size_t added = static_cast<size_t>(n - covered);
  count_ += added;
  return added;
}

bool RunSet::covers(uint32_t first, uint32_t n) const {
  if (n == 0) return true;
  auto it = holding(first);
  return it != runs_.end() && uint64_t{it->end} >= uint64_t{first} + n;
}

// One merge of the two ascending lists: O(runs of both).
void RunSet::insertAll(const RunSet& other) {
  if (other.runs_.empty()) return;
  std::vector<Run> merged;
  merged.reserve(runs_.size() + other.runs_.size());
  size_t total = 0;
  auto add = [&](const Run& run) {
    if (!merged.empty() && merged.back().end >= run.first) {
      if (run.end > merged.back().end) {
        total += run.end - merged.back().end;
        merged.back().end = run.end;
      }
      return;
    }
    merged.push_back(run);
    total += run.end - run.first;
  };
  auto a = runs_.cbegin();
  auto b = other.runs_.cbegin();
  while (a != runs_.cend() || b != other.runs_.cend()) {
    if (b == other.runs_.cend() || (a != runs_.cend() && a->first <= b->first)) {
      add(*a++);
    } else {
      add(*b++);
    }
  }
  runs_.swap(merged);
  count_ = total;
}

bool RunSet::erase(int x) {
  if (x < 0) return false;
  const auto place = static_cast<uint32_t>(x);
  auto found = holding(place);
  if (found == runs_.end()) return false;
  auto it = runs_.begin() + (found - runs_.cbegin());
  const Run run = *it;
  if (run.first == place && run.end == place + 1) {
    runs_.erase(it);
  } else if (run.first == place) {
    it->first = place + 1;
  } else if (run.end == place + 1) {
    it->end = place;
  } else {
    it->end = place;
    runs_.insert(std::next(it), Run{place + 1, run.end});
  }
  --count_;
  return true;
}

bool RunSet::count(int x) const {
  return x >= 0 && holding(static_cast<uint32_t>(x)) != runs_.end();
}

bool RunSet::operator==(const RunSet& other) const {
  return runs_.size() == other.runs_.size() &&
         std::equal(
             runs_.begin(), runs_.end(), other.runs_.begin(),
             [](const Run& a, const Run& b) { return a.first == b.first && a.end == b.end; });
}

std::vector<uint32_t> RunSet::ranges() const {
  std::vector<uint32_t> out;
  out.reserve(runs_.size() * 2);
  for (const Run& run : runs_) {
    out.push_back(run.first);
    out.push_back(run.end - run.first);
  }
  return out;
}

}  // namespace ftccl
