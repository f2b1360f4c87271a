// One call of the C API, as the communicator queues and runs it.
#pragma once

#include "algorithms/collective.h"

namespace ftccl {

// The order is that of the stats' op kinds (stats/op_counters.h).
enum class OpKind { kAllReduce, kBroadcast, kReduce, kAllGather, kReduceScatter, kSend, kRecv };
const char* opKindName(OpKind kind);  // "AllReduce", ..., "Send", "Recv"

// A collective, or one side of a Send/Recv (the buffer in args.sendbuff or
// args.recvbuff, `peer` the other side).
struct OpRequest {
  OpKind kind = OpKind::kAllReduce;
  CollectiveArgs args;
  int peer = -1;
  int algorithm = -1;     // >= 0: run this Algorithm, unlogged (calibration probes)
  bool internal = false;  // ftccl's own (calibration, CommSplit): not in the stats
};

}  // namespace ftccl
