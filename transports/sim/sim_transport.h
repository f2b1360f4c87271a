// An in-process data network for algorithm tests: every rank's Transport lives in one
// SimFabric, and one thread drives all of them (no sleeps, no sockets).
//
// Semantics are as strict as UCX's rendezvous: a send completes only when a matching
// receive has taken its bytes, and the bytes are read from the sender's buffer at that
// moment, so an algorithm that reuses a buffer too early gets wrong results here.
// Matching is by (source, destination, key) in posting order; a receive shorter than
// its send is a truncation error. kill(r) makes every request to or from r fail, which
// is how algorithm tests check that a failed peer never leaves an op hanging.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <vector>

#include "transports/transport.h"

namespace ftccl {
namespace sim {

class SimFabric {
 public:
  explicit SimFabric(int nranks);
  ~SimFabric();

  int size() const { return static_cast<int>(ranks_.size()); }
  Transport& transport(int rank);
  // Every posted request that names `rank` fails; later posts to it fail at once.
  void kill(int rank);
  // Matches posted sends with receives; true if any request completed.
  bool progress();
  // Requests not yet completed (a leak or a hang shows here after an op ends).
  size_t pending() const { return sends_.size() + recvs_.size(); }
  uint64_t bytesMoved() const { return bytesMoved_; }

  struct Request;

 private:
  friend class SimTransport;
  Status post(Request* request);
  void release(Request* request);

  std::vector<std::unique_ptr<Transport>> ranks_;
  std::vector<bool> dead_;
  std::list<Request*> sends_, recvs_;  // posting order, not yet matched
  uint64_t bytesMoved_ = 0;
};

}  // namespace sim
}  // namespace ftccl
