// The benchmark as a flat list of steps (perf_run.h): every type x op x root, every size,
// out of place and in place; set up, timed, checked and printed step by step, and taken up
// again at an agreed step after a rebuild.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "perf_run.h"

namespace ftperf {
namespace {

Buffer allocBuffer(size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, 4096, bytes) != 0) throw std::bad_alloc();
  std::memset(p, 0, bytes);  // pre-fault: no page faults inside the timed loops
  return Buffer(static_cast<unsigned char*>(p));
}

// The buffers of one operation of `bytes` (a size step) with the current number of ranks:
// a shrink changes the blocks of AllGather / ReduceScatter.
CollCounts countsFor(const Run& r, ftcclDataType_t type, size_t bytes) {
  const size_t tsize = typeSize(type);
  const size_t count = bytes / tsize;
  CollCounts k;
  if (r.tool->counts) {
    r.tool->counts(count, r.nranks, &k);
  } else {
    k.send = k.recv = k.param = count;
  }
  // The buffers are allocated for the largest size: a tool may only round down.
  if (k.send > count || k.recv > count) {
    throw std::logic_error(std::string(r.tool->name) + ": buffers larger than the size");
  }
  return k;
}

// A row's buffers, now; refreshes its size and count columns to match (after a shrink).
CollCounts rowCounts(Run& r, const Combo& c, int index) {
  ResultRow& row = r.table[static_cast<size_t>(index)];
  const CollCounts k = countsFor(r, c.type, r.rowSize[static_cast<size_t>(index)]);
  row.count = k.param;
  row.bytes = std::max(k.send, k.recv) * typeSize(c.type);
  return k;
}

// Where an operation reads and writes: out of place the two buffers; in place the receive
// buffer alone, at the tool's per-rank offsets (nccl-tests' in-place offsets).
unsigned char* sendBuffer(Run& r, const CollCounts& k, size_t tsize, bool inPlace) {
  if (!inPlace) return r.send.get();
  return r.recv.get() + static_cast<size_t>(r.rank) * k.sendInPlaceOffset * tsize;
}
unsigned char* recvBuffer(Run& r, const CollCounts& k, size_t tsize, bool inPlace) {
  if (!inPlace) return r.recv.get();
  return r.recv.get() + static_cast<size_t>(r.rank) * k.recvInPlaceOffset * tsize;
}

// --slow: the first sleep is announced with the wall clock, so that the time until the
// library's straggler warning (whose log lines carry the wall clock too) can be read off.
void sleepAsStraggler(Run& r) {
  if (!r.slowAnnounced) {
    r.slowAnnounced = true;
    const double unixMs = std::chrono::duration<double, std::milli>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
    std::fprintf(stderr,
                 "[rank %d] # slow: sleeping %d ms before each operation from unix ms %.0f\n",
                 r.rank, r.opt.slow.ms, unixMs);
    std::fflush(stderr);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(r.opt.slow.ms));
}

// The library's own totals (ftcclCommGetStats): its JSON's "total" object, and the bytes
// sent to every peer. A plain scan: the tool reads the library's fixed format.
LibraryCount readLibraryCount(ftcclComm_t comm) {
  LibraryCount c;
  size_t length = 0;
  std::string json;
  for (int attempt = 0; attempt < 3; ++attempt) {  // the JSON may grow in between: slack
    json.assign(length + 4096, '\0');
    if (ftcclCommGetStats(comm, &json[0], json.size(), &length) == ftcclSuccess) break;
    json.clear();
  }
  if (json.empty()) return c;
  size_t total = json.find("\"total\":{");
  if (total == std::string::npos ||
      std::sscanf(json.c_str() + total, "\"total\":{\"ops\":%llu,\"bytes\":%llu,\"time_us\":%lf",
                  &c.ops, &c.bytes, &c.timeUs) != 3) {
    return c;
  }
  const std::string key = "\"sent_bytes\":";
  for (size_t at = json.find(key); at != std::string::npos; at = json.find(key, at + 1)) {
    c.sentBytes += std::strtoull(json.c_str() + at + key.size(), nullptr, 10);
  }
  c.valid = true;
  return c;
}

LibraryCount countSince(const LibraryCount& before, const LibraryCount& after) {
  LibraryCount d;
  d.valid = before.valid && after.valid;
  d.ops = after.ops - before.ops;
  d.bytes = after.bytes - before.bytes;
  d.sentBytes = after.sentBytes - before.sentBytes;
  d.timeUs = after.timeUs - before.timeUs;
  return d;
}

// Runs `iters` operations back to back, then waits.
bool runOps(Run& r, const Combo& c, const CollCounts& k, bool inPlace, int iters) {
  const size_t tsize = typeSize(c.type);
  const void* sendbuff = sendBuffer(r, k, tsize, inPlace);
  void* recvbuff = recvBuffer(r, k, tsize, inPlace);
  for (int it = 0; it < iters; ++it) {
    if (r.faultArmed) maybeInjectFault(r.opt.fault, r.rank, &r.timedOps);
    if (r.opt.slow.rank == r.rank) sleepAsStraggler(r);
    if (!ok(r, r.tool->run(sendbuff, recvbuff, k.param, c.type, c.op, c.root, r.comm, r.stream),
            r.tool->collName))
      return false;
  }
  return sync(r);
}

