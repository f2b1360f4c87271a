// The C entry points. Each validates its arguments, translates to C++ and runs inside
// one guard that turns any exception into a result and records the error message
// (per communicator and per thread) with a log line. Nothing throws out of here.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <vector>

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
  // The library's own wait may already name the call ("ftcclCommRebuild: the agreement
  // ..."): said once, not twice.
  const std::string prefix = std::string(call) + ": ";
  std::string message = status.message().compare(0, prefix.size(), prefix) == 0
                            ? status.message()
                            : prefix + status.message();
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

Status checkComm(ftcclComm_t comm) { return comm ? Status::ok() : invalidArgument("comm is NULL"); }

Status checkBuffers(const void* sendbuff, const void* recvbuff, size_t count, ftcclDataType_t type,
                    bool needSend) {
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

// Calls between ftcclGroupStart and ftcclGroupEnd, per application thread.
struct GroupCall {
  Communicator* comm;
  ftcclStream_t stream;
  OpRequest op;
};
thread_local int groupDepth = 0;
thread_local std::vector<GroupCall> groupCalls;

// Transfers to self are copies paired in order inside one batch: refuse a batch whose
// sends and receives to self do not pair up before it is issued (it could never finish).
Status checkSelfTransfers(const Communicator* comm, const std::vector<OpRequest>& batch) {
  std::vector<size_t> sends, recvs;
  for (const OpRequest& op : batch) {
    if (op.peer != comm->rank()) continue;
    size_t bytes = op.args.count * dataTypeSize(op.args.type);
    if (op.kind == OpKind::kSend) sends.push_back(bytes);
    if (op.kind == OpKind::kRecv) recvs.push_back(bytes);
  }
  if (sends.size() != recvs.size()) {
    return invalidUsage(std::to_string(sends.size()) + " sends to self but " +
                        std::to_string(recvs.size()) +
                        " receives from self: pair them inside one ftcclGroupStart/End");
  }
  for (size_t k = 0; k < sends.size(); ++k) {
    if (sends[k] > recvs[k]) {
      return invalidUsage("send to self #" + std::to_string(k) + " of " + std::to_string(sends[k]) +
                          " B does not fit its receive of " + std::to_string(recvs[k]) + " B");
    }
  }
  return Status::ok();
}

// Abort or Destroy inside an open group: this thread's calls on that communicator were
// never issued; they are dropped with their holds.
void dropGroupCalls(Communicator* comm) {
  auto it = std::remove_if(groupCalls.begin(), groupCalls.end(),
                           [&](const GroupCall& call) { return call.comm == comm; });
  for (auto drop = it; drop != groupCalls.end(); ++drop) comm->releaseGroupHold();
  groupCalls.erase(it, groupCalls.end());
}

// Frees an aborted or destroyed communicator, unless another thread's open group still
// holds it: the last ftcclGroupEnd to let it go frees it then.
void release(Communicator* comm) {
  if (comm->markReleased()) delete comm;
}

// Runs a batch: on the caller's thread when blocking, else queued on the stream's.
Status runBatch(Communicator* comm, ftcclStream_t stream, std::vector<OpRequest> batch) {
  FTCCL_CHECK(checkSelfTransfers(comm, batch));
  Communicator::Ticket ticket = comm->issue(&batch);
  if (stream == nullptr) return comm->execute(ticket, batch);
  comm->enter();
  stream->impl.enqueue([comm, ticket, batch] {
    Status st = comm->execute(ticket, batch);
    comm->leave();
    return st;
  });
  return Status::ok();
}

// A blocking call runs on the caller's thread, a stream call is queued on the stream's,
// and a call inside a group waits for ftcclGroupEnd.
Status runOrEnqueue(Communicator* comm, ftcclStream_t stream, const OpRequest& op) {
  // A revoked communicator fails every later op at once, queued on a stream or not.
  if (comm->asyncError() != ftcclSuccess) return comm->revokedStatus(opKindName(op.kind));
  if (comm->rank() < 0) {
    return invalidUsage(std::string(opKindName(op.kind)) +
                        ": this process is a hot spare (rank -1); it calls ftcclCommStandby "
                        "and takes part in collectives once activated");
  }
  if (groupDepth > 0) {
    comm->holdForGroup();  // kept (not freed) until GroupEnd runs, queues or drops it
    groupCalls.push_back({comm, stream, op});
    return Status::ok();
  }
  if (stream == nullptr) {
    // Runs here and now, so one batch per thread serves every blocking call: its
    // allocation and free cost a small op ~5% of its 0.5 us. (Nothing in execute calls
    // back into the API on this thread.)
    thread_local std::vector<OpRequest> single;
    single.assign(1, op);
    FTCCL_CHECK(checkSelfTransfers(comm, single));
    Communicator::Ticket ticket = comm->issue(&single);
    return comm->execute(ticket, single);
  }
  return runBatch(comm, stream, {op});
}

OpRequest collective(OpKind kind, const void* sendbuff, void* recvbuff, size_t count,
                     ftcclDataType_t type, ftcclRedOp_t op, int root) {
  OpRequest request;
  request.kind = kind;
  request.args.sendbuff = sendbuff;
  request.args.recvbuff = recvbuff;
  request.args.count = count;
  request.args.type = type;
  request.args.op = op;
  request.args.root = root;
  return request;
}

Status checkOp(ftcclRedOp_t op) {
  if (isValidRedOp(op)) return Status::ok();
  return invalidArgument("op " + std::to_string(static_cast<int>(op)) + " is invalid");
}

Status checkRoot(Communicator* comm, int root, const char* what) {
  if (root >= 0 && root < comm->nranks()) return Status::ok();
  return invalidArgument(std::string(what) + " " + std::to_string(root) + " is outside [0, " +
                         std::to_string(comm->nranks()) + ")");
}

// All-gather and reduce-scatter buffers hold nranks parts: their size must not overflow.
Status checkParts(Communicator* comm, size_t count, ftcclDataType_t type) {
  size_t n = static_cast<size_t>(comm->nranks() > 0 ? comm->nranks() : 1);
  if (isValidDataType(type) && count > SIZE_MAX / dataTypeSize(type) / n) {
    return invalidArgument("count " + std::to_string(count) + " x " + std::to_string(n) +
                           " ranks of " + dataTypeName(type) + " overflows the address space");
  }
  return Status::ok();
}

}  // namespace
}  // namespace ftccl

