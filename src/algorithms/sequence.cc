// A collective made of phases run one after another (e.g. reduce, then broadcast): each
// phase starts once the one before it has finished on this rank.
#include <memory>
#include <vector>

#include "algorithms/collective.h"

namespace ftccl {
namespace {

class Sequence final : public Collective {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Collective>> parts) : parts_(std::move(parts)) {}

  Status progress(bool* done) override {
    *done = false;
    while (current_ < parts_.size()) {
      bool partDone = false;
      FTCCL_CHECK(parts_[current_]->progress(&partDone));
      if (!partDone) return Status::ok();
      finishedMarks_ += parts_[current_]->progressMark() + 1;
      ++current_;
    }
    *done = true;
    return Status::ok();
  }
  void abort() override {
    if (current_ < parts_.size()) parts_[current_]->abort();
  }
  std::vector<int> pendingPeers() const override {
    return current_ < parts_.size() ? parts_[current_]->pendingPeers() : std::vector<int>{};
  }
  uint64_t progressMark() const override {
    return finishedMarks_ + (current_ < parts_.size() ? parts_[current_]->progressMark() : 0);
  }
  bool waitForPeers(int timeoutUs) override {
    return current_ < parts_.size() && parts_[current_]->waitForPeers(timeoutUs);
  }

 private:
  std::vector<std::unique_ptr<Collective>> parts_;
  size_t current_ = 0;
  uint64_t finishedMarks_ = 0;
};

}  // namespace

std::unique_ptr<Collective> makeSequence(std::vector<std::unique_ptr<Collective>> parts) {
  return std::make_unique<Sequence>(std::move(parts));
}

}  // namespace ftccl
