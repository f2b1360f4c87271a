// Going on after a rank fails; see perf_recovery.h.
#include "perf_recovery.h"

#include <cstdarg>
#include <cstdint>
#include <cstdio>

namespace ftperf {
namespace {

// Failures that keep coming while the members resynchronise: give up after this many.
constexpr int kMaxRebuilds = 5;

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  char text[512];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(text, sizeof text, fmt, args);
  va_end(args);
  return text;
}

std::string joinRanks(const std::vector<int>& ranks) {
  std::string out;
  for (int r : ranks) out += (out.empty() ? "" : ",") + std::to_string(r);
  return out.empty() ? "none" : out;
}

int userRank(ftcclComm_t comm) {
  int rank = -1;
  ftcclCommUserRank(comm, &rank);
  return rank;
}

std::vector<int> failedRanks(ftcclComm_t comm) {
  int n = 0;
  ftcclCommFailedRanks(comm, nullptr, 0, &n);
  std::vector<int> ranks(static_cast<size_t>(n));
  if (n > 0) ftcclCommFailedRanks(comm, ranks.data(), n, &n);
  return ranks;
}

// Fault stamp -> now; -1 without a stamp.
double sinceStampMs() {
  double injected = -1;
  int pid = -1;
  return readFaultStamp(&injected, &pid) && injected > 0 ? faultClockMs() - injected : -1.0;
}

}  // namespace

void Recovery::noteFailure(int rank, long step, const char* error) {
  if (pending_) return;  // the same failure, seen again by a later call
  pending_ = true;
  if (firstFailedStep_ < 0) firstFailedStep_ = step;
  if (fault_.enabled() && records_.empty()) {
    detectionMs_ = printFaultDetection(fault_, rank, error, &victimPid_);
  } else {
    // A fault from outside (ftccl_run --kill, a chaos campaign): timed from the
    // launcher's stamp when there is one.
    if (records_.empty() && detectionMs_ < 0) detectionMs_ = sinceStampMs();
    std::printf("[rank %d] # failure detected (%.2f ms after the last injected fault): %s\n", rank,
                detectionMs_, error);
    std::fflush(stdout);
  }
}

bool Recovery::recover(ftcclComm_t comm, long* step, bool* reporter) {
  for (int attempt = 0; attempt < kMaxRebuilds; ++attempt) {
    if (!rebuild(comm)) return false;
    if (resyncDone(comm, step, reporter)) return true;
    if (!problem_.empty()) return false;
  }
  return fail(format("%d rebuilds in a row failed to resynchronise", kMaxRebuilds));
}

bool Recovery::standby(ftcclComm_t comm, bool* activated, long* step, bool* reporter) {
  int on = 0;
  if (ftcclCommStandby(comm, &on) != ftcclSuccess) {
    return fail(ftcclGetLastError(comm));  // it names the call
  }
  *activated = on == 1;
  if (!*activated) return true;
  holdsState_ = false;
  RebuildRecord rec;
  ftcclCommCount(comm, &rec.info.nranks);
  rec.lost = failedRanks(comm);
  records_.push_back(rec);
  if (resyncDone(comm, step, reporter)) return true;
  return problem_.empty() && recover(comm, step, reporter);  // failed again: rebuild
}

bool Recovery::rebuild(ftcclComm_t comm) {
  RebuildRecord rec;
  const double t0 = faultClockMs();
  if (ftcclCommRebuild(comm, &rec.info) != ftcclSuccess) {
    return fail(ftcclGetLastError(comm));  // it names the call
  }
  rec.rebuildMs = faultClockMs() - t0;
  rec.lost = failedRanks(comm);
  records_.push_back(rec);
  pending_ = false;
  endStoppedVictim(fault_, victimPid_);  // out of the group now; nobody else ends it
  return true;
}

