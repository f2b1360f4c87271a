#include "launcher/shm_cleanup.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <fstream>
#include <set>
#include <string>

namespace ftrun {
namespace {

constexpr const char* kUcxPosixPrefix = "ucx_shm_posix_";

bool isPid(const char* name) {
  if (*name == '\0') return false;
  for (const char* c = name; *c; ++c) {
    if (!std::isdigit(static_cast<unsigned char>(*c))) return false;
  }
  return true;
}

std::set<std::string> entries(const std::string& dir) {
  std::set<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) names.insert(e->d_name);
    ::closedir(d);
  }
  return names;
}

// Drops from `candidates` every path some process has open (/proc/PID/fd) or mapped
// (/proc/PID/maps, for segments shared by path rather than by descriptor).
void keepThoseInUse(std::set<std::string>* candidates) {
  for (const std::string& pid : entries("/proc")) {
    if (candidates->empty()) return;
    if (!isPid(pid.c_str())) continue;
    const std::string fdDir = "/proc/" + pid + "/fd";
    for (const std::string& fd : entries(fdDir)) {
      char target[4096];
      ssize_t n = ::readlink((fdDir + "/" + fd).c_str(), target, sizeof(target) - 1);
      if (n <= 0) continue;
      target[n] = '\0';
      candidates->erase(target);
    }
    std::ifstream maps("/proc/" + pid + "/maps");
    for (std::string line; std::getline(maps, line);) {
      size_t slash = line.find('/');
      if (slash != std::string::npos) candidates->erase(line.substr(slash));
    }
  }
}

}  // namespace

int removeOrphanedUcxSegments(const std::string& dir, std::time_t since) {
  std::set<std::string> candidates;
  for (const std::string& name : entries(dir)) {
    if (name.compare(0, std::char_traits<char>::length(kUcxPosixPrefix), kUcxPosixPrefix) != 0) {
      continue;
    }
    const std::string path = dir + "/" + name;
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_ctime >= since) {
      candidates.insert(path);
    }
  }
  if (candidates.empty()) return 0;
  keepThoseInUse(&candidates);
  int removed = 0;
  for (const std::string& path : candidates) removed += ::unlink(path.c_str()) == 0 ? 1 : 0;
  return removed;
}

}  // namespace ftrun
