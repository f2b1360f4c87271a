#include "util/run_set.h"

#include <algorithm>
#include <iterator>

namespace ftccl {

size_t RunSet::insert(uint32_t first, uint32_t n) {
  if (n == 0 || uint64_t{first} + n > kEnd) return 0;
  uint64_t lo = first, hi = uint64_t{first} + n;
  // The runs that overlap [lo, hi) or touch it merge with it into one.
  auto it = runs_.upper_bound(first);
  if (it != runs_.begin() && std::prev(it)->second >= lo) --it;
  uint64_t covered = 0;
  while (it != runs_.end() && it->first <= hi) {
    const uint64_t a = std::max<uint64_t>(it->first, first);
    const uint64_t b = std::min<uint64_t>(it->second, uint64_t{first} + n);
    if (b > a) covered += b - a;
    lo = std::min<uint64_t>(lo, it->first);
    hi = std::max<uint64_t>(hi, it->second);
    it = runs_.erase(it);
  }
  runs_.emplace(static_cast<uint32_t>(lo), static_cast<uint32_t>(hi));
  const size_t added = static_cast<size_t>(n - covered);
  count_ += added;
  return added;
}

void RunSet::insertAll(const RunSet& other) {
  for (const auto& [first, end] : other.runs_) insert(first, end - first);
}

bool RunSet::erase(int x) {
  if (!count(x)) return false;
  const auto place = static_cast<uint32_t>(x);
  auto it = std::prev(runs_.upper_bound(place));
  const uint32_t first = it->first, end = it->second;
  runs_.erase(it);
  if (first < place) runs_.emplace(first, place);
  if (place + 1 < end) runs_.emplace(place + 1, end);
  --count_;
  return true;
}

bool RunSet::count(int x) const {
  if (x < 0) return false;
  auto it = runs_.upper_bound(static_cast<uint32_t>(x));
  return it != runs_.begin() && static_cast<uint32_t>(x) < std::prev(it)->second;
}

std::vector<uint32_t> RunSet::ranges() const {
  std::vector<uint32_t> out;
  out.reserve(runs_.size() * 2);
  for (const auto& [first, end] : runs_) {
    out.push_back(first);
    out.push_back(end - first);
  }
  return out;
}

}  // namespace ftccl