// One min all-reduce settles where everyone goes on. The step: the lowest of the members
// that held state, since a collective can complete on some members and fail on others; a
// member ahead redoes a step, nobody skips one. The reporter: the lowest rank that ran
// from the start, since only such a rank has every row and the first t0 of the loop the
// failure interrupted (an activated spare ranks after it whatever its number).
ftcclResult_t Recovery::resync(ftcclComm_t comm, long* step, bool* reporter) {
  const int rank = userRank(comm);
  int n = 0;
  ftcclCommCount(comm, &n);
  const int64_t self = original_ ? rank : int64_t{n} + rank;
  int64_t v[2] = {holdsState_ ? int64_t{*step} : INT64_MAX, self};
  const ftcclResult_t res = ftcclAllReduce(v, v, 2, ftcclInt64, ftcclMin, comm, nullptr);
  if (res != ftcclSuccess) return res;
  if (v[0] == INT64_MAX) {
    fail("no member held the benchmark's position before the rebuild");
    return ftcclInternalError;
  }
  *step = static_cast<long>(v[0]);
  *reporter = v[1] == self;
  return ftcclSuccess;
}

// True once resynchronised; false on a new failure (pending again) or with problem_ set.
bool Recovery::resyncDone(ftcclComm_t comm, long* step, bool* reporter) {
  const ftcclResult_t res = resync(comm, step, reporter);
  if (res == ftcclSuccess) {
    holdsState_ = true;
    if (recoveryMs_ < 0) recoveryMs_ = sinceStampMs();
    return true;
  }
  if (isPeerFailure(res)) {
    noteFailure(userRank(comm), *step, ftcclGetLastError(comm));
  } else if (problem_.empty()) {
    fail(std::string("resynchronisation: ") + ftcclGetLastError(comm));
  }
  return false;
}

bool Recovery::fail(const std::string& why) {
  if (problem_.empty()) problem_ = why;
  return false;
}

std::string Recovery::unexpected() const {
  // Without --fault, any failure the run survived with correct results is a success: the
  // tool's job is then to keep checking every result, which it does.
  if (!fault_.enabled()) return "";
  if (records_.empty()) {
    return format("the planned %s of rank %d at op %ld never happened", fault_.kind.c_str(),
                  fault_.rank, fault_.iter);
  }
  std::vector<int> lost;
  for (const RebuildRecord& rec : records_)
    lost.insert(lost.end(), rec.lost.begin(), rec.lost.end());
  if (lost != std::vector<int>{fault_.rank}) {
    return format("lost rank(s) %s in %d rebuild(s), planned rank %d only", joinRanks(lost).c_str(),
                  rebuilds(), fault_.rank);
  }
  return "";
}

std::vector<std::string> Recovery::summaryLines(const std::string& hitLoop) const {
  std::vector<std::string> lines;
  const std::string done = fault_.kind == "stop" ? "stopped" : "killed";
  if (records_.empty()) {
    if (fault_.enabled()) {
      lines.push_back(format("# Fault: rank %d was to be %s at op %ld, but the run ended first",
                             fault_.rank, done.c_str(), fault_.iter));
    }
    return lines;
  }
  std::vector<int> lost;
  for (const RebuildRecord& rec : records_)
    lost.insert(lost.end(), rec.lost.begin(), rec.lost.end());
  const std::string what =
      fault_.enabled()
          ? format("rank %d %s at op %ld", fault_.rank, done.c_str(), fault_.iter)
          : format("rank(s) %s lost to a fault this tool did not inject", joinRanks(lost).c_str());
  lines.push_back(
      format("# Fault: %s; detection %.2f ms, rebuild %.2f ms, recovery (fault -> "
             "loop running again) %.2f ms; run busbw including the fault: %s",
             what.c_str(), detectionMs_, records_.front().rebuildMs, recoveryMs_, hitLoop.c_str()));
  for (const RebuildRecord& rec : records_) {
    lines.push_back(
        format("# Rebuild: epoch %llu, nranks %d, replaced %d, spares left %d%s; "
               "lost rank(s) %s; %.2f ms",
               rec.info.epoch, rec.info.nranks, rec.info.nReplaced, rec.info.sparesLeft,
               rec.info.shrunk ? ", shrunk" : "", joinRanks(rec.lost).c_str(), rec.rebuildMs));
  }
  return lines;
}

std::string Recovery::brief() const {
  return format("rebuilds %d, detection_ms %.2f, recovery_ms %.2f", rebuilds(), detectionMs_,
                recoveryMs_);
}

}  // namespace ftperf
