// ftccl_sim: the fault-tolerance protocol (health, agreement, rebuild) at scale, on a
// simulated network in virtual time, deterministic by seed. `ftccl_sim --help` lists the
// options; docs/simulator.md explains what it measures.
// Prints one row per scenario, size and seed; exits 1 if any invariant broke, 2 on bad
// options.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "scenarios.h"

namespace {

using ftccl::simtool::ClusterConfig;
using ftccl::simtool::ScenarioResult;

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// "2.5" (microseconds) -> 2500 ns.
std::chrono::nanoseconds microseconds(double us) {
  return std::chrono::nanoseconds(static_cast<int64_t>(us * 1000));
}

constexpr const char* kUsage = R"(usage: ftccl_sim [options]
       ftccl_sim --plot JOINED.csv --png OUT.png    (only draws an existing CSV)

Runs the library's health, agreement and rebuild code on a simulated network in
virtual time: one row per rank count, scenario and seed; exit status 1 if any
invariant broke.

  --ranks N[,N...]       rank counts to simulate (default 1000; at least 3)
  --spares N             hot spares beside the ranks (default 8; 0 shrinks)
  --scenarios LIST|all   comma-separated (default all), from:
                         %s
  --seeds N              seeds per scenario and size (default 1)
  --first-seed N         the first seed (default 1)
  --probe-ms N           health probe interval (default 10)
  --timeout-ms N         failure timeout, at least 3 probe intervals (default 30)
  --latency-us X         one-way latency between hosts (default 5)
  --jitter-us X          latency jitter (default 1)
  --loss P               datagram loss probability (default 0)
  --handling-us X        CPU time to handle one health message (default 2)
  --ranks-per-host N     processes per simulated host (default 8)
  --hosts-per-rack N     hosts per simulated rack (default 32)
  --healthy-ms N         virtual time the healthy scenario measures traffic over (default 1000)
  --csv FILE             also write the rows as CSV
  --png FILE             plot the CSV with gnuplot (needs --csv)
  -h, --help             this text
)";

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "ftccl_sim: %s (ftccl_sim --help lists the options)\n", why.c_str());
  std::exit(2);
}

void printHelp() {
  std::string names;
  for (const std::string& s : ftccl::simtool::scenarioNames())
    names += (names.empty() ? "" : ",") + s;
  std::printf(kUsage, names.c_str());
}

// Whole-string numbers only: "10ms" or "" is an error, not 10 or 0.
long parseInt(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || v < 0 || v > 100000000)
    usage(flag + " wants a non-negative integer, not '" + text + "'");
  return v;
}

// Microsecond and probability arguments: finite, non-negative and at most a second of
// latency (beyond that the nanosecond clocks would overflow long before it means anything).
double parseReal(const std::string& flag, const std::string& text) {
  constexpr double kLargest = 1e6;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(v) || v < 0 || v > kLargest)
    usage(flag + " wants a number from 0 to 1e6, not '" + text + "'");
  return v;
}

double peakRssMiB() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;
}

void writeCsv(const std::string& path, const std::vector<ScenarioResult>& rows) {
  std::ofstream out(path);
  out << "scenario,ranks,spares,seed,detection_ms,informed_ms,rebuilt_ms,agreement_rebuild_ms,"
         "frames_per_rank_s,bytes_per_rank_s,final_epoch,final_ranks,final_spares,expelled,"
         "events,wall_s,violations\n";
  for (const ScenarioResult& r : rows) {
    const double agreement =
        r.rebuiltMs >= 0 && r.detectionMs >= 0 ? r.rebuiltMs - r.detectionMs : -1;
    out << r.scenario << ',' << r.ranks << ',' << r.spares << ',' << r.seed << ',' << r.detectionMs
        << ',' << r.informedMs << ',' << r.rebuiltMs << ',' << agreement << ','
        << r.framesPerRankPerSec << ',' << r.bytesPerRankPerSec << ',' << r.finalEpoch << ','
        << r.finalRanks << ',' << r.finalSpares << ',' << r.expelled << ',' << r.events << ','
        << r.wallSeconds << ',' << r.violations.size() << '\n';
  }
}

