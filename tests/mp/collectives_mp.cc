// Multi-process correctness under mpirun: every dtype x op x count class x placement
// for AllReduce, every root for Broadcast, back-to-back ops on one and several
// streams, NaN propagation and bitwise agreement across ranks on inexact inputs.
// One mpirun per rank count loops over all cases; each rank checks its own results
// and prints one verdict line, "VERDICT rank=R PASS cases=N" or "... FAIL ...";
// run_mp.sh demands one PASS per rank.
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ftccl.h"
#include "mp_checks.h"
#include "perf_common.h"

namespace {

using namespace ftperf;
using namespace mpcheck;

// The exact result: every rank's input (generated locally), combined in rank order.
void expectedAllReduce(void* out, size_t count, ftcclDataType_t type, ftcclRedOp_t op) {
  std::vector<uint8_t> want = expectedReduction(count, type, op, gRanks);
  if (count) std::memcpy(out, want.data(), count * typeSize(type));
}

std::string caseName(const char* coll, ftcclDataType_t type, const char* op, size_t count,
                     bool inPlace, int root = -1) {
  char text[160];
  std::snprintf(text, sizeof text, "%s type=%s op=%s count=%zu %s root=%d", coll, typeName(type),
                op, count, inPlace ? "in-place" : "out-of-place", root);
  return text;
}

void allReduceCase(ftcclComm_t comm, ftcclStream_t stream, ftcclDataType_t type, ftcclRedOp_t op,
                   size_t count, bool inPlace) {
  ++gCases;
  size_t bytes = count * typeSize(type);
  // One extra element on each side (canaries) and an odd offset: unaligned buffers.
  std::vector<uint8_t> send(bytes + 3 * typeSize(type) + 1, 0xa5), recv(send.size(), 0x5a),
      want(bytes + 1);
  uint8_t* sendAt = send.data() + typeSize(type) + 1;
  uint8_t* recvAt = inPlace ? sendAt : recv.data() + typeSize(type) + 1;
  fillReduceInput(sendAt, count, type, op, gRank, gRanks);
  expectedAllReduce(want.data(), count, type, op);
  std::string name = caseName("AllReduce", type, opName(op), count, inPlace);
  if (!ok(ftcclAllReduce(sendAt, recvAt, count, type, op, comm, stream), comm, name)) return;
  if (!ok(ftcclStreamSynchronize(stream), comm, name)) return;
  check(recvAt, want.data(), count, type, name);
  const std::vector<uint8_t>& outer = inPlace ? send : recv;
  uint8_t fill = inPlace ? 0xa5 : 0x5a;
  for (size_t i = 0; i < typeSize(type) + 1; ++i) {
    if (outer[i] != fill || outer[outer.size() - 1 - i] != fill) {
      fail(name + ": wrote outside the buffer");
      break;
    }
  }
}

void broadcastCase(ftcclComm_t comm, ftcclStream_t stream, ftcclDataType_t type, size_t count,
                   int root, bool inPlace) {
  ++gCases;
  size_t bytes = count * typeSize(type);
  std::vector<uint8_t> send(bytes + 1), recv(bytes + 1, 0x11), want(bytes + 1);
  fillRawInput(want.data(), count, type, root);
  if (gRank == root) std::memcpy(send.data(), want.data(), bytes);
  uint8_t* recvAt = inPlace && gRank == root ? send.data() : recv.data();
  std::string name = caseName("Broadcast", type, "none", count, inPlace, root);
  if (!ok(ftcclBroadcast(send.data(), recvAt, count, type, root, comm, stream), comm, name)) {
    return;
  }
  if (!ok(ftcclStreamSynchronize(stream), comm, name)) return;
  check(recvAt, want.data(), count, type, name);
}

// Many ops queued back to back on one stream, then on three streams round-robin:
// the results must be those of running them one by one.
void backToBack(ftcclComm_t comm) {
  ++gCases;
  const int kOps = 24;
  const size_t count = 10007;
  std::vector<ftcclStream_t> streams(3);
  for (auto& s : streams) ok(ftcclStreamCreate(&s), comm, "StreamCreate");
  for (int spread : {1, 3}) {
    std::vector<std::vector<int32_t>> in(kOps, std::vector<int32_t>(count)),
        out(kOps, std::vector<int32_t>(count, -1));
    for (int k = 0; k < kOps; ++k) {
      for (size_t i = 0; i < count; ++i) in[k][i] = static_cast<int32_t>(k * 1000 + i + gRank);
      ok(ftcclAllReduce(in[k].data(), out[k].data(), count, ftcclInt32, ftcclSum, comm,
                        streams[k % spread]),
         comm, "back-to-back enqueue");
    }
    for (auto& s : streams) ok(ftcclStreamSynchronize(s), comm, "back-to-back sync");
    for (int k = 0; k < kOps; ++k) {
      for (size_t i = 0; i < count; ++i) {
        int64_t want = 0;
        for (int r = 0; r < gRanks; ++r) want += k * 1000 + static_cast<int64_t>(i) + r;
        if (out[k][i] != static_cast<int32_t>(want)) {
          fail("back-to-back on " + std::to_string(spread) + " streams: op " + std::to_string(k) +
               " element " + std::to_string(i));
          break;
        }
      }
    }
  }
  for (auto& s : streams) ftcclStreamDestroy(s);
}

// Inexact float inputs: results may differ from a sequential sum, but every rank
// must hold the same bits; and a NaN anywhere gives NaN everywhere.
void agreementAndNan(ftcclComm_t comm) {
  ++gCases;
  const size_t count = 300007;
  std::vector<float> in(count), out(count);
  for (size_t i = 0; i < count; ++i) in[i] = std::sin(0.001f * i + gRank) * (gRank + 1.37f);
  if (gRank == gRanks - 1) in[count / 2] = NAN;
  if (!ok(ftcclAllReduce(in.data(), out.data(), count, ftcclFloat32, ftcclSum, comm, nullptr), comm,
          "agreement")) {
    return;
  }
  if (!std::isnan(out[count / 2])) fail("NaN did not propagate");
  uint64_t hash = 1469598103934665603ull;
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(out.data());
  for (size_t i = 0; i < count * sizeof(float); ++i) hash = (hash ^ bytes[i]) * 1099511628211ull;
  std::vector<uint64_t> hashes(gRanks);
  MPI_Allgather(&hash, 1, MPI_UINT64_T, hashes.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD);
  for (int r = 0; r < gRanks; ++r) {
    if (hashes[r] != hash) fail("rank " + std::to_string(r) + " holds different bits");
  }
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &gRank);
  MPI_Comm_size(MPI_COMM_WORLD, &gRanks);
  ftcclUniqueId id;
  if (gRank == 0 && ftcclGetUniqueId(&id) != ftcclSuccess) {
    std::fprintf(stderr, "GetUniqueId: %s\n", ftcclGetLastError(nullptr));
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
  ftcclComm_t comm = nullptr;
  if (!ok(ftcclCommInitRank(&comm, gRanks, id, gRank), nullptr, "CommInitRank")) {
    std::printf("VERDICT rank=%d FAIL init\n", gRank);
    MPI_Finalize();
    return 1;
  }
  ftcclStream_t stream = nullptr;
  ok(ftcclStreamCreate(&stream), comm, "StreamCreate");

  std::vector<size_t> counts = {0, 1, 7, static_cast<size_t>(gRanks - 1), 1000003};
  for (int t = 0; t < ftcclNumTypes; ++t) {
    for (int o = 0; o < ftcclNumOps; ++o) {
      for (size_t count : counts) {
        for (bool inPlace : {false, true}) {
          // Alternate the NULL stream and a real one.
          ftcclStream_t s = (count + t + o) % 2 ? stream : nullptr;
          allReduceCase(comm, s, static_cast<ftcclDataType_t>(t), static_cast<ftcclRedOp_t>(o),
                        count, inPlace);
        }
      }
    }
  }
  // Large: 4 Mi elements for a few pairs (several slices per segment, all channels).
  const std::pair<ftcclDataType_t, ftcclRedOp_t> large[] = {{ftcclFloat32, ftcclSum},
                                                            {ftcclBfloat16, ftcclAvg},
                                                            {ftcclInt64, ftcclProd},
                                                            {ftcclFloat16, ftcclMax}};
  for (auto [type, op] : large) {
    for (bool inPlace : {false, true}) allReduceCase(comm, stream, type, op, 4u << 20, inPlace);
  }
  for (int root = 0; root < gRanks; ++root) {
    for (size_t count : {size_t(0), size_t(1), size_t(4099), size_t(3u << 20)}) {
      for (bool inPlace : {false, true}) {
        broadcastCase(comm, root % 2 ? stream : nullptr, root % 2 ? ftcclFloat64 : ftcclUint8,
                      count, root, inPlace);
      }
    }
  }
  backToBack(comm);
  agreementAndNan(comm);

  ok(ftcclStreamDestroy(stream), comm, "StreamDestroy");
  ok(ftcclCommDestroy(comm), nullptr, "CommDestroy");
  std::printf("VERDICT rank=%d %s cases=%d failures=%d\n", gRank, gFailures ? "FAIL" : "PASS",
              gCases, gFailures);
  std::fflush(stdout);
  MPI_Finalize();
  return gFailures ? 1 : 0;
}
