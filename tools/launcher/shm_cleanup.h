// Shared-memory files that killed ranks left behind.
#pragma once

#include <ctime>
#include <string>

namespace ftrun {

// Removes the UCX POSIX shared-memory files under `dir` (/dev/shm) created at or after
// `since` that no process holds open or mapped any more. Returns how many it removed.
//
// Why: UCX creates a segment as <dir>/ucx_shm_posix_<id>, writes all of it (to check
// that the memory is there) and only then unlinks it, sharing it through
// /proc/<pid>/fd from then on. A rank killed in between leaves the file, and its memory,
// for good: a day of chaos campaigns left 45 files, 112 MB. Another job's file in that
// same window is open by its creator, so it is kept.
int removeOrphanedUcxSegments(const std::string& dir, std::time_t since);

}  // namespace ftrun
