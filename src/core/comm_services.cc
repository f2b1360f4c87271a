#include "core/comm_services.h"

#include "transports/ucx/ucx_transport.h"

namespace ftccl {
namespace {

thread_local const CommServices* scoped = nullptr;

Status makeUcxTransport(const std::string& netDevice, std::unique_ptr<WorldTransport>* out) {
  UcxOptions options;
  FTCCL_CHECK(ucxOptionsFromEnv(&options));
  options.netDevice = netDevice;
  std::unique_ptr<UcxTransport> transport;
  FTCCL_CHECK(UcxTransport::create(options, &transport));
  *out = std::move(transport);
  return Status::ok();
}

}  // namespace

CommServices defaultCommServices() {
  return CommServices{makeUcxTransport, [](const std::string& rootHost, uint16_t rootPort,
                                           std::shared_ptr<HealthService>* out) {
                        return HealthService::acquire(out, rootHost, rootPort);
                      }};
}

const CommServices& currentCommServices() {
  static const CommServices defaults = defaultCommServices();
  return scoped ? *scoped : defaults;
}

ScopedCommServices::ScopedCommServices(CommServices services)
    : services_(std::move(services)), previous_(scoped) {
  scoped = &services_;
}

ScopedCommServices::~ScopedCommServices() { scoped = previous_; }

}  // namespace ftccl
