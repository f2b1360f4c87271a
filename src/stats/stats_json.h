// A communicator's statistics at one instant, and their JSON form: what
// ftcclCommGetStats returns and what each line of FTCCL_STATS_FILE holds (the schema is
// in docs/observability.md; tools/ftccl_top reads it). Counters are cumulative since
// the communicator was created; a file line also carries the rates of the interval
// since the previous line ("interval", and each peer's send/recv GB/s).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "stats/op_counters.h"
#include "stats/progress_board.h"

namespace ftccl {

struct PeerStats {
  int rank = -1;
  std::string host;
  int pid = 0;
  uint64_t sentBytes = 0, recvBytes = 0;
  // Bulk transfers only (transports/link_counters.h): the rate while the link was in use.
  uint64_t sendTimedBytes = 0, recvTimedBytes = 0, sendBusyNs = 0, recvBusyNs = 0;
  // The health thread's view (monitored peers only).
  uint64_t rttSamples = 0;
  double rttMinMs = 0, rttAvgMs = 0, rttP99Ms = 0, rttLastMs = 0, rttBaselineMs = 0, rttLevelMs = 0;
  bool linkDegraded = false;
  bool lateKnown = false;
  double lateMs = 0;
  uint64_t lateOps = 0;
  bool straggler = false;
};

struct CommStats {
  double unixTime = 0;
  std::string host;
  int pid = 0;
  // The communicator's public id (crypto::oneWayId of its key): it names the
  // communicator in files others may read, and says nothing of its key.
  uint64_t commId = 0;
  uint64_t epoch = 0;
  int rank = -1;
  int nranks = 0;
  bool final = false;
  std::array<KindTotals, kStatKinds> kinds{};
  OpProgress progress;
  std::vector<PeerStats> peers;
};

// `previous`: the same communicator's last line (null for none): adds the interval.
std::string statsJson(const CommStats& stats, const CommStats* previous);

}  // namespace ftccl
