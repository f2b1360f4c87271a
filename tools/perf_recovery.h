// Going on after a rank fails (--spares S, --recover): the survivors rebuild the
// communicator onto hot spares (or shrink it), agree on where the benchmark stands, and
// redo the step the failure interrupted. Spares wait in ftcclCommStandby and join at
// that step when activated. Only without MPI (FTCCL_COMM_ID, as ftccl_run starts the
// processes): an MPI job does not survive the death of one of its processes.
#pragma once

#include <string>
#include <vector>

#include "ftccl.h"
#include "perf_fault.h"

namespace ftperf {

struct RecoveryPlan {
  int spares = 0;        // --spares S: the last S processes wait as hot spares
  bool enabled = false;  // --spares S >= 1, or --recover (shrink when no spare is left)
};

// One rebuild as this process saw it.
struct RebuildRecord {
  ftcclRebuildInfo_t info{};  // an activated spare only knows info.nranks
  double rebuildMs = 0;       // the ftcclCommRebuild call; 0 for an activated spare
  std::vector<int> lost;      // ranks lost, in the numbering before the rebuild
};

class Recovery {
 public:
  Recovery(const FaultPlan& fault, bool spare) : fault_(fault), original_(!spare) {}

  // ftcclRemoteError / ftcclTimeout: a peer failed, a rebuild lets the run go on.
  static bool isPeerFailure(ftcclResult_t res) {
    return res == ftcclRemoteError || res == ftcclTimeout;
  }
  // After a call failed with a peer failure at benchmark step `step`: prints the
  // detection line once per failure.
  void noteFailure(int rank, long step, const char* error);
  bool pending() const { return pending_; }
  // The step at which this process first saw a failure; -1 when none.
  long firstFailedStep() const { return firstFailedStep_; }

  // Rebuilds (again while failures hit the resynchronisation), then agrees with the
  // others on the step to go on from. *step: this member's step on entry, the agreed
  // one on return. *reporter: whether this member prints the table from now on.
  bool recover(ftcclComm_t comm, long* step, bool* reporter);
  // A spare waits; activated, it takes the agreed step and role as recover() does.
  bool standby(ftcclComm_t comm, bool* activated, long* step, bool* reporter);

  // "" when every failure was the planned fault, else what differed.
  std::string unexpected() const;
  // The reporter's "# Fault:" and "# Rebuild:" lines; hitLoop describes the busbw of
  // the timed loop the fault interrupted, redone work included.
  std::vector<std::string> summaryLines(const std::string& hitLoop) const;
  // A short account for the verdict line: "rebuilds 1, detection_ms 7.51, recovery_ms
  // 15.90" (a spare's activation counts as a rebuild).
  std::string brief() const;
  int rebuilds() const { return static_cast<int>(records_.size()); }
  const std::string& problem() const { return problem_; }

 private:
  bool rebuild(ftcclComm_t comm);
  ftcclResult_t resync(ftcclComm_t comm, long* step, bool* reporter);
  bool resyncDone(ftcclComm_t comm, long* step, bool* reporter);
  bool fail(const std::string& why);

  FaultPlan fault_;
  bool original_;           // held a rank from the start: has every row and time
  bool holdsState_ = true;  // an activated spare has none until its first resync
  bool pending_ = false;    // a failure seen, not yet recovered from
  long firstFailedStep_ = -1;
  double detectionMs_ = -1;  // fault stamp -> this process saw the error
  double recoveryMs_ = -1;   // fault stamp -> everyone agreed where to go on
  int victimPid_ = -1;
  std::vector<RebuildRecord> records_;
  std::string problem_;
};

}  // namespace ftperf
