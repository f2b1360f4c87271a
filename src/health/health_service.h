// The health service: one probing thread per process, shared by all its communicators.
//
// Each communicator registers its members and the ones this rank monitors (its ring
// neighbours). For every monitored process the service keeps one small TCP
// connection open and sends a heartbeat on it every probe interval; the peer answers
// each with an ack. The kernel closes the connection when the peer process dies, so a
// crash is seen in about a millisecond whatever the load; a hang or a lost link shows
// as silence and is suspected after failureTimeout. On a suspicion the service tells
// every registered communicator that contains the process (the listener revokes it)
// and sends FAILED to all other members of those communicators, so every survivor
// learns within one message latency, not only the neighbours.
//
// The channel is separate from the data path (UCX), so a busy transfer never delays a
// heartbeat; a dedicated thread keeps probing while the application computes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "health/failure_detector.h"
#include "util/status.h"

namespace ftccl {

struct MemberInfo {
  int rank = -1;
  std::string host;
  int pid = 0;
  ProcessKey key;  // the member's health listener address
};

struct FailureReport {
  int rank = -1;
  std::string host;
  int pid = 0;
  DetectionCause cause = DetectionCause::kSilence;
  double afterMs = 0;   // from last sign of life to the detection
  int detectedBy = -1;  // the rank whose health thread detected it
  bool direct = false;  // detected here (true) or learnt from a FAILED notice
};

// Implemented by the communicator. Called on the health thread; must not call back
// into the HealthService.
class HealthListener {
 public:
  virtual ~HealthListener() = default;
  virtual void onMemberFailed(const FailureReport& report) = 0;
};

struct HealthRegistration {
  uint64_t commKey = 0;
  uint32_t epoch = 0;
  int myRank = -1;
  std::vector<MemberInfo> members;  // index = rank
  std::vector<int> monitored;       // ranks this rank probes
  HealthListener* listener = nullptr;
  int probeIntervalMs = 10;
  int failureTimeoutMs = 1000;
};

class HealthService {
 public:
  // The process's service, started on first use; stopped when its last user lets go.
  static Status acquire(std::shared_ptr<HealthService>* out);
  ~HealthService();

  const ProcessKey& selfKey() const { return selfKey_; }

  using RegistrationId = uint64_t;
  RegistrationId add(HealthRegistration registration);
  // With `orderly`, tells the members this rank leaves (their detectors then never
  // take this process's exit for a failure) and waits briefly for that to be sent.
  // After remove() returns the listener is never called again.
  void remove(RegistrationId id, bool orderly);

  // Round-trip time statistics of one monitored peer (ms); false when unknown.
  bool roundTrip(const ProcessKey& peer, double* lastMs, double* maxMs) const;

 private:
  HealthService() = default;
  Status start();
  void run();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  ProcessKey selfKey_;
  std::thread thread_;
};

}  // namespace ftccl