// Detection and agreement + rebuild against ranks, one line per scenario (gnuplot).
void plot(const std::string& png, const std::string& csv) {
  std::string script =
      "set terminal pngcairo size 1100,500; set output '" + png +
      "';"
      "set datafile separator ','; set logscale x; set xlabel 'ranks'; set grid;"
      "set key left top; set multiplot layout 1,2;"
      "set ylabel 'ms after the fault'; set title 'detection and agreement + rebuild';"
      "plot for [s in 'crash hang host rack coordrack double'] '" +
      csv +
      "' using (strcol(1) eq s ? $2 : 1/0):5 with points title s.' detect', "
      "for [s in 'crash hang host rack coordrack double'] '" +
      csv +
      "' using (strcol(1) eq s ? $2 : 1/0):8 with points title s.' rebuild';"
      "set ylabel 'frames per rank per second'; set title 'healthy-state probe traffic'; set "
      "yrange [0:*];"
      "plot '" +
      csv +
      "' using (strcol(1) eq 'healthy' ? $2 : 1/0):9 with linespoints title 'healthy';"
      "unset multiplot";
  if (std::system("command -v gnuplot > /dev/null 2>&1") != 0) {
    std::fprintf(stderr, "ftccl_sim: gnuplot not found: no %s\n", png.c_str());
    return;
  }
  // Through a script file: on a command line the shell would expand gnuplot's $2.
  const std::string scriptPath = png + ".gp";
  std::ofstream(scriptPath) << script << "\n";
  if (std::system(("gnuplot '" + scriptPath + "' 2>&1").c_str()) != 0) {
    std::fprintf(stderr, "ftccl_sim: gnuplot failed\n");
  }
  std::remove(scriptPath.c_str());
}

}  // namespace

// The simulated processes' state is gigabytes touched at random (2 GiB at 100,000 ranks):
// with 4 KiB pages nearly every access also missed the TLB. glibc backs its heap with
// transparent huge pages only when told at startup, so the tool runs itself again with
// the tunable set (where the kernel allows them per madvise): a 100,000-rank rack ran
// in 132 s instead of 155, 30,000 ranks in 32 s instead of 45, the same rows bit for
// bit. FTCCL_SIM_HUGEPAGES=0 keeps the default.
void runOnHugePages(char** argv) {
  constexpr const char* kTunable = "glibc.malloc.hugetlb=1";
  const char* off = std::getenv("FTCCL_SIM_HUGEPAGES");
  if (off && std::strcmp(off, "0") == 0) return;
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  std::string value = tunables ? tunables : "";
  if (value.find("glibc.malloc.hugetlb") != std::string::npos) return;  // set, or ours
  value += value.empty() ? kTunable : std::string(":") + kTunable;
  if (setenv("GLIBC_TUNABLES", value.c_str(), 1) != 0) return;
  execv("/proc/self/exe", argv);  // returns only on failure: go on as we are
}

