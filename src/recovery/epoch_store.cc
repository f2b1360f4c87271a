#include "recovery/epoch_store.h"

namespace ftccl {

template <typename T>
std::shared_ptr<const T> EpochStore::Cache<T>::get(const std::shared_ptr<const Membership>& from,
                                                   const std::string& derivation,
                                                   const std::function<T()>& make) {
  const std::pair<const Membership*, std::string> key(from.get(), derivation);
  auto it = entries.find(key);
  if (it != entries.end()) {
    if (auto alive = it->second.object.lock()) return alive;
  }
  for (auto i = entries.begin(); i != entries.end();) {
    i = i->second.object.expired() ? entries.erase(i) : std::next(i);
  }
  auto made = std::make_shared<const T>(make());
  entries[key] = Entry{from, made};
  return made;
}

std::shared_ptr<const EpochStore::Places> EpochStore::memberPlaces(
    const std::shared_ptr<const Membership>& epoch) {
  std::lock_guard<std::mutex> lock(mutex_);
  return places_.get(epoch, "", [&epoch] {
    Places places;
    places.reserve(epoch->ranks.size() + epoch->spares.size());
    for (const auto* list : {&epoch->ranks, &epoch->spares}) {
      for (const Member& m : *list) places.emplace(m, static_cast<int>(places.size()));
    }
    return places;
  });
}

std::shared_ptr<const AgreementCommit> EpochStore::commit(
    const std::shared_ptr<const Membership>& epoch, const std::string& decision,
    const std::function<AgreementCommit()>& make) {
  std::lock_guard<std::mutex> lock(mutex_);
  return commits_.get(epoch, decision, make);
}

}  // namespace ftccl
