// Broadcast of a small buffer down a binomial tree: ceil(log2 n) rounds where the chain
// (chain_broadcast.cc) pays n - 1 hops. For what the library itself sends to every rank
// at init and at each rebuild (rank 0's tuning): 100,000 ranks are 17 rounds, not
// 99,999 hops of a few microseconds each.
//
// Ranks are numbered from the root (v = (rank - root) mod n). v receives from v minus
// its lowest set bit, then sends to v + 2^k for each 2^k below that bit, the largest
// first (the largest subtree starts soonest). The whole buffer travels in one message:
// no pipelining, since the tree serves small buffers.
#include <cstring>
#include <memory>
#include <vector>

#include "algorithms/collective.h"
#include "reduce/reduce.h"

namespace ftccl {
namespace {

class RootCopy final : public Collective {  // the root's recvbuff gets the data too
 public:
  RootCopy(void* to, const void* from, size_t bytes) : to_(to), from_(from), bytes_(bytes) {}
  Status progress(bool* done) override {
    if (bytes_ && to_ != from_) std::memcpy(to_, from_, bytes_);
    *done = true;
    return Status::ok();
  }
  void abort() override {}
  std::vector<int> pendingPeers() const override { return {}; }
  uint64_t progressMark() const override { return 0; }

 private:
  void* to_;
  const void* from_;
  size_t bytes_;
};

}  // namespace

BinomialLinks binomialLinks(int rank, int n, int root) {
  BinomialLinks links;
  if (n <= 1) return links;
  const int v = ((rank - root) % n + n) % n;
  int mask = 1;
  while (mask < n && (v & mask) == 0) mask <<= 1;  // v's lowest set bit (n's bound for v 0)
  if (v != 0) links.parent = (v - mask + root) % n;
  for (int m = mask >> 1; m > 0; m >>= 1) {
    if (v + m < n) links.children.push_back((v + m + root) % n);
  }
  return links;
}

std::unique_ptr<Collective> makeBinomialBroadcast(Transport& transport,
                                                  const CollectiveArgs& args) {
  const size_t bytes = args.count * dataTypeSize(args.type);
  const BinomialLinks links = binomialLinks(transport.rank(), transport.size(), args.root);
  const MessageKey key = args.key(0);
  std::vector<std::unique_ptr<Collective>> steps;
  if (links.parent < 0) {
    steps.push_back(std::make_unique<RootCopy>(args.recvbuff, args.sendbuff, bytes));
  } else {
    steps.push_back(
        makePointToPoint(transport, {{false, links.parent, args.recvbuff, bytes, key}}));
  }
  if (!links.children.empty()) {
    std::vector<PointToPoint> sends;
    for (int child : links.children) sends.push_back({true, child, args.recvbuff, bytes, key});
    steps.push_back(makePointToPoint(transport, std::move(sends)));
  }
  return makeSequence(std::move(steps));
}

}  // namespace ftccl
