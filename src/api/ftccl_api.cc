// The C entry points. Each validates its arguments, translates to C++ and runs inside
// one guard that turns any exception into a result and records the error message
// (per communicator and per thread) with a log line. Nothing throws out of here.
#include <cstdint>
#include <new>
#include <string>

#include "bootstrap/bootstrap.h"
#include "core/communicator.h"
#include "core/stream.h"
#include "ftccl.h"
#include "reduce/reduce.h"
#include "util/log.h"

struct ftcclStream {
  ftccl::Stream impl;
};

namespace ftccl {
namespace {

thread_local std::string tlsLastError;
thread_local std::string tlsReturnedError;  // storage for the pointer GetLastError returns

Communicator* impl(ftcclComm_t comm) { return reinterpret_cast<Communicator*>(comm); }
ftcclComm_t handle(Communicator* comm) { return reinterpret_cast<ftcclComm_t>(comm); }

void record(const char* call, Communicator* comm, const Status& status) {
  std::string message = std::string(call) + ": " + status.message();
  tlsLastError = message;
  if (comm) comm->setLastError(message);
  if (status.code() == ftcclInvalidArgument || status.code() == ftcclInvalidUsage) {
    FTCCL_LOG(Warn, Api, "{} ({})", message, ftcclGetErrorString(status.code()));
  } else if (status.code() == ftcclRemoteError) {
    // The failure itself was logged once by the health thread; this is its echo.
    FTCCL_LOG(Info, Api, "{} ({})", message, ftcclGetErrorString(status.code()));
  } else if (status.code() != ftcclInProgress) {
    FTCCL_LOG(Error, Api, "{} ({})", message, ftcclGetErrorString(status.code()));
  }
}

// Keeps the communicator alive (against a concurrent abort) for the call's duration.
class CommUse {
 public:
  explicit CommUse(Communicator* comm) : comm_(comm) {
    if (comm_) comm_->enter();
  }
  ~CommUse() {
    if (comm_) comm_->leave();
  }

 private:
  Communicator* comm_;
};

template <typename Body>
ftcclResult_t guarded(const char* call, Communicator* comm, Body&& body) {
  Status status;
  try {
    status = body();
  } catch (const std::bad_alloc&) {
    status = systemError("out of memory");
  } catch (const std::exception& e) {
    status = internalError(std::string("unexpected exception: ") + e.what());
  } catch (...) {
    status = internalError("unexpected exception");
  }
  if (!status.isOk()) record(call, comm, status);
  return status.code();
}

Status checkComm(ftcclComm_t comm) {
  return comm ? Status::ok() : invalidArgument("comm is NULL");
}

Status checkBuffers(const void* sendbuff, const void* recvbuff, size_t count,
                    ftcclDataType_t type, bool needSend) {
  if (!isValidDataType(type)) {
    return invalidArgument("datatype " + std::to_string(static_cast<int>(type)) + " is invalid");
  }
  if (count > SIZE_MAX / dataTypeSize(type)) {
    return invalidArgument("count " + std::to_string(count) + " of " + dataTypeName(type) +
                           " overflows the address space");
  }
  if (count == 0) return Status::ok();
  if (needSend && sendbuff == nullptr) return invalidArgument("sendbuff is NULL");
  if (recvbuff == nullptr) return invalidArgument("recvbuff is NULL");
  return Status::ok();
}

// A blocking call runs on the caller's thread; a stream call is queued on the stream's.
Status runOrEnqueue(Communicator* comm, ftcclStream_t stream, OpKind kind,
                    const CollectiveArgs& args) {
  // A revoked communicator fails every later op at once, queued on a stream or not.
  if (comm->asyncError() != ftcclSuccess) return comm->revokedStatus(opKindName(kind));
  if (comm->rank() < 0) {
    return invalidUsage(std::string(opKindName(kind)) +
                        ": this process is a hot spare (rank -1); it calls ftcclCommStandby "
                        "and takes part in collectives once activated");
  }
  Communicator::Ticket ticket = comm->issue();
  if (stream == nullptr) return comm->execute(ticket, kind, args);
  comm->enter();
  stream->impl.enqueue([comm, ticket, kind, args] {
    Status st = comm->execute(ticket, kind, args);
    comm->leave();
    return st;
  });
  return Status::ok();
}

}  // namespace
}  // namespace ftccl

