// Locality probing with hwloc, and node grouping for the hierarchical all-reduce.
// See topology.h for why the intra-node ring order matters.
#include "topology/topology.h"

#include <hwloc.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <mutex>
#include <tuple>
#include <unordered_map>

namespace ftccl {
namespace {

// The process's hwloc topology, loaded on first use and kept: every communicator init
// probes, and reloading would walk sysfs again. Destroyed with the other statics.
class CachedTopology {
 public:
  CachedTopology() { status_ = load(); }
  ~CachedTopology() {
    if (topology_) hwloc_topology_destroy(topology_);
  }
  CachedTopology(const CachedTopology&) = delete;
  CachedTopology& operator=(const CachedTopology&) = delete;

  const Status& status() const { return status_; }
  hwloc_topology_t get() const { return topology_; }
  const Locality& counts() const { return counts_; }

 private:
  Status load() {
    if (hwloc_topology_init(&topology_) != 0) {
      topology_ = nullptr;
      return systemError(std::string("hwloc_topology_init failed: ") + std::strerror(errno));
    }
    if (hwloc_topology_load(topology_) != 0) {
      const int err = errno;
      hwloc_topology_destroy(topology_);
      topology_ = nullptr;
      return systemError(std::string("hwloc_topology_load failed: ") + std::strerror(err));
    }
    // hwloc reports 0 objects for levels it could not discover (e.g. no package info
    // in a VM); the counts stay >= 1 so callers may divide by them.
    counts_.packages = std::max(1, hwloc_get_nbobjs_by_type(topology_, HWLOC_OBJ_PACKAGE));
    counts_.numaNodes = std::max(1, hwloc_get_nbobjs_by_type(topology_, HWLOC_OBJ_NUMANODE));
    int cores = hwloc_get_nbobjs_by_type(topology_, HWLOC_OBJ_CORE);
    if (cores <= 0) cores = hwloc_get_nbobjs_by_type(topology_, HWLOC_OBJ_PU);
    counts_.cores = std::max(1, cores);
    return Status::ok();
  }

  hwloc_topology_t topology_ = nullptr;
  Status status_;
  Locality counts_;
};

// An hwloc bitmap freed on every path.
class Bitmap {
 public:
  Bitmap() : bitmap_(hwloc_bitmap_alloc()) {}
  ~Bitmap() {
    if (bitmap_) hwloc_bitmap_free(bitmap_);
  }
  Bitmap(const Bitmap&) = delete;
  Bitmap& operator=(const Bitmap&) = delete;
  hwloc_bitmap_t get() const { return bitmap_; }

