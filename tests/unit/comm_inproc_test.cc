// Whole communicators, from the C API down, in one process: a thread per rank, each on
// endpoints of an in-process data fabric (transports/sim/sim_world.h) and a health
// service of its own on loopback, so bootstrap, health, agreement, rebuild, tuning and
// the algorithms run as in production while the test holds every rank. Faults come from
// the test's thread, outside the victim, at a moment the victim does not choose.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "core/comm_services.h"
#include "ftccl.h"
#include "transports/sim/sim_world.h"

namespace ftccl {
namespace {

// What the test keeps of each rank's services, to kill it from outside.
struct RankServices {
  std::mutex mutex;
  std::vector<std::vector<uint8_t>> addresses;  // every endpoint it made (standbys too)
  std::shared_ptr<HealthService> health;
};

class InProcessJob {
 public:
  explicit InProcessJob(int processes) : ranks_(static_cast<size_t>(processes)) {}

  CommServices servicesFor(int process) {
    RankServices& mine = ranks_[static_cast<size_t>(process)];
    CommServices services;
    services.makeTransport = [this, &mine](const std::string&,
                                           std::unique_ptr<WorldTransport>* out) {
      *out = world_.makeEndpoint();
      std::lock_guard<std::mutex> lock(mine.mutex);
      mine.addresses.push_back((*out)->workerAddress());
      return Status::ok();
    };
    services.acquireHealth = [&mine](const std::string& host, uint16_t port,
                                     std::shared_ptr<HealthService>* out) {
      std::lock_guard<std::mutex> lock(mine.mutex);
      if (!mine.health) FTCCL_CHECK(HealthService::create(&mine.health, host, port));
      *out = mine.health;
      return Status::ok();
    };
    return services;
  }

  // As SIGKILL would: every endpoint gone, the health sockets closed.
  void kill(int process) {
    RankServices& victim = ranks_[static_cast<size_t>(process)];
    std::lock_guard<std::mutex> lock(victim.mutex);
    for (const auto& address : victim.addresses) world_.kill(address);
    if (victim.health) victim.health->injectCrash();
  }