// The receive buffer before a checked run: poisoned (so that a missing write is seen),
// holding this rank's input where an in-place operation reads it.
void prepareRecv(Run& r, const CollCounts& k, size_t tsize, bool inPlace) {
  const size_t extent = std::max(k.send, k.recv) * tsize;
  const size_t sendBytes = k.send * tsize;
  if (!inPlace || extent > sendBytes) std::memset(r.recv.get(), 0xa5, extent);
  if (inPlace) std::memcpy(sendBuffer(r, k, tsize, true), r.send.get(), sendBytes);
}

// This rank's input and expected output at the largest size; they depend on the rank and
// the number of ranks, so a rebuild fills them again.
void fillCombo(Run& r, const Combo& c) {
  if (!r.opt.check) return;
  const CollCounts k = countsFor(r, c.type, r.opt.maxBytes);
  r.tool->fillInput(r.send.get(), k.send, c.type, c.op, c.root, r.rank, r.nranks);
  if (!r.tool->expectedPerSize) {
    r.tool->fillExpected(r.expected.get(), k.recv, c.type, c.op, c.root, r.rank, r.nranks);
  }
}

bool beginCombo(Run& r, const Combo& c) {
  fillCombo(r, c);
  return barrier(r);
}

bool warmUp(Run& r, const Combo& c) {
  return runOps(r, c, countsFor(r, c.type, r.opt.maxBytes), false, r.opt.warmupIters) &&
         runOps(r, c, countsFor(r, c.type, r.opt.minBytes), false, r.opt.warmupIters);
}

bool syncPlacement(Run& r, const Combo& c, const Step& s) {
  const CollCounts k = rowCounts(r, c, s.row);
  if (r.opt.check) prepareRecv(r, k, typeSize(c.type), s.inPlace);
  return runOps(r, c, k, s.inPlace, 1) && barrier(r);
}

// A loop redone after a failure keeps its first t0: its time then includes the failure,
// the detection, the rebuild and the redone operations, with the iterations counted once.
bool timePlacement(Run& r, const Combo& c, const Step& s) {
  const CollCounts k = rowCounts(r, c, s.row);
  ResultRow& row = r.table[static_cast<size_t>(s.row)];
  if (r.loopStep != r.step) {
    r.loopStep = r.step;
    r.loopLibrary = readLibraryCount(r.comm);
    r.loopT0 = Clock::now();
  }
  if (!runOps(r, c, k, s.inPlace, r.opt.iters)) return false;
  // The clock first: reading the library's counts builds its stats JSON, which took
  // ~10 us and made a 20-iteration loop of 8 B all-reduces look 0.5 us slower per op.
  const auto t1 = Clock::now();
  const LibraryCount library = countSince(r.loopLibrary, readLibraryCount(r.comm));
  const double sec =
      maxOverRanks(r, std::chrono::duration<double>(t1 - r.loopT0).count() / r.opt.iters);
  PlacementResult& out = s.inPlace ? row.ip : row.oop;
  out.timeUs = sec * 1.0e6;
  out.library = library;
  computeBandwidth(row.bytes, sec, r.tool->busBwFactor(r.nranks), &out.algBw, &out.busBw);
  return true;
}

// This rank's wrong elements after a checked run; the first one goes to stderr.
long long countWrong(Run& r, const Combo& c, const CollCounts& k, bool inPlace) {
  if (r.tool->rootOnlyResult && r.rank != c.root) return 0;
  const unsigned char* got = recvBuffer(r, k, typeSize(c.type), inPlace);
  size_t first = 0;
  const long long wrong =
      static_cast<long long>(countMismatches(got, r.expected.get(), k.recv, c.type, &first));
  if (wrong > 0) {
    std::fprintf(stderr,
                 "[rank %d] %s: %s %s root %d count %zu %s: %lld wrong elements, first at "
                 "[%zu]: got 0x%s expected 0x%s\n",
                 r.rank, r.tool->name, typeName(c.type), r.tool->usesOps ? opName(c.op) : "none",
                 c.root, k.param, inPlace ? "in-place" : "out-of-place", wrong, first,
                 elementHex(got, first, c.type).c_str(),
                 elementHex(r.expected.get(), first, c.type).c_str());
  }
  return wrong;
}

bool checkPlacement(Run& r, const Combo& c, const Step& s) {
  const CollCounts k = rowCounts(r, c, s.row);
  ResultRow& row = r.table[static_cast<size_t>(s.row)];
  PlacementResult& out = s.inPlace ? row.ip : row.oop;
  out.wrong = -1;
  if (r.opt.check && r.tool->expectedPerSize) {
    r.tool->fillExpected(r.expected.get(), k.recv, c.type, c.op, c.root, r.rank, r.nranks);
  }
  for (int rep = 0; rep < r.opt.check; ++rep) {
    // Restore the input (an in-place run overwrote it; a buggy out-of-place run might have).
    r.tool->fillInput(r.send.get(), k.send, c.type, c.op, c.root, r.rank, r.nranks);
    prepareRecv(r, k, typeSize(c.type), s.inPlace);
    if (!runOps(r, c, k, s.inPlace, 1)) return false;
    out.wrong = sumOverRanks(r, countWrong(r, c, k, s.inPlace));
    if (out.wrong) break;
  }
  return true;
}