using namespace ftccl;

extern "C" {

const char* ftcclGetErrorString(ftcclResult_t result) {
  switch (result) {
    case ftcclSuccess: return "no error";
    case ftcclSystemError: return "system error (OS, network or UCX)";
    case ftcclInternalError: return "internal error (a bug in ftccl)";
    case ftcclInvalidArgument: return "invalid argument";
    case ftcclInvalidUsage: return "invalid usage";
    case ftcclRemoteError: return "remote error (a peer failed; the communicator is revoked)";
    case ftcclInProgress: return "operation in progress";
    case ftcclTimeout: return "timeout";
    default: return "unknown result code";
  }
}

const char* ftcclGetLastError(ftcclComm_t comm) {
  try {
    tlsReturnedError = comm ? impl(comm)->lastError() : tlsLastError;
  } catch (...) {
    return "out of memory";
  }
  return tlsReturnedError.c_str();
}

ftcclResult_t ftcclGetVersion(int* version) {
  return guarded("ftcclGetVersion", nullptr, [&] {
    if (version == nullptr) return invalidArgument("version is NULL");
    *version = FTCCL_VERSION_CODE;
    return Status::ok();
  });
}

ftcclResult_t ftcclGetUniqueId(ftcclUniqueId* uniqueId) {
  return guarded("ftcclGetUniqueId", nullptr, [&] {
    FTCCL_CHECK(initLogging());
    if (uniqueId == nullptr) return invalidArgument("uniqueId is NULL");
    return createUniqueId(uniqueId);
  });
}

ftcclResult_t ftcclCommInitRankConfig(ftcclComm_t* comm, int nranks, ftcclUniqueId id, int rank,
                                      ftcclConfig_t* config) {
  return guarded("ftcclCommInitRank", nullptr, [&] {
    if (comm == nullptr) return invalidArgument("comm is NULL");
    *comm = nullptr;
    std::unique_ptr<Communicator> created;
    FTCCL_CHECK(Communicator::create(nranks, id, rank, config, &created));
    *comm = handle(created.release());
    return Status::ok();
  });
}

ftcclResult_t ftcclCommInitRank(ftcclComm_t* comm, int nranks, ftcclUniqueId id, int rank) {
  return ftcclCommInitRankConfig(comm, nranks, id, rank, nullptr);
}

ftcclResult_t ftcclCommStandby(ftcclComm_t comm, int* activated) {
  CommUse use(impl(comm));
  return guarded("ftcclCommStandby", impl(comm), [&] {
    FTCCL_CHECK(checkComm(comm));
    if (activated == nullptr) return invalidArgument("activated is NULL");
    return impl(comm)->standby(activated);
  });
}

ftcclResult_t ftcclCommGetJoinId(ftcclComm_t comm, ftcclUniqueId* id) {
  CommUse use(impl(comm));
  return guarded("ftcclCommGetJoinId", impl(comm), [&] {
    FTCCL_CHECK(checkComm(comm));
    if (id == nullptr) return invalidArgument("id is NULL");
    return impl(comm)->joinId(id);
  });
}

ftcclResult_t ftcclCommJoinAsSpare(ftcclComm_t* comm, ftcclUniqueId joinId,
                                   ftcclConfig_t* config) {
  return guarded("ftcclCommJoinAsSpare", nullptr, [&] {
    if (comm == nullptr) return invalidArgument("comm is NULL");
    *comm = nullptr;
    std::unique_ptr<Communicator> joined;
    FTCCL_CHECK(Communicator::joinAsSpare(joinId, config, &joined));
    *comm = handle(joined.release());
    return Status::ok();
  });
}

ftcclResult_t ftcclCommSplit(ftcclComm_t comm, int color, int key, ftcclComm_t* newcomm,
                             ftcclConfig_t* config) {
  return guarded("ftcclCommSplit", impl(comm), [] { return notImplemented("ftcclCommSplit"); });
}

ftcclResult_t ftcclCommCount(ftcclComm_t comm, int* count) {
  return guarded("ftcclCommCount", impl(comm), [&] {
    FTCCL_CHECK(checkComm(comm));
    if (count == nullptr) return invalidArgument("count is NULL");
    *count = impl(comm)->nranks();
    return Status::ok();
  });
}

ftcclResult_t ftcclCommUserRank(ftcclComm_t comm, int* rank) {
  return guarded("ftcclCommUserRank", impl(comm), [&] {
    FTCCL_CHECK(checkComm(comm));
    if (rank == nullptr) return invalidArgument("rank is NULL");
    *rank = impl(comm)->rank();
    return Status::ok();
  });
}

ftcclResult_t ftcclCommGetAsyncError(ftcclComm_t comm, ftcclResult_t* asyncError) {
  return guarded("ftcclCommGetAsyncError", impl(comm), [&] {
    FTCCL_CHECK(checkComm(comm));
    if (asyncError == nullptr) return invalidArgument("asyncError is NULL");
    *asyncError = impl(comm)->asyncError();
    return Status::ok();
  });
}

ftcclResult_t ftcclCommRebuild(ftcclComm_t comm, ftcclRebuildInfo_t* info) {
  CommUse use(impl(comm));
  return guarded("ftcclCommRebuild", impl(comm), [&] {
    FTCCL_CHECK(checkComm(comm));
    return impl(comm)->rebuild(info);
  });
}

ftcclResult_t ftcclCommFailedRanks(ftcclComm_t comm, int* ranks, int maxRanks, int* nFailed) {
  return guarded("ftcclCommFailedRanks", impl(comm), [&] {
    FTCCL_CHECK(checkComm(comm));
    if (nFailed == nullptr || (maxRanks > 0 && ranks == nullptr) || maxRanks < 0) {
      return invalidArgument("nFailed is NULL, or ranks is NULL with maxRanks > 0");
    }
    std::vector<int> failed = impl(comm)->failedRanks();
    *nFailed = static_cast<int>(failed.size());
    for (int i = 0; i < maxRanks && i < *nFailed; ++i) ranks[i] = failed[i];
    return Status::ok();
  });
}

ftcclResult_t ftcclCommAbort(ftcclComm_t comm) {
  return guarded("ftcclCommAbort", nullptr, [&] {
    FTCCL_CHECK(checkComm(comm));
    Communicator* c = impl(comm);
    c->abort();            // fails every in-flight and queued op at once
    c->waitUntilUnused();  // calls and queued ops leave promptly
    c->leaveHealth(/*orderly=*/false);
    delete c;
    return Status::ok();
  });
}

ftcclResult_t ftcclCommDestroy(ftcclComm_t comm) {
  return guarded("ftcclCommDestroy", nullptr, [&] {
    FTCCL_CHECK(checkComm(comm));
    Communicator* c = impl(comm);
    c->waitForIssuedOps();
    c->waitUntilUnused();
    c->leaveHealth(/*orderly=*/true);  // peers must not take this exit for a failure
    delete c;
    return Status::ok();
  });
}

ftcclResult_t ftcclStreamCreate(ftcclStream_t* stream) {
  return guarded("ftcclStreamCreate", nullptr, [&] {
    if (stream == nullptr) return invalidArgument("stream is NULL");
    *stream = new ftcclStream();
    return Status::ok();
  });
}

ftcclResult_t ftcclStreamSynchronize(ftcclStream_t stream) {
  return guarded("ftcclStreamSynchronize", nullptr, [&] {
    if (stream == nullptr) return Status::ok();  // the NULL stream never holds work
    return stream->impl.synchronize();
  });
}

ftcclResult_t ftcclStreamQuery(ftcclStream_t stream) {
  if (stream == nullptr) return ftcclSuccess;
  return guarded("ftcclStreamQuery", nullptr, [&] { return stream->impl.query(); });
}

ftcclResult_t ftcclStreamDestroy(ftcclStream_t stream) {
  return guarded("ftcclStreamDestroy", nullptr, [&] {
    if (stream == nullptr) return invalidArgument("stream is NULL");
    delete stream;
    return Status::ok();
  });
}

ftcclResult_t ftcclAllReduce(const void* sendbuff, void* recvbuff, size_t count,
                             ftcclDataType_t datatype, ftcclRedOp_t op, ftcclComm_t comm,
                             ftcclStream_t stream) {
  CommUse use(impl(comm));
  return guarded("ftcclAllReduce", impl(comm), [&] {
    FTCCL_CHECK(checkComm(comm));
    FTCCL_CHECK(checkBuffers(sendbuff, recvbuff, count, datatype, true));
    if (!isValidRedOp(op)) {
      return invalidArgument("op " + std::to_string(static_cast<int>(op)) + " is invalid");
    }
    CollectiveArgs args;
    args.sendbuff = sendbuff;
    args.recvbuff = recvbuff;
    args.count = count;
    args.type = datatype;
    args.op = op;
    return runOrEnqueue(impl(comm), stream, OpKind::kAllReduce, args);
  });
}

ftcclResult_t ftcclBroadcast(const void* sendbuff, void* recvbuff, size_t count,
                             ftcclDataType_t datatype, int root, ftcclComm_t comm,
                             ftcclStream_t stream) {
  CommUse use(impl(comm));
  return guarded("ftcclBroadcast", impl(comm), [&] {
    FTCCL_CHECK(checkComm(comm));
    Communicator* c = impl(comm);
    if (root < 0 || root >= c->nranks()) {
      return invalidArgument("root " + std::to_string(root) + " is outside [0, " +
                             std::to_string(c->nranks()) + ")");
    }
    FTCCL_CHECK(checkBuffers(sendbuff, recvbuff, count, datatype, root == c->rank()));
    CollectiveArgs args;
    args.sendbuff = sendbuff;
    args.recvbuff = recvbuff;
    args.count = count;
    args.type = datatype;
    args.root = root;
    return runOrEnqueue(c, stream, OpKind::kBroadcast, args);
  });
}

ftcclResult_t ftcclReduce(const void*, void*, size_t, ftcclDataType_t, ftcclRedOp_t, int,
                          ftcclComm_t comm, ftcclStream_t) {
  return guarded("ftcclReduce", impl(comm), [] { return notImplemented("ftcclReduce"); });
}

ftcclResult_t ftcclAllGather(const void*, void*, size_t, ftcclDataType_t, ftcclComm_t comm,
                             ftcclStream_t) {
  return guarded("ftcclAllGather", impl(comm), [] { return notImplemented("ftcclAllGather"); });
}

ftcclResult_t ftcclReduceScatter(const void*, void*, size_t, ftcclDataType_t, ftcclRedOp_t,
                                 ftcclComm_t comm, ftcclStream_t) {
  return guarded("ftcclReduceScatter", impl(comm),
                 [] { return notImplemented("ftcclReduceScatter"); });
}

ftcclResult_t ftcclSend(const void*, size_t, ftcclDataType_t, int, ftcclComm_t comm,
                        ftcclStream_t) {
  return guarded("ftcclSend", impl(comm), [] { return notImplemented("ftcclSend"); });
}

ftcclResult_t ftcclRecv(void*, size_t, ftcclDataType_t, int, ftcclComm_t comm, ftcclStream_t) {
  return guarded("ftcclRecv", impl(comm), [] { return notImplemented("ftcclRecv"); });
}

ftcclResult_t ftcclGroupStart(void) {
  return guarded("ftcclGroupStart", nullptr, [] { return notImplemented("ftcclGroupStart"); });
}

ftcclResult_t ftcclGroupEnd(void) {
  return guarded("ftcclGroupEnd", nullptr, [] { return notImplemented("ftcclGroupEnd"); });
}

}  // extern "C"
