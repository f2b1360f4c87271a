// What the agreements of many processes derive alike from one epoch's membership: each
// member's place among its voters (ranks, then spares: O(1) lookups, and the relay
// tree's positions) and the commit each decision makes. Derived once
// and shared by every agreement that asks with the same epoch object, so a simulation's
// 100,000 virtual processes hold one copy (DESIGN: one immutable membership per epoch).
// Owned by whoever runs the agreements (a health protocol: a handful of entries; the
// simulator: one store for all its processes) and handed to each; no process-wide cache.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "recovery/agreement_messages.h"

namespace ftccl {

class EpochStore {
 public:
  using Places = std::unordered_map<Member, int>;
  std::shared_ptr<const Places> memberPlaces(const std::shared_ptr<const Membership>& epoch);
  // The commit that `decision` (a key naming it whole) makes from `epoch`.
  std::shared_ptr<const AgreementCommit> commit(const std::shared_ptr<const Membership>& epoch,
                                                const std::string& decision,
                                                const std::function<AgreementCommit()>& make);

 private:
  // Keys are the epoch object's address and the derivation; each entry holds that object,
  // so the address cannot be reused while the entry exists. Derived objects are held weakly;
  // entries whose object is gone are dropped when the next one is made.
  template <typename T>
  struct Cache {
    struct Entry {
      std::shared_ptr<const Membership> from;
      std::weak_ptr<const T> object;
    };
    std::map<std::pair<const Membership*, std::string>, Entry> entries;
    std::shared_ptr<const T> get(const std::shared_ptr<const Membership>& from,
                                 const std::string& derivation, const std::function<T()>& make);
  };
  std::mutex mutex_;
  Cache<Places> places_;
  Cache<AgreementCommit> commits_;
};

}  // namespace ftccl