int main(int argc, char** argv) {
  runOnHugePages(argv);
  ClusterConfig base;
  std::vector<int> sizes{1000};
  std::vector<std::string> scenarios = ftccl::simtool::scenarioNames();
  int seeds = 1, firstSeed = 1;
  std::string csv, png, plotOnly;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      printHelp();
      return 0;
    }
    if (i + 1 >= argc) usage("missing value for " + flag);
    std::string value = argv[++i];
    auto integer = [&] { return static_cast<int>(parseInt(flag, value)); };
    auto us = [&] { return microseconds(parseReal(flag, value)); };
    if (flag == "--ranks") {
      sizes.clear();
      for (const std::string& s : split(value))
        sizes.push_back(static_cast<int>(parseInt(flag, s)));
      if (sizes.empty()) usage("--ranks wants at least one count");
    } else if (flag == "--spares")
      base.spares = integer();
    else if (flag == "--scenarios") {
      scenarios = value == "all" ? ftccl::simtool::scenarioNames() : split(value);
      if (scenarios.empty()) usage("--scenarios wants at least one scenario");
    } else if (flag == "--seeds")
      seeds = integer();
    else if (flag == "--first-seed")
      firstSeed = integer();
    else if (flag == "--probe-ms")
      base.probeIntervalMs = integer();
    else if (flag == "--timeout-ms")
      base.failureTimeoutMs = integer();
    else if (flag == "--latency-us")
      base.latency = us();
    else if (flag == "--jitter-us")
      base.jitter = us();
    else if (flag == "--loss")
      base.datagramLoss = parseReal(flag, value);
    else if (flag == "--handling-us")
      base.handling = us();
    else if (flag == "--ranks-per-host")
      base.ranksPerHost = integer();
    else if (flag == "--hosts-per-rack")
      base.hostsPerRack = integer();
    else if (flag == "--csv")
      csv = value;
    else if (flag == "--png")
      png = value;
    else if (flag == "--healthy-ms")
      base.healthyMs = std::max(10, integer());
    else if (flag == "--plot")
      plotOnly = value;
    else
      usage("unknown option " + flag);
  }
  if (base.datagramLoss > 1) usage("--loss is a probability, at most 1");
  if (base.probeIntervalMs < 1) usage("--probe-ms must be at least 1");
  if (seeds < 1) usage("--seeds must be at least 1");
  if (base.ranksPerHost < 1 || base.hostsPerRack < 1) usage("hosts and racks hold at least one");
  if (!png.empty() && csv.empty() && plotOnly.empty()) usage("--png needs --csv");
  if (!plotOnly.empty()) {  // only draw an existing CSV (e.g. runs of several sizes joined)
    if (png.empty()) usage("--plot needs --png");
    plot(png, plotOnly);
    return 0;
  }
  for (const std::string& s : scenarios) {
    const auto& known = ftccl::simtool::scenarioNames();
    if (std::find(known.begin(), known.end(), s) == known.end()) usage("unknown scenario " + s);
  }
  for (int n : sizes) {
    if (n < 3) usage("--ranks must be at least 3");
  }
  if (base.failureTimeoutMs < 3 * base.probeIntervalMs)
    usage("--timeout-ms must be >= 3 probe intervals");
  setenv("FTCCL_DEBUG", "off", 0);  // one log line per survivor and failure is too many

  std::printf(
      "# probes %d ms, failure timeout %d ms, latency %.1f us (host %.1f us), jitter %.1f us, loss "
      "%.3f, %.1f us to handle a message\n",
      base.probeIntervalMs, base.failureTimeoutMs, base.latency.count() / 1e3,
      base.hostLatency.count() / 1e3, base.jitter.count() / 1e3, base.datagramLoss,
      base.handling.count() / 1e3);
  std::printf("%-9s %7s %6s %4s %9s %9s %9s %9s %10s %11s %6s %8s %10s %7s %8s %s\n", "scenario",
              "ranks", "spares", "seed", "detect", "informed", "rebuilt", "agree+rb", "frames/r/s",
              "bytes/r/s", "epoch", "ranks'", "events", "wall_s", "rss_MiB", "invariants");
  std::vector<ScenarioResult> rows;
  bool allHeld = true;
  for (int n : sizes) {
    for (const std::string& scenario : scenarios) {
      for (int seed = firstSeed; seed < firstSeed + seeds; ++seed) {
        ClusterConfig config = base;
        config.ranks = n;
        config.seed = static_cast<uint64_t>(seed);
        ScenarioResult r = ftccl::simtool::runScenario(scenario, config);
        const double agreement =
            r.rebuiltMs >= 0 && r.detectionMs >= 0 ? r.rebuiltMs - r.detectionMs : -1;
        std::printf(
            "%-9s %7d %6d %4llu %9.2f %9.2f %9.2f %9.2f %10.1f %11.1f %6llu %8d %10llu %7.1f %8.0f "
            "%s\n",
            r.scenario.c_str(), r.ranks, r.spares, static_cast<unsigned long long>(r.seed),
            r.detectionMs, r.informedMs, r.rebuiltMs, agreement, r.framesPerRankPerSec,
            r.bytesPerRankPerSec, static_cast<unsigned long long>(r.finalEpoch), r.finalRanks,
            static_cast<unsigned long long>(r.events), r.wallSeconds, peakRssMiB(),
            r.violations.empty() ? "held" : "BROKEN");
        if (r.scenario == "slowlink") {
          std::printf("#   slow link %s, round trips up to %.2f ms\n",
                      r.slowLinkFlagged ? "flagged" : "NOT flagged", r.slowLinkRoundTripMs);
        }
        if (!r.violations.empty()) std::printf("#   after: %s\n", r.faults.c_str());
        for (const std::string& v : r.violations) std::printf("#   %s\n", v.c_str());
        std::fflush(stdout);
        allHeld = allHeld && r.violations.empty();
        rows.push_back(r);
      }
    }
  }
  if (!csv.empty()) writeCsv(csv, rows);
  if (!png.empty()) plot(png, csv);
  return allHeld ? 0 : 1;
}
