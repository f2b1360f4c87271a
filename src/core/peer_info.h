// What each rank tells the others at init, carried through the bootstrap as a blob.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "algorithms/collective.h"
#include "recovery/agreement_messages.h"
#include "util/status.h"

namespace ftccl {

// A process as core knows it: its identity (key: the health listener address) and how
// to reach it.
struct PeerInfo : ProcessId {
  uint64_t pidns = 0;       // pid namespace inode: pids (the shm hand-off's checks) mean
                            // the same process only within one
  uint64_t netns = 0;       // network namespace inode: one host, one kernel, but
                            // separate stacks (emulated hosts, containers)
  PipelineConfig pipeline;  // only rank 0's is used: every rank adopts it
  uint64_t commSalt = 0;    // rank 0's random bits: the communicator id
  std::string node;         // FTCCL_NODE_ID, else the host name
  int32_t package = -1;     // hwloc locality, orders a node's intra-node ring
  int32_t numaNode = -1;
  int32_t memoryNode = -1;  // the same NUMA node as the kernel numbers it, for mbind:
                            // each rank's own view (hwloc's logical numbers may differ
                            // between processes whose cpusets differ)
  std::vector<uint8_t> transportAddress;
  // The process's standby UCX workers, in the order it moves to them, one each time a
  // process of its host dies (Communicator::switchWorkers); a used one is removed.
  std::vector<std::vector<uint8_t>> standbyAddresses;
};

// Standby workers per process: enough for two deaths on one host (a second death on a
// host that had already switched poisoned the FIFOs again: chaos seed 8192).
constexpr size_t kStandbyWorkers = 2;

std::vector<uint8_t> encodePeerInfo(const PeerInfo& info);
Status decodePeerInfo(const std::vector<uint8_t>& blob, PeerInfo* info);

// What a newcomer (ftcclCommJoinAsSpare) is sent: the communicator id, the chunking, and
// every process's info.
std::vector<uint8_t> encodeJoinPackage(uint64_t commKey, const PipelineConfig& pipeline,
                                       const std::vector<PeerInfo>& peers);
Status decodeJoinPackage(const std::vector<uint8_t>& package, uint64_t* commKey,
                         PipelineConfig* pipeline, std::vector<PeerInfo>* peers);

}  // namespace ftccl