 private:
  sim::SimWorld world_;
  std::vector<RankServices> ranks_;
};

ftcclConfig_t testConfig(int spares) {
  ftcclConfig_t config = FTCCL_CONFIG_INITIALIZER;
  config.nSpares = spares;
  config.failureTimeoutMs = 500;
  config.shrinkWhenNoSpares = 1;
  return config;
}

// Each rank contributes rank + 1 at every element: the sum is n (n + 1) / 2.
bool allReduceChecked(ftcclComm_t comm, size_t count, ftcclResult_t* result) {
  int rank = -1, nranks = 0;
  ftcclCommUserRank(comm, &rank);
  ftcclCommCount(comm, &nranks);
  std::vector<float> in(count, static_cast<float>(rank + 1)), out(count, -1.0f);
  *result = ftcclAllReduce(in.data(), out.data(), count, ftcclFloat32, ftcclSum, comm, nullptr);
  if (*result != ftcclSuccess) return true;
  const float expected = static_cast<float>(nranks * (nranks + 1) / 2);
  for (float v : out) {
    if (v != expected) return false;
  }
  return true;
}

TEST(InProcessCommunicator, EveryCollectiveOnFiveRankThreads) {
  constexpr int kRanks = 5;
  InProcessJob job(kRanks);
  ftcclUniqueId id;
  ASSERT_EQ(ftcclGetUniqueId(&id), ftcclSuccess);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r) {
    threads.emplace_back([&, r] {
      ScopedCommServices services(job.servicesFor(r));
      ftcclConfig_t config = testConfig(0);
      ftcclComm_t comm = nullptr;
      if (ftcclCommInitRankConfig(&comm, kRanks, id, r, &config) != ftcclSuccess) {
        ++failures;
        return;
      }
      for (size_t count : {size_t{0}, size_t{1}, size_t{1003}, size_t{300000}}) {
        ftcclResult_t result;
        if (!allReduceChecked(comm, count, &result) || result != ftcclSuccess) ++failures;
        std::vector<int32_t> value(count + 1, r == 2 ? 42 : -1);
        if (ftcclBroadcast(value.data(), value.data(), value.size(), ftcclInt32, 2, comm,
                           nullptr) != ftcclSuccess) {
          ++failures;
        }
        for (int32_t v : value) failures += v == 42 ? 0 : 1;
        std::vector<double> mine(count + 1, r), gathered((count + 1) * kRanks, -1);
        if (ftcclAllGather(mine.data(), gathered.data(), count + 1, ftcclFloat64, comm, nullptr) !=
            ftcclSuccess) {
          ++failures;
        }
        for (size_t i = 0; i < gathered.size(); ++i) {
          failures += gathered[i] == static_cast<double>(i / (count + 1)) ? 0 : 1;
        }
        std::vector<int64_t> parts((count + 1) * kRanks, r), part(count + 1, -1);
        if (ftcclReduceScatter(parts.data(), part.data(), count + 1, ftcclInt64, ftcclMax, comm,
                               nullptr) != ftcclSuccess) {
          ++failures;
        }
        for (int64_t v : part) failures += v == kRanks - 1 ? 0 : 1;
      }
      // A ring of Send/Recv in one group.
      std::vector<uint8_t> out(777, static_cast<uint8_t>(r)), in(777, 0);
      ftcclGroupStart();
      ftcclSend(out.data(), out.size(), ftcclUint8, (r + 1) % kRanks, comm, nullptr);
      ftcclRecv(in.data(), in.size(), ftcclUint8, (r + kRanks - 1) % kRanks, comm, nullptr);
      if (ftcclGroupEnd() != ftcclSuccess) ++failures;
      for (uint8_t v : in) failures += v == (r + kRanks - 1) % kRanks ? 0 : 1;
      if (ftcclCommDestroy(comm) != ftcclSuccess) ++failures;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

// Ranks loop over checked all-reduces; the test kills one at a random instant; the
// survivors see the failure, rebuild (`spares` > 0: a spare takes its place, else they
// shrink) and go on, every result checked before and after.
void killOneAndRecover(int ranks, int spares, int victim, uint32_t seed) {
  const int processes = ranks + spares;
  InProcessJob job(processes);
  ftcclUniqueId id;
  ASSERT_EQ(ftcclGetUniqueId(&id), ftcclSuccess);
  std::atomic<int> wrong{0}, unexpected{0}, rebuilt{0}, activated{0}, ready{0};
  std::atomic<bool> killed{false};
  std::vector<std::thread> threads;
  for (int p = 0; p < processes; ++p) {
    threads.emplace_back([&, p] {
      ScopedCommServices services(job.servicesFor(p));
      ftcclConfig_t config = testConfig(spares);
      ftcclComm_t comm = nullptr;
      if (ftcclCommInitRankConfig(&comm, ranks, id, p, &config) != ftcclSuccess) {
        ++unexpected;
        ++ready;
        return;
      }
      ++ready;
      if (p >= ranks) {  // a spare: waits to be given a rank
        int active = 0;
        if (ftcclCommStandby(comm, &active) != ftcclSuccess) ++unexpected;
        if (!active) {
          ftcclCommDestroy(comm);
          return;
        }
        ++activated;
      }
      bool inNewEpoch = p >= ranks;  // an activated spare starts there
      int afterRebuild = 0;
      size_t epochOp = 0;  // sizes follow the op number of the epoch, alike on every rank
      for (int op = 0; afterRebuild < 20 && op < 100000; ++op, ++epochOp) {
        ftcclResult_t result;
        if (!allReduceChecked(comm, 4096 + (epochOp % 3) * 70000, &result)) ++wrong;
        if (result == ftcclSuccess) {
          if (inNewEpoch) ++afterRebuild;
          continue;
        }
        if (p == victim) break;  // its own ops fail once it is dead
        if (result != ftcclRemoteError || !killed) {
          ++unexpected;
          break;
        }
        ftcclRebuildInfo_t info;
        if (ftcclCommRebuild(comm, &info) != ftcclSuccess) {
          ++unexpected;
          break;
        }
        ++rebuilt;
        inNewEpoch = true;
        epochOp = static_cast<size_t>(-1);  // the loop's increment starts it at 0
        if (info.nranks != (spares > 0 ? ranks : ranks - 1)) ++unexpected;
      }
      if (p == victim) {
        ftcclCommAbort(comm);
      } else if (ftcclCommDestroy(comm) != ftcclSuccess) {
        ++unexpected;
      }
    });
  }
  while (ready.load() < processes) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::mt19937 random(seed);
  std::this_thread::sleep_for(std::chrono::milliseconds(20 + random() % 200));
  killed = true;
  job.kill(victim);
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(unexpected.load(), 0);
  EXPECT_EQ(rebuilt.load(), ranks - 1);  // every survivor holding a rank rebuilt once
  EXPECT_EQ(activated.load(), spares > 0 ? 1 : 0);
}

TEST(InProcessCommunicator, AKilledRankIsShrunkAwayAndTheOthersGoOn) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE(seed);
    killOneAndRecover(/*ranks=*/4, /*spares=*/0, /*victim=*/1 + static_cast<int>(seed % 3), seed);
  }
}

TEST(InProcessCommunicator, ASpareTakesAKilledRanksPlace) {
  for (uint32_t seed : {4u, 5u}) {
    SCOPED_TRACE(seed);
    killOneAndRecover(/*ranks=*/3, /*spares=*/1, /*victim=*/static_cast<int>(seed % 3), seed);
  }
}

}  // namespace
}  // namespace ftccl
