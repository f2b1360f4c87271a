// Bootstrap: turning an ftcclUniqueId into a connected group.
//
// The unique id names a root (an IPv4/IPv6 address and port) and carries a random
// 128-bit secret and a 64-bit rendezvous nonce. Each rank connects to the root over
// TCP, answers the root's fresh challenge with a proof that it holds the secret (the
// secret itself never travels), its rank and an opaque (non-empty) blob (host, pid,
// transport address, composed by core/); the root checks the proof (a mismatch is
// rejected and logged), waits for all nranks, then sends everyone the table of all
// blobs with its own proof for the rank's challenge, and closes: a process that does
// not hold the secret can neither join nor pose as the root (wire.h). At the
// deadline, rank 0 and a strict majority are enough: the
// missing ranks' entries are empty (a fault during init; core/ replaces them). Nothing after init
// depends on the root: rank 0 may die later. Every blocking step is bounded by a timeout; a timeout
// names the missing ranks.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ftccl.h"
#include "util/net/socket.h"
#include "util/status.h"

namespace ftccl {

struct UniqueIdContents {
  std::string rootHost;  // numeric address ("127.0.0.1", "::1")
  uint16_t rootPort = 0;
  uint8_t secret[16] = {0};
  uint64_t nonce = 0;               // distinguishes rendezvous; the communicator id derives from it
  bool rankZeroStartsRoot = false;  // FTCCL_COMM_ID: no root yet, rank 0 listens at init
};

// Encodes with magic, format version and checksum; decode rejects anything else
// with ftcclInvalidArgument ("corrupted unique id" / "unique id of another version").
void encodeUniqueId(const UniqueIdContents& contents, ftcclUniqueId* id);
Status decodeUniqueId(const ftcclUniqueId& id, UniqueIdContents* contents);

// ftcclGetUniqueId: with FTCCL_COMM_ID=host:port (secret from FTCCL_COMM_SECRET, 32
// hex digits) builds the id every rank can build alike; otherwise picks an address
// (FTCCL_SOCKET_IFNAME, else the first non-loopback interface, else loopback),
// starts the root listener in this process and returns its id.
Status createUniqueId(ftcclUniqueId* id);
// The same without FTCCL_COMM_ID: always a fresh root in this process (CommSplit, where
// every child needs its own rendezvous even when the job was started by FTCCL_COMM_ID).
Status createListeningId(ftcclUniqueId* id);

// FTCCL_BOOTSTRAP_TIMEOUT_MS, default 120000; invalid values are an error.
Status bootstrapTimeoutMs(int* timeoutMs);

// How one rank's rendezvous went, for its log and for tests (relay.h).
struct RendezvousStats {
  int tableFrom = -1;         // the rank that relayed the table to this one; -1: the root
  bool parentFailed = false;  // the parent named by the root did not: the root sent it
  uint32_t children = 0;      // ranks this one relays the table to (in the background)
  size_t tableBytes = 0;      // the Table frame
};

// Meets the other ranks: returns every rank's blob (index = rank), own included. A rank
// that had not joined (or had left) by the deadline gets an empty blob, when rank 0 and a
// strict majority did join; otherwise the rendezvous fails naming the missing ranks.
// Starts the root first when contents.rankZeroStartsRoot and rank == 0. `cancelled`,
// when given, is asked every few ms while waiting: true ends the rendezvous with
// ftcclRemoteError.
Status rendezvous(const UniqueIdContents& contents, int rank, int nranks,
                  const std::vector<uint8_t>& myBlob, int timeoutMs,
                  std::vector<std::vector<uint8_t>>* allBlobs,
                  const std::function<bool()>& cancelled = {}, RendezvousStats* stats = nullptr);

// Stops every root listener and table relay this process still runs (tests, process exit).
void stopAllRoots();

}  // namespace ftccl
