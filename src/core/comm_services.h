// What a communicator is built on: a data transport per worker, and a health service.
// Production: UCX workers and the process's health service (one per process, shared by
// all its communicators). A test that runs whole communicators in one process, a thread
// per rank, gives each rank thread its own (transports/sim/sim_world.h, and a health
// service of its own), so that every layer above runs as it does in production.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "health/health_service.h"
#include "transports/world_transport.h"
#include "util/status.h"

namespace ftccl {

struct CommServices {
  // A fresh worker; `netDevice` is the only network device it may use (empty: any).
  std::function<Status(const std::string& netDevice, std::unique_ptr<WorldTransport>* out)>
      makeTransport;
  // The health service this process's communicators share, listening where this host
  // reaches the bootstrap root.
  std::function<Status(const std::string& rootHost, uint16_t rootPort,
                       std::shared_ptr<HealthService>* out)>
      acquireHealth;
};

// UCX and the process's health service.
CommServices defaultCommServices();
// This thread's services: those of the innermost ScopedCommServices, else the defaults.
const CommServices& currentCommServices();

// Communicators created by this thread while it lives (their CommSplit children too,
// created by the same thread) are built on `services`.
class ScopedCommServices {
 public:
  explicit ScopedCommServices(CommServices services);
  ~ScopedCommServices();
  ScopedCommServices(const ScopedCommServices&) = delete;
  ScopedCommServices& operator=(const ScopedCommServices&) = delete;

 private:
  CommServices services_;
  const CommServices* previous_;
};

}  // namespace ftccl
