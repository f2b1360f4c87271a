#include "stats/stats_json.h"

#include <cinttypes>
#include <cmath>
#include <cstdio>

namespace ftccl {
namespace {

class Json {
 public:
  Json& key(const char* name) {
    comma();
    text_ += '"';
    text_ += name;
    text_ += "\":";
    fresh_ = true;
    return *this;
  }
  Json& open(char bracket) {
    comma();
    text_ += bracket;
    fresh_ = true;
    return *this;
  }
  Json& close(char bracket) {
    text_ += bracket;
    fresh_ = false;
    return *this;
  }
  Json& number(double v, const char* format = "%.3f") {
    comma();
    if (!std::isfinite(v)) v = 0;
    char buf[64];
    std::snprintf(buf, sizeof(buf), format, v);
    text_ += buf;
    return *this;
  }
  Json& integer(uint64_t v) {
    comma();
    text_ += std::to_string(v);
    return *this;
  }
  Json& integer(int64_t v) {
    comma();
    text_ += std::to_string(v);
    return *this;
  }
  Json& boolean(bool v) {
    comma();
    text_ += v ? "true" : "false";
    return *this;
  }
  Json& string(const std::string& v) {
    comma();
    text_ += '"';
    for (char c : v) {
      if (c == '"' || c == '\\') {
        text_ += '\\';
        text_ += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\u%04x", c);
        text_ += buf;
      } else {
        text_ += c;
      }
    }
    text_ += '"';
    return *this;
  }
  std::string take() { return std::move(text_); }

