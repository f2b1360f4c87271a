// ftccl_sim: the fault-tolerance protocol (health, agreement, rebuild) at scale, on a
// simulated network in virtual time, deterministic by seed.
//
// usage: ftccl_sim [--ranks 1000,10000] [--spares 8] [--scenarios crash,hang,...|all]
//                  [--seeds 1] [--first-seed 1] [--probe-ms 10] [--timeout-ms 30] [--latency-us 5]
//                  [--jitter-us 1] [--loss 0] [--handling-us 2] [--ranks-per-host 8]
//                  [--hosts-per-rack 32] [--healthy-ms 1000]
//                  [--csv out.csv] [--png out.png]
//        ftccl_sim --plot joined.csv --png out.png   (draws an existing CSV)
// Prints one row per scenario, size and seed; exits 1 if any invariant broke.
#include <sys/resource.h>

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
std::chrono::nanoseconds microseconds(const std::string& text) {
  return std::chrono::nanoseconds(static_cast<int64_t>(std::atof(text.c_str()) * 1000));
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "ftccl_sim: %s (see the comment at the top of tools/ftccl_sim/main.cc)\n",
               why);
  std::exit(2);
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

int main(int argc, char** argv) {
  ClusterConfig base;
  std::vector<int> sizes{1000};
  std::vector<std::string> scenarios = ftccl::simtool::scenarioNames();
  int seeds = 1, firstSeed = 1;
  std::string csv, png, plotOnly;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) usage(("missing value for " + flag).c_str());
    std::string value = argv[++i];
    if (flag == "--ranks") {
      sizes.clear();
      for (const std::string& s : split(value)) sizes.push_back(std::atoi(s.c_str()));
    } else if (flag == "--spares")
      base.spares = std::atoi(value.c_str());
    else if (flag == "--scenarios")
      scenarios = value == "all" ? scenarios : split(value);
    else if (flag == "--seeds")
      seeds = std::atoi(value.c_str());
    else if (flag == "--first-seed")
      firstSeed = std::atoi(value.c_str());
    else if (flag == "--probe-ms")
      base.probeIntervalMs = std::atoi(value.c_str());
    else if (flag == "--timeout-ms")
      base.failureTimeoutMs = std::atoi(value.c_str());
    else if (flag == "--latency-us")
      base.latency = microseconds(value);
    else if (flag == "--jitter-us")
      base.jitter = microseconds(value);
    else if (flag == "--loss")
      base.datagramLoss = std::atof(value.c_str());
    else if (flag == "--handling-us")
      base.handling = microseconds(value);
    else if (flag == "--ranks-per-host")
      base.ranksPerHost = std::atoi(value.c_str());
    else if (flag == "--hosts-per-rack")
      base.hostsPerRack = std::atoi(value.c_str());
    else if (flag == "--csv")
      csv = value;
    else if (flag == "--png")
      png = value;
    else if (flag == "--healthy-ms")
      base.healthyMs = std::max(10, std::atoi(value.c_str()));
    else if (flag == "--plot")
      plotOnly = value;
    else
      usage(("unknown option " + flag).c_str());
  }
  if (!plotOnly.empty()) {  // only draw an existing CSV (e.g. runs of several sizes joined)
    if (png.empty()) usage("--plot needs --png");
    plot(png, plotOnly);
    return 0;
  }
  for (const std::string& s : scenarios) {
    const auto& known = ftccl::simtool::scenarioNames();
    if (std::find(known.begin(), known.end(), s) == known.end())
      usage(("unknown scenario " + s).c_str());
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
  if (!png.empty()) {
    if (csv.empty()) usage("--png needs --csv");
    plot(png, csv);
  }
  return allHeld ? 0 : 1;
}