using namespace ftccl;

extern "C" {

const char* ftcclGetErrorString(ftcclResult_t result) {
  switch (result) {
    case ftcclSuccess:
      return "no error";
    case ftcclSystemError:
      return "system error (OS, network or UCX)";
    case ftcclInternalError:
      return "internal error (a bug in ftccl)";
    case ftcclInvalidArgument:
      return "invalid argument";
    case ftcclInvalidUsage:
      return "invalid usage";
    case ftcclRemoteError:
      return "remote error (a peer failed; the communicator is revoked)";
    case ftcclInProgress:
      return "operation in progress";
    case ftcclTimeout:
      return "timeout";
    default:
      return "unknown result code";
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

ftcclResult_t ftcclCommJoinAsSpare(ftcclComm_t* comm, ftcclUniqueId joinId, ftcclConfig_t* config) {
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
  CommUse use(impl(comm));
  return guarded("ftcclCommSplit", impl(comm), [&] {
    FTCCL_CHECK(checkComm(comm));
    if (newcomm == nullptr) return invalidArgument("newcomm is NULL");
    *newcomm = nullptr;
    if (color < 0 && color != FTCCL_SPLIT_NOCOLOR) {
      return invalidArgument("color " + std::to_string(color) +
                             " is negative and not FTCCL_SPLIT_NOCOLOR");
    }
    std::unique_ptr<Communicator> child;
    FTCCL_CHECK(impl(comm)->split(color, key, config, &child));
    *newcomm = handle(child.release());
    return Status::ok();
  });
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

ftcclResult_t ftcclCommGetStats(ftcclComm_t comm, char* json, size_t size, size_t* length) {
  return guarded("ftcclCommGetStats", impl(comm), [&] {
    FTCCL_CHECK(checkComm(comm));
    CommUse use(impl(comm));  // an abort from another thread waits for this snapshot
    if (length == nullptr) return invalidArgument("length is NULL");
    if (json == nullptr && size != 0) return invalidArgument("json is NULL with size > 0");
    CommStats stats = impl(comm)->stats();
    std::string text = statsJson(stats, nullptr);
    *length = text.size();
    if (json == nullptr) return Status::ok();
    if (size <= text.size()) {
      if (size > 0) json[0] = '\0';
      return invalidArgument("the stats need " + std::to_string(text.size() + 1) +
                             " bytes with the NUL; the buffer has " + std::to_string(size));
    }
    std::memcpy(json, text.data(), text.size() + 1);
    return Status::ok();
  });
}

ftcclResult_t ftcclCommAbort(ftcclComm_t comm) {
  return guarded("ftcclCommAbort", nullptr, [&] {
    FTCCL_CHECK(checkComm(comm));
    Communicator* c = impl(comm);
    c->abort();  // fails every in-flight and queued op at once
    dropGroupCalls(c);
    c->waitUntilUnused();  // calls and queued ops leave promptly
    c->leaveHealth(/*orderly=*/false);
    c->closeTransport();
    release(c);
    return Status::ok();
  });
}

ftcclResult_t ftcclCommDestroy(ftcclComm_t comm) {
  return guarded("ftcclCommDestroy", nullptr, [&] {
    FTCCL_CHECK(checkComm(comm));
    Communicator* c = impl(comm);
    dropGroupCalls(c);
    c->waitForIssuedOps();
    c->waitUntilUnused();
    c->leaveHealth(/*orderly=*/true);  // peers must not take this exit for a failure
    c->closeTransport();
    release(c);
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
    FTCCL_CHECK(checkOp(op));
    return runOrEnqueue(impl(comm), stream,
                        collective(OpKind::kAllReduce, sendbuff, recvbuff, count, datatype, op, 0));
  });
}

ftcclResult_t ftcclBroadcast(const void* sendbuff, void* recvbuff, size_t count,
                             ftcclDataType_t datatype, int root, ftcclComm_t comm,
                             ftcclStream_t stream) {
  CommUse use(impl(comm));
  return guarded("ftcclBroadcast", impl(comm), [&] {
    FTCCL_CHECK(checkComm(comm));
    Communicator* c = impl(comm);
    FTCCL_CHECK(checkRoot(c, root, "root"));
    FTCCL_CHECK(checkBuffers(sendbuff, recvbuff, count, datatype, root == c->rank()));
    return runOrEnqueue(
        c, stream,
        collective(OpKind::kBroadcast, sendbuff, recvbuff, count, datatype, ftcclSum, root));
  });
}

ftcclResult_t ftcclReduce(const void* sendbuff, void* recvbuff, size_t count,
                          ftcclDataType_t datatype, ftcclRedOp_t op, int root, ftcclComm_t comm,
                          ftcclStream_t stream) {
  CommUse use(impl(comm));
  return guarded("ftcclReduce", impl(comm), [&] {
    FTCCL_CHECK(checkComm(comm));
    Communicator* c = impl(comm);
    FTCCL_CHECK(checkRoot(c, root, "root"));
    FTCCL_CHECK(checkOp(op));
    // Only the root's recvbuff is written (NCCL): others may pass NULL.
    FTCCL_CHECK(
        checkBuffers(sendbuff, root == c->rank() ? recvbuff : sendbuff, count, datatype, true));
    return runOrEnqueue(c, stream,
                        collective(OpKind::kReduce, sendbuff, recvbuff, count, datatype, op, root));
  });
}

ftcclResult_t ftcclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount,
                             ftcclDataType_t datatype, ftcclComm_t comm, ftcclStream_t stream) {
  CommUse use(impl(comm));
  return guarded("ftcclAllGather", impl(comm), [&] {
    FTCCL_CHECK(checkComm(comm));
    FTCCL_CHECK(checkBuffers(sendbuff, recvbuff, sendcount, datatype, true));
    FTCCL_CHECK(checkParts(impl(comm), sendcount, datatype));
    return runOrEnqueue(
        impl(comm), stream,
        collective(OpKind::kAllGather, sendbuff, recvbuff, sendcount, datatype, ftcclSum, 0));
  });
}

ftcclResult_t ftcclReduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount,
                                 ftcclDataType_t datatype, ftcclRedOp_t op, ftcclComm_t comm,
                                 ftcclStream_t stream) {
  CommUse use(impl(comm));
  return guarded("ftcclReduceScatter", impl(comm), [&] {
    FTCCL_CHECK(checkComm(comm));
    FTCCL_CHECK(checkBuffers(sendbuff, recvbuff, recvcount, datatype, true));
    FTCCL_CHECK(checkParts(impl(comm), recvcount, datatype));
    FTCCL_CHECK(checkOp(op));
    return runOrEnqueue(
        impl(comm), stream,
        collective(OpKind::kReduceScatter, sendbuff, recvbuff, recvcount, datatype, op, 0));
  });
}

ftcclResult_t ftcclSend(const void* buff, size_t count, ftcclDataType_t datatype, int peer,
                        ftcclComm_t comm, ftcclStream_t stream) {
  CommUse use(impl(comm));
  return guarded("ftcclSend", impl(comm), [&] {
    FTCCL_CHECK(checkComm(comm));
    FTCCL_CHECK(checkRoot(impl(comm), peer, "peer"));
    FTCCL_CHECK(checkBuffers(buff, const_cast<void*>(buff), count, datatype, true));
    OpRequest op = collective(OpKind::kSend, buff, nullptr, count, datatype, ftcclSum, 0);
    op.peer = peer;
    return runOrEnqueue(impl(comm), stream, op);
  });
}

ftcclResult_t ftcclRecv(void* buff, size_t count, ftcclDataType_t datatype, int peer,
                        ftcclComm_t comm, ftcclStream_t stream) {
  CommUse use(impl(comm));
  return guarded("ftcclRecv", impl(comm), [&] {
    FTCCL_CHECK(checkComm(comm));
    FTCCL_CHECK(checkRoot(impl(comm), peer, "peer"));
    FTCCL_CHECK(checkBuffers(nullptr, buff, count, datatype, false));
    OpRequest op = collective(OpKind::kRecv, nullptr, buff, count, datatype, ftcclSum, 0);
    op.peer = peer;
    return runOrEnqueue(impl(comm), stream, op);
  });
}

ftcclResult_t ftcclGroupStart(void) {
  return guarded("ftcclGroupStart", nullptr, [] {
    ++groupDepth;
    return Status::ok();
  });
}

// Each communicator's calls become one batch: its Send/Recv are posted together, its
// collectives run after them in call order. Communicators run in the order of their
// first call in the group (the same order on every rank, as NCCL requires).
ftcclResult_t ftcclGroupEnd(void) {
  return guarded("ftcclGroupEnd", nullptr, [] {
    if (groupDepth == 0) return invalidUsage("ftcclGroupEnd without ftcclGroupStart");
    if (--groupDepth > 0) return Status::ok();
    std::vector<GroupCall> calls;
    calls.swap(groupCalls);
    Status first;
    std::vector<Communicator*> order;
    for (const GroupCall& call : calls) {
      if (std::find(order.begin(), order.end(), call.comm) == order.end()) {
        order.push_back(call.comm);
      }
    }
    for (Communicator* comm : order) {
      // Counted as a call in progress: a concurrent abort waits for this batch (which
      // it fails at once) before it closes the transport under it.
      CommUse use(comm);
      std::vector<OpRequest> batch;
      ftcclStream_t stream = nullptr;
      for (const GroupCall& call : calls) {
        if (call.comm != comm) continue;
        if (batch.empty()) stream = call.stream;
        batch.push_back(call.op);
      }
      Status st = comm->isReleased() ? invalidUsage(
                                           "the communicator was aborted or destroyed "
                                           "by another thread inside the group")
                  : comm->asyncError() != ftcclSuccess ? comm->revokedStatus("group")
                                                       : runBatch(comm, stream, std::move(batch));
      if (!st.isOk()) {
        comm->setLastError(st.message());
        if (first.isOk()) first = st;
      }
    }
    for (const GroupCall& call : calls) {
      if (!call.comm->releaseGroupHold()) continue;
      // Released meanwhile: ours to free, once an op this group queued on a stream has
      // left (it fails at once on an aborted communicator).
      call.comm->waitUntilUnused();
      delete call.comm;
    }
    return first;
  });
}

}  // extern "C"
