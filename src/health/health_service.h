// The health service: the health protocol (health_protocol.h) driven by one thread per
// process over TCP, shared by all the process's communicators.
//
// For every monitored process it keeps one small TCP connection open: the kernel
// closes it when the peer process dies, so a crash is seen in about a millisecond
// whatever the load; it also carries the ordered notices (FAILED, LEAVE, agreement).
// Heartbeats and acks are UDP datagrams on the same address and port number, sent and
// read in one batch per tick; their silence catches a hang or a lost link. All of it
// is separate from the data path (UCX), so a busy transfer never delays a heartbeat,
// and the thread keeps probing while the application computes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "health/health_protocol.h"
#include "util/status.h"

namespace ftccl {

class HealthService {
 public:
  // The process's service, started on first use; stopped when its last user lets go.
  // Without FTCCL_SOCKET_IFNAME it listens where this host reaches the first user's
  // bootstrap root (rootHost, numeric; empty: the first non-loopback interface).
  static Status acquire(std::shared_ptr<HealthService>* out, const std::string& rootHost = "",
                        uint16_t rootPort = 0);
  // A service of its own, shared with nobody: a test that runs each rank of a job as a
  // thread of one process gives each its own, as each process has one in production.
  static Status create(std::shared_ptr<HealthService>* out, const std::string& rootHost = "",
                       uint16_t rootPort = 0);
  ~HealthService();

  const ProcessKey& selfKey() const { return selfKey_; }

  using RegistrationId = HealthProtocol::RegistrationId;
  RegistrationId add(HealthRegistration registration);
  // With `orderly`, tells the members this rank leaves (their detectors then never
  // take this process's exit for a failure) and waits briefly for that to be sent.
  // After remove() returns the listener is never called again. `flushWaitMs` bounds
  // the wait (short after a failure: a stopped peer never reads).
  void remove(RegistrationId id, bool orderly, int flushWaitMs = 500);
  // Join ids (ftcclCommGetJoinId): a newcomer presenting `secret` may join the pool.
  void allowJoin(RegistrationId id, std::vector<uint8_t> secret);
  // Hang diagnosis: asks every member for its progress (answers arrive within a round
  // trip, to progressOf); what is known of each member's progress now.
  void requestProgress(RegistrationId id);
  std::vector<MemberProgress> progressOf(RegistrationId id);
  std::vector<PeerHealth> peerHealth(RegistrationId id);
  HealthProtocol::AgreementView agreementView(RegistrationId id);
  // A newcomer's JOIN to the member that handed out its join id.
  void sendRecovery(const ProcessKey& to, uint64_t commKey, const RecoveryMessage& message);
  // Fault injection from outside (in-process tests): the service dies as its process
  // would, its connections closed by the kernel and nothing sent or heard any more.
  void injectCrash();

 private:
  HealthService() = default;
  Status start(const std::string& rootHost, uint16_t rootPort);
  void run();
  class Driver;
  std::unique_ptr<Driver> driver_;
  ProcessKey selfKey_;
  std::thread thread_;
};

}  // namespace ftccl
