// Shared by the fault test programs: the process's place in the job, and the stamp
// file through which a victim tells the survivors when it injected its fault (one
// host, one steady clock), so they can time detection and recovery without talking.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace faulttest {

inline double nowMs() {
  using Clock = std::chrono::steady_clock;
  return std::chrono::duration<double, std::milli>(Clock::now().time_since_epoch()).count();
}

inline int envInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

// ftccl_run sets FTCCL_RANK/NRANKS; under mpirun, Open MPI's own variables serve.
inline int processIndex() { return envInt("FTCCL_RANK", envInt("OMPI_COMM_WORLD_RANK", -1)); }
inline int processCount() { return envInt("FTCCL_NRANKS", envInt("OMPI_COMM_WORLD_SIZE", -1)); }

// `keepFirst`: a later victim leaves the first one's stamp in place.
inline void writeStamp(const std::string& file, bool keepFirst) {
  if (file.empty() || (keepFirst && access(file.c_str(), F_OK) == 0)) return;
  if (FILE* f = std::fopen(file.c_str(), "w")) {
    std::fprintf(f, "%.3f\n", nowMs());
    std::fclose(f);
  }
}

// -1 when there is no stamp (yet).
inline double readStamp(const std::string& file) {
  double stamp = -1;
  if (FILE* f = file.empty() ? nullptr : std::fopen(file.c_str(), "r")) {
    if (std::fscanf(f, "%lf", &stamp) != 1) stamp = -1;
    std::fclose(f);
  }
  return stamp;
}

}  // namespace faulttest
