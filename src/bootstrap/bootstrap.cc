// Bootstrap entry points: the unique id (FTCCL_COMM_ID or a fresh root in this process),
// the bootstrap timeout, and the registry of the root services and table relays this
// process runs, which stops and joins them at exit. The root service is in root_service.h, the
// rank's side of the rendezvous in rendezvous.cc.
#include "bootstrap/bootstrap.h"

#include <unistd.h>

#include <memory>
#include <mutex>
#include <new>

#include "bootstrap/relay.h"
#include "bootstrap/root_service.h"
#include "bootstrap/wire.h"
#include "util/crypto.h"
#include "util/env.h"
#include "util/log.h"
#include "util/net/socket.h"

namespace ftccl {
namespace bootstrap {
namespace {

constexpr int kDefaultTimeoutMs = 120000;

using crypto::randomBytes;
using net::chooseListenAddress;
using net::Fd;
using net::listenOn;
using net::SockAddr;

// ---------------------------------------------------------------------------------
// Registry of the roots this process runs
// ---------------------------------------------------------------------------------

// Roots and relays alike: a thread each, stopped and joined at exit. A service inherited
// through fork() has no thread in the child (its std::thread names a thread of the
// parent): its descriptors are dropped, and it is never destroyed nor joined there.
template <typename Service>
void leak(std::unique_ptr<Service>& s) {
  (void)s.release();
}
template <typename Service>
void leak(std::shared_ptr<Service>& s) {
  (void)new std::shared_ptr<Service>(std::move(s));
}

// Finished ones are joined and dropped; one inherited through fork() is dropped unjoined.
template <typename Pointer>
void reap(std::vector<Pointer>& services) {
  const pid_t self = getpid();
  for (auto it = services.begin(); it != services.end();) {
    if ((*it)->creatorPid() != self) {
      (*it)->abandonAfterFork();
      leak(*it);
      it = services.erase(it);
    } else if ((*it)->finished()) {
      (*it)->join();
      it = services.erase(it);
    } else {
      ++it;
    }
  }
}

template <typename Pointer>
void stopAndJoin(std::vector<Pointer>& taken) {
  const pid_t self = getpid();
  for (auto& s : taken) {
    if (s->creatorPid() != self) {
      s->abandonAfterFork();
      leak(s);
      continue;
    }
    s->requestStop();
  }
  for (auto& s : taken) {
    if (s) s->join();
  }
}

struct Registry {
  std::mutex mu;
  std::vector<std::unique_ptr<RootService>> roots;
  std::vector<std::shared_ptr<RelayService>> relays;  // rendezvous() holds one too

  ~Registry() {
    try {
      stopAll();
    } catch (...) {
    }
  }

  void reapLocked() {
    reap(roots);
    reap(relays);
  }

  void stopAll() {
    std::vector<std::unique_ptr<RootService>> takenRoots;
    std::vector<std::shared_ptr<RelayService>> takenRelays;
    {
      std::lock_guard<std::mutex> lock(mu);
      takenRoots.swap(roots);
      takenRelays.swap(relays);
    }
    stopAndJoin(takenRoots);
    stopAndJoin(takenRelays);
  }
};

Registry& registry() {
  static Registry r;  // destroyed at exit: stops and joins every root thread
  return r;
}

}  // namespace

Status startRoot(Fd listenFd, const SockAddr& addr, const UniqueIdContents& contents, int timeoutMs,
                 std::string origin) {
  int fanout = 0;
  FTCCL_CHECK(relayFanout(&fanout));
  auto root = std::make_unique<RootService>(std::move(listenFd), addr, contents, timeoutMs, fanout,
                                            std::move(origin));
  Registry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mu);
  reg.reapLocked();
  reg.roots.reserve(reg.roots.size() + 1);  // so that push_back below cannot throw
  FTCCL_CHECK(root->start());
  reg.roots.push_back(std::move(root));
  return Status::ok();
}

Status startRelay(std::shared_ptr<RelayService> relay) {
  Registry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mu);
  reg.reapLocked();
  reg.relays.reserve(reg.relays.size() + 1);  // so that push_back below cannot throw
  FTCCL_CHECK(relay->start());
  reg.relays.push_back(std::move(relay));  // cannot throw: reserved
  return Status::ok();
}

}  // namespace bootstrap

// ---------------------------------------------------------------------------------
// Public (internal API) entry points
// ---------------------------------------------------------------------------------

Status bootstrapTimeoutMs(int* timeoutMs) {
  if (timeoutMs == nullptr) return invalidArgument("bootstrapTimeoutMs: NULL");
  try {
    int64_t value = bootstrap::kDefaultTimeoutMs;
    FTCCL_CHECK(envInt("FTCCL_BOOTSTRAP_TIMEOUT_MS", 1, bootstrap::kMaxTimeoutMs, &value));
    *timeoutMs = static_cast<int>(value);
    return Status::ok();
  } catch (const std::exception&) {
    return systemError("out of memory while reading FTCCL_BOOTSTRAP_TIMEOUT_MS");
  }
}

Status createUniqueId(ftcclUniqueId* id) {
  using namespace bootstrap;
  if (id == nullptr) return invalidArgument("ftcclGetUniqueId: uniqueId is NULL");
  try {
    std::string commId = envString("FTCCL_COMM_ID");
    if (!commId.empty()) {
      UniqueIdContents contents;
      bool insecure = false;
      FTCCL_CHECK(commIdContents(commId, envString("FTCCL_COMM_SECRET"), &contents, &insecure));
      if (insecure) {
        FTCCL_LOG(Warn, Bootstrap,
                  "FTCCL_COMM_SECRET={}: any process that reaches {} can join the "
                  "rendezvous (set it to the same 32 hex digits on every rank)",
                  kInsecureSecret, commId);
      }
      encodeUniqueId(contents, id);
      return Status::ok();
    }
    return createListeningId(id);
  } catch (const std::bad_alloc&) {
    return systemError("out of memory while creating the unique id");
  } catch (const std::exception& e) {
    return internalError(std::string("createUniqueId: ") + e.what());
  }
}

Status createListeningId(ftcclUniqueId* id) {
  using namespace bootstrap;
  try {
    int timeoutMs = 0;
    FTCCL_CHECK(bootstrapTimeoutMs(&timeoutMs));
    SockAddr addr;
    std::string iface;
    FTCCL_CHECK(chooseListenAddress(&addr, &iface));
    Fd listenFd;
    SockAddr bound;
    FTCCL_CHECK(listenOn(addr, /*reuseAddr=*/false, &listenFd, &bound));
    UniqueIdContents contents;
    contents.rootHost = bound.host();
    contents.rootPort = bound.port();
    FTCCL_CHECK(randomBytes(contents.secret, sizeof(contents.secret)));
    FTCCL_CHECK(randomBytes(&contents.nonce, sizeof(contents.nonce)));
    FTCCL_CHECK(startRoot(std::move(listenFd), bound, contents, timeoutMs, "interface " + iface));
    encodeUniqueId(contents, id);
    return Status::ok();
  } catch (const std::bad_alloc&) {
    return systemError("out of memory while creating the unique id");
  } catch (const std::exception& e) {
    return internalError(std::string("createUniqueId: ") + e.what());
  }
}

void stopAllRoots() {
  try {
    bootstrap::registry().stopAll();
  } catch (...) {
  }
}

}  // namespace ftccl