 private:
  hwloc_bitmap_t bitmap_;
};

// The package containing every CPU of `set`: the deepest object covering the set is a
// package or lies below one. A set spanning packages is covered only by the machine (or
// a group above the packages), which has no package ancestor: -1.
int packageOf(hwloc_topology_t topology, hwloc_const_cpuset_t set) {
  hwloc_obj_t obj = hwloc_get_obj_covering_cpuset(topology, set);
  if (obj == nullptr) return -1;
  if (obj->type != HWLOC_OBJ_PACKAGE) {
    obj = hwloc_get_ancestor_obj_by_type(topology, HWLOC_OBJ_PACKAGE, obj);
  }
  return obj ? static_cast<int>(obj->logical_index) : -1;
}

// The NUMA node whose CPUs contain `set`. In hwloc 2 NUMA nodes are memory children off
// the main tree, so no ancestor walk reaches them: scan the nodes whose CPUs meet the set.
// Several nodes may hold the same CPUs (DRAM next to HBM or CXL memory); the lowest
// logical index wins, the same choice on every rank of the machine.
// *memoryNode: the same node's number for the kernel (its os_index), or -1.
int numaNodeOf(hwloc_topology_t topology, hwloc_const_cpuset_t set, int* memoryNode) {
  int found = -1;
  *memoryNode = -1;
  hwloc_obj_t obj = nullptr;
  while ((obj = hwloc_get_next_obj_covering_cpuset_by_type(topology, set, HWLOC_OBJ_NUMANODE,
                                                           obj)) != nullptr) {
    if (!hwloc_bitmap_isincluded(set, obj->cpuset)) return -1;  // the set spans nodes
    const int index = static_cast<int>(obj->logical_index);
    if (found < 0 || index < found) {
      found = index;
      *memoryNode = obj->os_index == HWLOC_UNKNOWN_INDEX ? -1 : static_cast<int>(obj->os_index);
    }
  }
  return found;
}

// Fills package / numaNode from the best CPU set available, in order of trust:
//  1. the process's binding, when it is narrower than the whole machine (a launcher's
//     --bind-to): it holds for the process's lifetime;
//  2. the CPUs the process's threads last ran on;
//  3. the CPU the calling thread last ran on: one CPU, so always inside one package,
//     though the scheduler may move an unbound process later.
// The first set that yields both a package and a NUMA node wins; else the first that
// yields a package. Nothing usable leaves -1: an unknown location is no error.
void locate(hwloc_topology_t topology, Locality* out) {
  Bitmap set;
  if (set.get() == nullptr) return;
  bool havePackage = false;
  auto consider = [&]() {
    if (hwloc_bitmap_iszero(set.get())) return false;
    const int package = packageOf(topology, set.get());
    int memoryNode = -1;
    const int numaNode = numaNodeOf(topology, set.get(), &memoryNode);
    if (package >= 0 && !havePackage) {
      havePackage = true;
      out->package = package;
      out->numaNode = numaNode;
      out->memoryNode = memoryNode;
    }
    if (package >= 0 && numaNode >= 0) {
      out->package = package;
      out->numaNode = numaNode;
      out->memoryNode = memoryNode;
      return true;
    }
    return false;
  };
  const hwloc_const_cpuset_t machine = hwloc_topology_get_topology_cpuset(topology);
  if (hwloc_get_cpubind(topology, set.get(), HWLOC_CPUBIND_PROCESS) == 0 &&
      !hwloc_bitmap_isincluded(machine, set.get()) && consider()) {
    return;
  }
  if (hwloc_get_last_cpu_location(topology, set.get(), HWLOC_CPUBIND_PROCESS) == 0 && consider()) {
    return;
  }
  if (hwloc_get_last_cpu_location(topology, set.get(), HWLOC_CPUBIND_THREAD) == 0) consider();
}

// Probes are rare (one per communicator init), so serialising them costs nothing and
// spares us relying on which hwloc queries are safe to run concurrently.
std::mutex& topologyMutex() {
  static std::mutex mutex;
  return mutex;
}

CachedTopology& cachedTopology() {
  static CachedTopology cached;
  return cached;
}

}  // namespace

Status probeLocality(Locality* out) {
  if (out == nullptr) return invalidArgument("probeLocality: null output");
  *out = Locality{};
  try {
    std::lock_guard<std::mutex> lock(topologyMutex());
    CachedTopology& cached = cachedTopology();
    if (!cached.status().isOk()) return cached.status();
    *out = cached.counts();
    locate(cached.get(), out);
    return Status::ok();
  } catch (const std::exception& e) {
    return internalError(std::string("probeLocality: ") + e.what());
  }
}

bool NodeLayout::uniform() const {
  for (const std::vector<int>& node : nodes) {
    if (node.size() != nodes.front().size()) return false;
  }
  return true;
}

int NodeLayout::maxRanksPerNode() const {
  size_t most = 0;
  for (const std::vector<int>& node : nodes) most = std::max(most, node.size());
  return static_cast<int>(most);
}

NodeLayout groupByNode(const std::vector<std::string>& nodeNameOfRank,
                       const std::vector<Locality>& localityOfRank) {
  NodeLayout layout;
  const int nranks = static_cast<int>(nodeNameOfRank.size());
  layout.nodeOfRank.assign(nodeNameOfRank.size(), -1);
  // Visiting ranks in order numbers the nodes by their lowest rank.
  std::unordered_map<std::string, int> indexOfName;
  for (int rank = 0; rank < nranks; ++rank) {
    const auto inserted = indexOfName.emplace(nodeNameOfRank[static_cast<size_t>(rank)],
                                              static_cast<int>(layout.nodes.size()));
    if (inserted.second) layout.nodes.emplace_back();
    const int node = inserted.first->second;
    layout.nodes[static_cast<size_t>(node)].push_back(rank);
    layout.nodeOfRank[static_cast<size_t>(rank)] = node;
  }
  auto key = [&](int rank) {
    const Locality where = static_cast<size_t>(rank) < localityOfRank.size()
                               ? localityOfRank[static_cast<size_t>(rank)]
                               : Locality{};
    return std::make_tuple(where.package, where.numaNode, rank);
  };
  for (std::vector<int>& node : layout.nodes) {
    std::sort(node.begin(), node.end(), [&](int a, int b) { return key(a) < key(b); });
  }
  return layout;
}

std::string describe(const NodeLayout& layout) {
  std::string text =
      std::to_string(layout.nodes.size()) + (layout.nodes.size() == 1 ? " node:" : " nodes:");
  for (const std::vector<int>& node : layout.nodes) {
    text += " {";
    for (size_t k = 0; k < node.size(); ++k) {
      if (k) text += ",";
      text += std::to_string(node[k]);
    }
    text += "}";
  }
  return text;
}

std::string describe(const Locality& locality) {
  auto index = [](int i) { return i < 0 ? std::string("?") : std::to_string(i); };
  return "package " + index(locality.package) + "/" + std::to_string(locality.packages) +
         ", NUMA node " + index(locality.numaNode) + "/" + std::to_string(locality.numaNodes) +
         ", " + std::to_string(locality.cores) + (locality.cores == 1 ? " core" : " cores");
}

}  // namespace ftccl
