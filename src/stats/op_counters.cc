#include "stats/op_counters.h"

namespace ftccl {

const char* statKindName(int kind) {
  static const char* const kNames[kStatKinds] = {
      "allreduce", "broadcast", "reduce", "allgather", "reducescatter", "send", "recv"};
  return kind >= 0 && kind < kStatKinds ? kNames[kind] : "?";
}

double busFactor(int kind, int nranks) {
  if (nranks <= 1) return kind == 0 || kind == 3 || kind == 4 ? 0.0 : 1.0;
  double n = nranks;
  switch (kind) {
    case 0:
      return 2.0 * (n - 1) / n;  // allreduce
    case 3:
    case 4:
      return (n - 1) / n;  // allgather, reducescatter
    default:
      return 1.0;  // broadcast, reduce, send, recv
  }
}

}  // namespace ftccl