void printRow(Run& r, int index) {
  const bool again = r.printed[static_cast<size_t>(index)] != 0;
  r.printed[static_cast<size_t>(index)] = 1;
  if (!r.reporter) return;
  if (again) std::printf("# the row of that size again, redone after the rebuild:\n");
  std::printf("%s\n", formatRow(r.table[static_cast<size_t>(index)]).c_str());
  std::fflush(stdout);
}

bool runStep(Run& r, const Step& s) {
  const Combo& c = r.combos[static_cast<size_t>(s.combo)];
  if (c.root >= r.nranks) return true;  // -r all, and a shrink took this root away
  switch (s.kind) {
    case StepKind::kBegin:
      return beginCombo(r, c);
    case StepKind::kWarmup:
      return warmUp(r, c);
    case StepKind::kSync:
      return syncPlacement(r, c, s);
    case StepKind::kTimed:
      return timePlacement(r, c, s);
    case StepKind::kCheck:
      return checkPlacement(r, c, s);
    case StepKind::kRow:
      printRow(r, s.row);
      return true;
  }
  return true;
}

}  // namespace

// Every type x op x root: begin, warm up, then every size, out-of-place then in-place.
void planSteps(Run& r) {
  const std::vector<size_t> sizes = sizeSteps(r.opt);
  std::vector<int> roots;
  if (!r.tool->usesRoot) {
    roots.push_back(-1);
  } else if (r.opt.allRoots) {
    for (int p = 0; p < r.nranks; ++p) roots.push_back(p);
  } else {
    roots.push_back(r.opt.root);
  }
  const std::vector<ftcclRedOp_t> ops =
      r.tool->usesOps ? r.opt.ops : std::vector<ftcclRedOp_t>{ftcclSum};
  for (ftcclDataType_t type : r.opt.types) {
    for (ftcclRedOp_t op : ops) {
      for (int root : roots) {
        const int combo = static_cast<int>(r.combos.size());
        r.combos.push_back(Combo{type, op, root});
        r.steps.push_back(Step{StepKind::kBegin, combo, -1, false});
        r.steps.push_back(Step{StepKind::kWarmup, combo, -1, false});
        for (size_t size : sizes) {
          const int index = static_cast<int>(r.table.size());
          const CollCounts k = countsFor(r, type, size);
          ResultRow row;
          row.count = k.param;
          row.bytes = std::max(k.send, k.recv) * typeSize(type);
          row.type = type;
          row.redop = r.tool->usesOps ? opName(op) : "none";
          row.root = r.tool->usesRoot ? root : -1;
          r.table.push_back(row);
          r.rowSize.push_back(size);
          for (bool inPlace : {false, true}) {
            for (StepKind kind : {StepKind::kSync, StepKind::kTimed, StepKind::kCheck}) {
              r.steps.push_back(Step{kind, combo, index, inPlace});
            }
          }
          r.steps.push_back(Step{StepKind::kRow, combo, index, false});
        }
      }
    }
  }
  r.printed.assign(r.table.size(), 0);
}

// Takes the agreed step and the new numbering after a rebuild or an activation, and sets
// up again the combo that step belongs to (the failed op left the buffers undefined).
void adoptRecovery(Run& r) {
  r.faultArmed = false;  // an activated spare holding the victim's number must not repeat it
  ftcclCommUserRank(r.comm, &r.rank);
  ftcclCommCount(r.comm, &r.nranks);
  if (r.step < static_cast<long>(r.steps.size())) {
    fillCombo(r, r.combos[static_cast<size_t>(r.steps[static_cast<size_t>(r.step)].combo)]);
  }
}

// Runs the steps from r.step. After a peer failure (with --spares / --recover): drain the
// stream (its error would come back at the next synchronize), rebuild, and go on.
bool runSteps(Run& r) {
  while (r.step < static_cast<long>(r.steps.size())) {
    if (runStep(r, r.steps[static_cast<size_t>(r.step)])) {
      ++r.step;
      continue;
    }
    if (!r.recovery || !r.recovery->pending()) return false;
    if (r.stream) ftcclStreamSynchronize(r.stream);
    if (!r.recovery->recover(r.comm, &r.step, &r.reporter)) return false;
    adoptRecovery(r);
  }
  return true;
}

void allocBuffers(Run& r) {
  r.bufBytes = std::max<size_t>((r.opt.maxBytes + 63) / 64 * 64, 64);
  r.send = allocBuffer(r.bufBytes);
  r.recv = allocBuffer(r.bufBytes);
  if (r.opt.check) r.expected = allocBuffer(r.bufBytes);
}

}  // namespace ftperf