 private:
  // A value or key after another in the same object or array takes a comma.
  void comma() {
    if (!fresh_ && !text_.empty() && text_.back() != '{' && text_.back() != '[') text_ += ',';
    fresh_ = false;
  }
  std::string text_;
  bool fresh_ = true;
};

double gbps(uint64_t bytes, uint64_t ns) {
  return ns ? static_cast<double>(bytes) / static_cast<double>(ns) : 0.0;
}

void totals(Json& j, const KindTotals& t) {
  j.key("ops").integer(t.ops);
  j.key("bytes").integer(t.bytes);
  j.key("time_us").number(static_cast<double>(t.timeNs) / 1000.0, "%.1f");
  j.key("busbw_gbps").number(gbps(t.busBytes, t.timeNs), "%.4f");
}

KindTotals sum(const CommStats& s) {
  KindTotals all;
  for (const KindTotals& k : s.kinds) {
    all.ops += k.ops;
    all.bytes += k.bytes;
    all.busBytes += k.busBytes;
    all.timeNs += k.timeNs;
  }
  return all;
}

const PeerStats* samePeer(const CommStats* previous, const PeerStats& p) {
  if (previous == nullptr) return nullptr;
  for (const PeerStats& q : previous->peers) {
    if (q.pid == p.pid && q.host == p.host) return &q;
  }
  return nullptr;
}

void interval(Json& j, const CommStats& now, const CommStats& before) {
  KindTotals a = sum(now), b = sum(before);
  uint64_t timeNs = a.timeNs - b.timeNs;
  j.key("interval").open('{');
  j.key("ms").number((now.unixTime - before.unixTime) * 1000.0, "%.1f");
  j.key("ops").integer(a.ops - b.ops);
  j.key("bytes").integer(a.bytes - b.bytes);
  j.key("time_us").number(static_cast<double>(timeNs) / 1000.0, "%.1f");
  j.key("busbw_gbps").number(gbps(a.busBytes - b.busBytes, timeNs), "%.4f");
  // Mean wait per collective (progress_board.h), within one epoch only.
  if (now.epoch == before.epoch && now.progress.done > before.progress.done) {
    double waitUs = static_cast<double>(now.progress.waitUs - before.progress.waitUs);
    j.key("wait_us_per_op")
        .number(waitUs / static_cast<double>(now.progress.done - before.progress.done), "%.1f");
  }
  j.close('}');
}

// `before` is the same peer in the previous line, `seconds` the wall time between them.
void peer(Json& j, const PeerStats& p, const PeerStats* before, double seconds) {
  j.open('{');
  j.key("rank").integer(static_cast<int64_t>(p.rank));
  j.key("host").string(p.host);
  j.key("pid").integer(static_cast<int64_t>(p.pid));
  j.key("sent_bytes").integer(p.sentBytes);
  j.key("recv_bytes").integer(p.recvBytes);
  j.key("send_busy_us").number(static_cast<double>(p.sendBusyNs) / 1000.0, "%.1f");
  j.key("recv_busy_us").number(static_cast<double>(p.recvBusyNs) / 1000.0, "%.1f");
  // The interval's traffic over its wall time: always known, but a link idle half the
  // time shows half its rate.
  if (before != nullptr && seconds > 0) {
    j.key("send_traffic_gbps")
        .number(static_cast<double>(p.sentBytes - before->sentBytes) / seconds / 1e9, "%.4f");
    j.key("recv_traffic_gbps")
        .number(static_cast<double>(p.recvBytes - before->recvBytes) / seconds / 1e9, "%.4f");
  }
  // The interval's rate while the link was in use; none when it carried no timed transfer
  // (pipelined chunks under kTimedBytes are not timed: link_counters.h).
  if (before != nullptr && p.sendTimedBytes > before->sendTimedBytes) {
    j.key("send_gbps")
        .number(gbps(p.sendTimedBytes - before->sendTimedBytes, p.sendBusyNs - before->sendBusyNs),
                "%.4f");
  }
  if (before != nullptr && p.recvTimedBytes > before->recvTimedBytes) {
    j.key("recv_gbps")
        .number(gbps(p.recvTimedBytes - before->recvTimedBytes, p.recvBusyNs - before->recvBusyNs),
                "%.4f");
  }
  if (p.rttSamples > 0) {
    j.key("rtt_ms").open('{');
    j.key("samples").integer(p.rttSamples);
    j.key("min").number(p.rttMinMs, "%.4f");
    j.key("avg").number(p.rttAvgMs, "%.4f");
    j.key("p99").number(p.rttP99Ms, "%.4f");
    j.key("last").number(p.rttLastMs, "%.4f");
    j.close('}');
  }
  j.key("link_degraded").boolean(p.linkDegraded);
  if (p.lateKnown) j.key("late_ms").number(p.lateMs, "%.2f");
  j.close('}');
}

}  // namespace

std::string statsJson(const CommStats& s, const CommStats* previous) {
  if (previous != nullptr && previous->commId != s.commId) previous = nullptr;
  Json j;
  j.open('{');
  j.key("v").integer(int64_t{1});
  j.key("time").number(s.unixTime, "%.3f");
  j.key("host").string(s.host);
  j.key("pid").integer(static_cast<int64_t>(s.pid));
  char comm[24];
  std::snprintf(comm, sizeof(comm), "%016" PRIx64, s.commId);
  j.key("comm").string(comm);
  j.key("epoch").integer(s.epoch);
  j.key("rank").integer(static_cast<int64_t>(s.rank));
  j.key("nranks").integer(static_cast<int64_t>(s.nranks));
  j.key("final").boolean(s.final);
  j.key("total").open('{');
  totals(j, sum(s));
  j.close('}');
  j.key("colls").open('{');
  for (int k = 0; k < kStatKinds; ++k) {
    if (s.kinds[k].ops == 0) continue;
    j.key(statKindName(k)).open('{');
    totals(j, s.kinds[k]);
    j.close('}');
  }
  j.close('}');
  if (previous != nullptr) interval(j, s, *previous);
  j.key("progress").open('{');
  j.key("started").integer(s.progress.started);
  j.key("done").integer(s.progress.done);
  j.key("in_op").boolean(s.progress.inOp);
  j.key("op").string(statKindName(s.progress.kind));
  j.key("step").integer(uint64_t{s.progress.step});
  j.key("state_ms").number(s.progress.stateMs, "%.0f");
  j.close('}');
  j.key("peers").open('[');
  double seconds = previous != nullptr ? s.unixTime - previous->unixTime : 0.0;
  for (const PeerStats& p : s.peers) peer(j, p, samePeer(previous, p), seconds);
  j.close(']');
  j.key("stragglers").open('[');
  for (const PeerStats& p : s.peers) {
    if (!p.straggler) continue;
    j.open('{');
    j.key("rank").integer(static_cast<int64_t>(p.rank));
    j.key("host").string(p.host);
    j.key("pid").integer(static_cast<int64_t>(p.pid));
    j.key("late_ms").number(p.lateMs, "%.2f");
    j.key("ops").integer(p.lateOps);
    j.close('}');
  }
  j.close(']');
  j.key("slow_links").open('[');
  for (const PeerStats& p : s.peers) {
    if (!p.linkDegraded) continue;
    j.open('{');
    j.key("rank").integer(static_cast<int64_t>(p.rank));
    j.key("host").string(p.host);
    j.key("pid").integer(static_cast<int64_t>(p.pid));
    j.key("rtt_ms").number(p.rttLevelMs, "%.4f");
    j.key("baseline_ms").number(p.rttBaselineMs, "%.4f");
    j.close('}');
  }
  j.close(']');
  j.close('}');
  return j.take();
}

}  // namespace ftccl
