// Multi-process correctness of every collective and algorithm, under mpirun.
//
//   algorithms_mp [--algo ring|tree|hier|rd|auto] [--nodes K [--interleave]]
//
// --algo forces the all-reduce algorithm through ftcclConfig_t.algorithm (auto: the
// cost model decides, and sizes cross its switch points); --nodes splits the ranks
// into K virtual nodes with FTCCL_NODE_ID (contiguous blocks, or round robin with
// --interleave) so the hierarchical algorithm runs on one machine. Cases: AllReduce
// (every dtype x op x count class x placement), Reduce (every root), AllGather and
// ReduceScatter (in place at NCCL's offsets), Send/Recv rings and all-to-all in groups,
// a group of collectives, and CommSplit children running collectives of their own.
// Each rank prints "VERDICT rank=R PASS|FAIL"; run_mp.sh demands a PASS from every rank.
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ftccl.h"
#include "mp_checks.h"
#include "perf_common.h"

namespace {

using namespace ftperf;
using namespace mpcheck;

std::string name(const char* coll, ftcclDataType_t type, ftcclRedOp_t op, size_t count,
                 bool inPlace, int root = -1) {
  char text[160];
  std::snprintf(text, sizeof text, "%s %s %s count=%zu %s root=%d", coll, typeName(type),
                opName(op), count, inPlace ? "in-place" : "out-of-place", root);
  return text;
}

void allReduceCase(ftcclComm_t comm, int n, int rank, ftcclDataType_t type, ftcclRedOp_t op,
                   size_t count, bool inPlace) {
  ++gCases;
  size_t bytes = count * typeSize(type);
  std::vector<uint8_t> send(bytes + 2), recv(bytes + 2, 0x5a);
  fillReduceInput(send.data() + 1, count, type, op, rank, n);  // odd address: unaligned
  uint8_t* out = inPlace ? send.data() + 1 : recv.data() + 1;
  std::string what = name("AllReduce", type, op, count, inPlace);
  if (!ok(ftcclAllReduce(send.data() + 1, out, count, type, op, comm, nullptr), comm, what)) return;
  check(out, expectedReduction(count, type, op, n).data(), count, type, what);
}

void reduceCase(ftcclComm_t comm, ftcclDataType_t type, ftcclRedOp_t op, size_t count, int root,
                bool inPlace) {
  ++gCases;
  size_t bytes = count * typeSize(type);
  std::vector<uint8_t> send(bytes + 1), recv(bytes + 1, 0x5a), untouched(bytes + 1, 0x5a);
  fillReduceInput(send.data(), count, type, op, gRank, gRanks);
  uint8_t* out = inPlace ? send.data() : recv.data();
  std::string what = name("Reduce", type, op, count, inPlace, root);
  if (!ok(ftcclReduce(send.data(), out, count, type, op, root, comm, nullptr), comm, what)) return;
  if (gRank == root) {
    check(out, expectedReduction(count, type, op, gRanks).data(), count, type, what);
  } else if (!inPlace && std::memcmp(recv.data(), untouched.data(), recv.size()) != 0) {
    fail(what + ": a non-root recvbuff was written");
  }
}

void allGatherCase(ftcclComm_t comm, ftcclDataType_t type, size_t count, bool inPlace) {
  ++gCases;
  size_t part = count * typeSize(type);
  std::vector<uint8_t> recv(part * gRanks + 1, 0x5a), send(part + 1), want(part * gRanks + 1);
  for (int r = 0; r < gRanks; ++r) fillRawInput(want.data() + r * part, count, type, r);
  fillRawInput(send.data(), count, type, gRank);
  const uint8_t* in = send.data();
  if (inPlace) {
    std::memcpy(recv.data() + gRank * part, send.data(), part);
    in = recv.data() + gRank * part;
  }
  std::string what = name("AllGather", type, ftcclSum, count, inPlace);
  if (!ok(ftcclAllGather(in, recv.data(), count, type, comm, nullptr), comm, what)) return;
  check(recv.data(), want.data(), count * gRanks, type, what);
}

void reduceScatterCase(ftcclComm_t comm, ftcclDataType_t type, ftcclRedOp_t op, size_t count,
                       bool inPlace) {
  ++gCases;
  size_t part = count * typeSize(type);
  std::vector<uint8_t> send(part * gRanks + 1), recv(part + 1, 0x5a);
  fillReduceInput(send.data(), count * gRanks, type, op, gRank, gRanks);
  uint8_t* out = inPlace ? send.data() + gRank * part : recv.data();
  std::vector<uint8_t> full = expectedReduction(count * gRanks, type, op, gRanks);
  std::string what = name("ReduceScatter", type, op, count, inPlace);
  if (!ok(ftcclReduceScatter(send.data(), out, count, type, op, comm, nullptr), comm, what)) {
    return;
  }
  check(out, full.data() + gRank * part, count, type, what);
}

// Send/Recv: a ring shift in one group (every rank sends and receives at once: without
// the group's joint posting a rendezvous-size ring would deadlock), then all-to-all.
void pointToPoint(ftcclComm_t comm) {
  ++gCases;
  for (size_t count : {size_t(0), size_t(5), size_t(1) << 20}) {
    std::vector<int32_t> out(count), in(count, -1);
    for (size_t i = 0; i < count; ++i) out[i] = gRank * 1000003 + static_cast<int32_t>(i);
    int next = (gRank + 1) % gRanks, prev = (gRank + gRanks - 1) % gRanks;
    ok(ftcclGroupStart(), nullptr, "GroupStart");
    ok(ftcclSend(out.data(), count, ftcclInt32, next, comm, nullptr), comm, "Send");
    ok(ftcclRecv(in.data(), count, ftcclInt32, prev, comm, nullptr), comm, "Recv");
    if (!ok(ftcclGroupEnd(), comm, "GroupEnd ring")) return;
    for (size_t i = 0; i < count; ++i) {
      if (in[i] != prev * 1000003 + static_cast<int32_t>(i)) {
        fail("ring shift of " + std::to_string(count) + " at " + std::to_string(i));
        break;
      }
    }
  }
  ++gCases;
  const size_t count = 4099;
  std::vector<int64_t> out(count * gRanks), in(count * gRanks, -1);
  for (int p = 0; p < gRanks; ++p) {
    for (size_t i = 0; i < count; ++i) out[p * count + i] = gRank * 100000 + p * 1000 + i;
  }
  ok(ftcclGroupStart(), nullptr, "GroupStart");
  for (int p = gRanks - 1; p >= 0; --p) {  // any order within the group
    ok(ftcclRecv(in.data() + p * count, count, ftcclInt64, p, comm, nullptr), comm, "Recv");
    ok(ftcclSend(out.data() + p * count, count, ftcclInt64, p, comm, nullptr), comm, "Send");
  }
  if (!ok(ftcclGroupEnd(), comm, "GroupEnd all-to-all")) return;
  for (int p = 0; p < gRanks; ++p) {
    if (in[p * count + 7] != p * 100000 + gRank * 1000 + 7)
      fail("all-to-all from " + std::to_string(p));
  }
}

// Two all-reduces and a broadcast in one group: results as if run one by one.
void groupedCollectives(ftcclComm_t comm) {
  ++gCases;
  const size_t count = 30011;
  std::vector<float> a(count, 1.0f + gRank), b(count, 2.0f * gRank), c(count, -1.0f);
  if (gRank == gRanks - 1) c.assign(count, 42.0f);
  ok(ftcclGroupStart(), nullptr, "GroupStart");
  ok(ftcclAllReduce(a.data(), a.data(), count, ftcclFloat32, ftcclSum, comm, nullptr), comm, "g1");
  ok(ftcclAllReduce(b.data(), b.data(), count, ftcclFloat32, ftcclMax, comm, nullptr), comm, "g2");
  ok(ftcclBroadcast(c.data(), c.data(), count, ftcclFloat32, gRanks - 1, comm, nullptr), comm,
     "g3");
  if (!ok(ftcclGroupEnd(), comm, "GroupEnd collectives")) return;
  float sum = 0;
  for (int r = 0; r < gRanks; ++r) sum += 1.0f + r;
  if (a[count - 1] != sum || b[0] != 2.0f * (gRanks - 1) || c[count / 2] != 42.0f) {
    fail("grouped collectives");
  }
}

// Even and odd ranks form two children, numbered by descending parent rank (key); the
// last rank opts out with FTCCL_SPLIT_NOCOLOR when there are 3 or more ranks.
void split(ftcclComm_t comm) {
  ++gCases;
  bool optOut = gRanks >= 3 && gRank == gRanks - 1;
  int color = optOut ? FTCCL_SPLIT_NOCOLOR : gRank % 2;
  ftcclComm_t child = nullptr;
  if (!ok(ftcclCommSplit(comm, color, -gRank, &child, nullptr), comm, "CommSplit")) return;
  if (optOut) {
    if (child != nullptr) fail("NOCOLOR gave a communicator");
    allReduceCase(comm, gRanks, gRank, ftcclInt32, ftcclSum, 77, false);  // as the others do
    return;
  }
  std::vector<int> members;
  for (int r = 0; r < gRanks; ++r) {
    if (r % 2 == color && !(gRanks >= 3 && r == gRanks - 1)) members.push_back(r);
  }
  int n = 0, rank = -1;
  ok(ftcclCommCount(child, &n), child, "CommCount");
  ok(ftcclCommUserRank(child, &rank), child, "CommUserRank");
  int expectRank = 0;
  for (int r : members) expectRank += r > gRank ? 1 : 0;  // keys descend with the rank
  if (n != static_cast<int>(members.size()) || rank != expectRank) {
    fail("split: rank " + std::to_string(rank) + " of " + std::to_string(n) + ", expected " +
         std::to_string(expectRank) + " of " + std::to_string(members.size()));
  }
  std::vector<int64_t> v(1001, gRank), w(1001);
  if (ok(ftcclAllReduce(v.data(), w.data(), v.size(), ftcclInt64, ftcclSum, child, nullptr), child,
         "child AllReduce")) {
    int64_t want = 0;
    for (int r : members) want += r;
    if (w[1000] != want) fail("child AllReduce sum");
  }
  // The parent still works while the child exists.
  allReduceCase(comm, gRanks, gRank, ftcclInt32, ftcclSum, 77, false);
  ok(ftcclCommDestroy(child), nullptr, "child CommDestroy");
}

// Two communicators over the same ranks, used in turn: a burst of 16 MiB all-reduces on
// a stream, then an MPI barrier, as an application with several process groups does.
// A rank that finished its part and blocks elsewhere (the other communicator, MPI) must
// not leave a peer waiting on this communicator. This is the pattern in which rd with
// 64 rendezvous pieces per round hung (bench/algorithm_sweep, 16 MiB, 4 ranks).
void interleavedCommunicators(ftcclComm_t comm) {
  ++gCases;
  ftcclComm_t other = nullptr;
  if (!ok(ftcclCommSplit(comm, 0, gRank, &other, nullptr), comm, "CommSplit (everyone)")) return;
  ftcclStream_t stream = nullptr;
  ftcclStreamCreate(&stream);
  const size_t count = size_t(4) << 20;
  std::vector<float> send(count, static_cast<float>(gRank + 1)), recv(count);
  const float want = static_cast<float>(gRanks * (gRanks + 1) / 2);
  for (int round = 0; round < 6; ++round) {
    ftcclComm_t c = round % 2 ? other : comm;
    std::fill(recv.begin(), recv.end(), 0.0f);
    for (int i = 0; i < 8; ++i) {
      ok(ftcclAllReduce(send.data(), recv.data(), count, ftcclFloat32, ftcclSum, c, stream), c,
         "AllReduce burst");
    }
    if (!ok(ftcclStreamSynchronize(stream), c, "StreamSynchronize")) {
      MPI_Barrier(MPI_COMM_WORLD);  // the others wait there: fail, but never hang them
      continue;
    }
    if (std::count(recv.begin(), recv.end(), want) != static_cast<long>(count)) {
      fail("interleaved communicators: wrong sums in round " + std::to_string(round));
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
  ftcclStreamDestroy(stream);
  ok(ftcclCommDestroy(other), nullptr, "CommDestroy (other)");
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &gRank);
  MPI_Comm_size(MPI_COMM_WORLD, &gRanks);
  std::string algo = "auto";
  int nodes = 0;
  bool interleave = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--algo" && i + 1 < argc)
      algo = argv[++i];
    else if (a == "--nodes" && i + 1 < argc)
      nodes = std::atoi(argv[++i]);
    else if (a == "--interleave")
      interleave = true;
  }
  if (nodes > 0) {
    int node = interleave ? gRank % nodes : gRank * nodes / gRanks;
    setenv("FTCCL_NODE_ID", ("vnode" + std::to_string(node)).c_str(), 1);
  }
  ftcclUniqueId id;
  if (gRank == 0 && ftcclGetUniqueId(&id) != ftcclSuccess) MPI_Abort(MPI_COMM_WORLD, 1);
  MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
  ftcclConfig_t config = FTCCL_CONFIG_INITIALIZER;
  std::string spec = "allreduce:" + algo;
  if (algo != "auto") config.algorithm = spec.c_str();
  ftcclComm_t comm = nullptr;
  if (!ok(ftcclCommInitRankConfig(&comm, gRanks, id, gRank, &config), nullptr, "init")) {
    std::printf("VERDICT rank=%d FAIL init\n", gRank);
    MPI_Finalize();
    return 1;
  }
  const size_t counts[] = {0, 1, 7, static_cast<size_t>(gRanks) - 1, 70001};
  for (int t = 0; t < ftcclNumTypes; ++t) {
    for (int o = 0; o < ftcclNumOps; ++o) {
      for (size_t count : counts) {
        for (bool inPlace : {false, true}) {
          allReduceCase(comm, gRanks, gRank, static_cast<ftcclDataType_t>(t),
                        static_cast<ftcclRedOp_t>(o), count, inPlace);
        }
      }
    }
  }
  // Sizes across the tuner's switch points and several chunks per channel.
  for (size_t count : {size_t(1) << 12, size_t(1) << 15, size_t(3) << 20}) {
    allReduceCase(comm, gRanks, gRank, ftcclFloat32, ftcclSum, count, false);
    allReduceCase(comm, gRanks, gRank, ftcclBfloat16, ftcclAvg, count, true);
  }
  const ftcclDataType_t someTypes[] = {ftcclInt8, ftcclUint32, ftcclFloat16, ftcclFloat64,
                                       ftcclBfloat16};
  for (int root = 0; root < gRanks; ++root) {
    for (ftcclDataType_t type : someTypes) {
      for (size_t count : {size_t(0), size_t(3), size_t(40009)}) {
        reduceCase(comm, type, static_cast<ftcclRedOp_t>((root + count) % ftcclNumOps), count, root,
                   count % 2 == 1);
      }
    }
  }
  for (ftcclDataType_t type : someTypes) {
    for (size_t count : {size_t(0), size_t(1), size_t(13), size_t(262147)}) {
      for (bool inPlace : {false, true}) {
        allGatherCase(comm, type, count, inPlace);
        for (int o = 0; o < ftcclNumOps; ++o) {
          if (count > 13 && o > 1) continue;  // large: two ops are enough
          reduceScatterCase(comm, type, static_cast<ftcclRedOp_t>(o), count, inPlace);
        }
      }
    }
  }
  pointToPoint(comm);
  groupedCollectives(comm);
  split(comm);
  interleavedCommunicators(comm);
  ok(ftcclCommDestroy(comm), nullptr, "CommDestroy");
  std::printf("VERDICT rank=%d %s cases=%d failures=%d algo=%s nodes=%d\n", gRank,
              gFailures ? "FAIL" : "PASS", gCases, gFailures, algo.c_str(), nodes);
  std::fflush(stdout);
  MPI_Finalize();
  return gFailures ? 1 : 0;
}
