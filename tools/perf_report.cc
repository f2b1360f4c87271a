// The perf tools' results and their formatting; see perf_report.h.
#include "perf_report.h"

#include <cmath>
#include <cstdio>

#include "perf_types.h"

namespace ftperf {

void computeBandwidth(size_t bytes, double seconds, double busFactor, double* algBw,
                      double* busBw) {
  *algBw = seconds > 0 ? static_cast<double>(bytes) / 1.0e9 / seconds : 0.0;
  *busBw = *algBw * busFactor;
}

std::string formatTimeUs(double us) {
  char text[64];
  if (us >= 10000.0) {
    std::snprintf(text, sizeof text, "%7.0f", us);
  } else if (us >= 100.0) {
    std::snprintf(text, sizeof text, "%7.1f", us);
  } else {
    std::snprintf(text, sizeof text, "%7.2f", us);
  }
  return text;
}

std::string formatTableHeader() {
  char line[3][512];
  std::snprintf(line[0], sizeof line[0],
                "# %10s  %12s  %8s  %6s  %6s           out-of-place                       "
                "in-place          ",
                "", "", "", "", "");
  std::snprintf(line[1], sizeof line[1],
                "# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s %6s  %7s  %6s  %6s %6s", "size",
                "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong", "time",
                "algbw", "busbw", "#wrong");
  std::snprintf(line[2], sizeof line[2],
                "# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %5s  %7s  %6s  %6s  %5s", "(B)",
                "(elements)", "", "", "", "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)",
                "(GB/s)", "");
  return std::string(line[0]) + "\n" + line[1] + "\n" + line[2] + "\n";
}

namespace {
std::string formatPlacement(const PlacementResult& r) {
  char text[128];
  if (r.wrong < 0) {
    std::snprintf(text, sizeof text, "  %7s  %6.2f  %6.2f  %5s", formatTimeUs(r.timeUs).c_str(),
                  r.algBw, r.busBw, "N/A");
  } else {
    std::snprintf(text, sizeof text, "  %7s  %6.2f  %6.2f  %5lld", formatTimeUs(r.timeUs).c_str(),
                  r.algBw, r.busBw, r.wrong);
  }
  return text;
}

std::string jsonNumber(double v, const char* fmt) {
  if (!std::isfinite(v)) return "null";
  char text[64];
  std::snprintf(text, sizeof text, fmt, v);
  return text;
}

std::string jsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(c));
          out += esc;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string jsonLibrary(const LibraryCount& c) {
  if (!c.valid) return "null";
  return "{\"ops\":" + std::to_string(c.ops) + ",\"bytes\":" + std::to_string(c.bytes) +
         ",\"sent_bytes\":" + std::to_string(c.sentBytes) +
         ",\"time_us\":" + jsonNumber(c.timeUs, "%.3f") + "}";
}

std::string jsonPlacement(const PlacementResult& r) {
  return "{\"time_us\":" + jsonNumber(r.timeUs, "%.3f") +
         ",\"algbw\":" + jsonNumber(r.algBw, "%.6f") + ",\"busbw\":" + jsonNumber(r.busBw, "%.6f") +
         ",\"wrong\":" + (r.wrong < 0 ? std::string("null") : std::to_string(r.wrong)) +
         ",\"library\":" + jsonLibrary(r.library) + "}";
}
}  // namespace

std::string formatRow(const ResultRow& row) {
  char head[256];
  std::snprintf(head, sizeof head, "%12zu  %12zu  %8s  %6s  %6i", row.bytes, row.count,
                typeName(row.type), row.redop.c_str(), row.root);
  return head + formatPlacement(row.oop) + formatPlacement(row.ip);
}

std::string resultsJson(const char* tool, int nranks, const std::vector<ResultRow>& rows,
                        double avgBusBw, long long wrongTotal) {
  std::string out =
      "{\"tool\":" + jsonString(tool) + ",\"nranks\":" + std::to_string(nranks) + ",\"results\":[";
  for (size_t k = 0; k < rows.size(); ++k) {
    const ResultRow& r = rows[k];
    if (k) out += ",";
    out += "\n  {\"size\":" + std::to_string(r.bytes) + ",\"count\":" + std::to_string(r.count) +
           ",\"type\":" + jsonString(typeName(r.type)) + ",\"redop\":" + jsonString(r.redop) +
           ",\"root\":" + std::to_string(r.root) + ",\"oop\":" + jsonPlacement(r.oop) +
           ",\"ip\":" + jsonPlacement(r.ip) + "}";
  }
  out += "],\n \"avg_busbw\":" + jsonNumber(avgBusBw, "%.6f") +
         ",\"wrong_total\":" + std::to_string(wrongTotal) + "}\n";
  return out;
}

}  // namespace ftperf
