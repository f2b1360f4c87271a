#!/usr/bin/env bash
# Multi-host all-reduce on one machine: K emulated hosts, each a network namespace with
# one link (a veth pair) into a bridge that lives in a namespace of its own, every link
# shaped both ways by tc tbf; L ranks per host, launched by ftccl_run. iperf3 measures
# the shaped link in the same run; all_reduce_perf's busbw per algorithm is reported as
# a fraction of it (the ring's physical limit is busbw = link rate).
#
# Every namespace, link and process this script creates is removed on exit, failure or
# Ctrl-C; names carry the script's pid. Only addresses inside those namespaces are used
# (10.99.0.0/24). Needs root, iproute2 and iperf3.
#
# UCX: between namespaces of one kernel UCX would still pick shared memory, which would
# bypass the shaped links, so every rank runs UCX over TCP (UCX_TLS=tcp,self); ranks of
# one host then talk over their namespace's own stack, unshaped.
#
# usage: bench/multihost.sh [--hosts 4] [--per-host 2] [--rate 1gbit] [--min 64M]
#          [--max 128M] [--algos ring,tree,hier,auto,ompi] [--reps 3] [--iters 5]
#          [--build build]
#          [--degrade HOST:RATE@SEC] [--logs DIR] [--idle-restart on|off]
# --logs DIR keeps every run's output there (run-REP-ALGO.txt).
# --idle-restart off sets net.ipv4.tcp_slow_start_after_idle=0 in every host (a common
# cluster setting): TCP then keeps its window across the pauses between ring steps
# (measured: 4 x 2 ranks at 500 Mbit/s, ring 57% -> 77% of the link; at 1 Gbit/s
# 94% -> 95%).
# --degrade lowers host HOST's link (both ways) to RATE, SEC seconds into every ftccl
# run, and restores it afterwards; the script then reports when the ranks' health
# threads flagged the link ("link to rank R ... degraded" in their logs).
# "ompi" is Open MPI's MPI_Allreduce (pml ucx, the same UCX settings), launched by
# mpirun inside host 0; its PMIx server and out-of-band channel listen on host 0's link,
# since each namespace has a loopback of its own.
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail

hosts=4 per_host=2 rate=1gbit min=64M max=128M algos=ring,tree,hier,auto,ompi reps=3 iters=5
build=build degrade="" logs="" idle_restart=on
while [ $# -gt 0 ]; do
  case $1 in
    --hosts) hosts=$2 ;; --per-host) per_host=$2 ;; --rate) rate=$2 ;; --min) min=$2 ;;
    --max) max=$2 ;; --algos) algos=$2 ;; --reps) reps=$2 ;; --iters) iters=$2 ;;
    --build) build=$2 ;; --degrade) degrade=$2 ;; --logs) logs=$2 ;;
    --idle-restart) idle_restart=$2 ;;
    *) echo "multihost: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
case $idle_restart in on | off) ;; *) echo "multihost: --idle-restart on|off" >&2; exit 2 ;; esac
for tool in ip tc iperf3; do
  command -v $tool > /dev/null || { echo "multihost: $tool not found (apt-get install iproute2 iperf3)" >&2; exit 2; }
done
[ "$(id -u)" -eq 0 ] || { echo "multihost: needs root (network namespaces)" >&2; exit 2; }
build=$(cd "$build" && pwd)

tag=fmh$$
switch=${tag}s
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2> /dev/null || true; done
  for ((h = 0; h < hosts; h++)); do ip netns del "${tag}h$h" 2> /dev/null || true; done
  ip netns del "$switch" 2> /dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

to_bits() {
  python3 -c "
import re,sys; m=re.fullmatch(r'(\d+(?:\.\d+)?)([kmg]?)bit', sys.argv[1].lower())
print(int(float(m[1]) * {'': 1, 'k': 1e3, 'm': 1e6, 'g': 1e9}[m[2]])) if m else sys.exit(1)" "$1"
}
# Bytes per tbf burst: 1 ms of the rate, at least 64 KiB (one GSO packet). A larger
# burst lets a whole message of a few MiB pass above the rate (10 ms of burst showed
# 1 MiB all-reduces at 129% of the link).
rate_bits=$(to_bits "$rate") || { echo "multihost: --rate like 1gbit, 500mbit" >&2; exit 2; }
if [ -n "$degrade" ]; then
  [[ $degrade =~ ^([0-9]+):([0-9.]+[kmgKMG]?bit)@([0-9.]+)$ ]] && to_bits "${BASH_REMATCH[2]}" > /dev/null ||
    { echo "multihost: --degrade like 1:250mbit@5" >&2; exit 2; }
  degrade_host=${BASH_REMATCH[1]} degrade_rate=${BASH_REMATCH[2]} degrade_after=${BASH_REMATCH[3]}
  [ "$degrade_host" -lt "$hosts" ] || { echo "multihost: no host $degrade_host" >&2; exit 2; }
fi
burst=$(( rate_bits / 8 / 1000 > 65536 ? rate_bits / 8 / 1000 : 65536 ))

# shape add|change HOST RATE: the host's uplink and downlink, each at RATE.
shape() {
  tc -n "${tag}h$2" qdisc "$1" dev eth0 root tbf rate "$3" burst "$burst" latency 20ms
  tc -n "$switch" qdisc "$1" dev "${tag}b$2" root tbf rate "$3" burst "$burst" latency 20ms
}

ip netns add "$switch"
ip -n "$switch" link set lo up
ip -n "$switch" link add br0 type bridge
ip -n "$switch" link set br0 up
for ((h = 0; h < hosts; h++)); do
  ns=${tag}h$h
  ip netns add "$ns"
  ip link add "${tag}a$h" type veth peer name "${tag}b$h"
  ip link set "${tag}a$h" netns "$ns"
  ip link set "${tag}b$h" netns "$switch"
  ip -n "$ns" link set "${tag}a$h" name eth0
  ip -n "$ns" addr add "10.99.0.$((h + 1))/24" dev eth0
  ip -n "$ns" link set lo up
  [ "$idle_restart" = on ] || ip netns exec "$ns" sysctl -qw net.ipv4.tcp_slow_start_after_idle=0
  ip -n "$ns" link set eth0 up
  ip -n "$switch" link set "${tag}b$h" master br0 up
  shape add "$h" "$rate"
done

# The link rate: iperf3 from host 0 to host 1 through two shaped links, 3 s.
ip netns exec "${tag}h1" iperf3 -s -1 -B 10.99.0.2 > "$tmp/iperf-server.txt" 2>&1 &
pids+=($!)
sleep 0.5
ip netns exec "${tag}h0" iperf3 -c 10.99.0.2 -t 3 -J > "$tmp/iperf.json"
link_gbps=$(python3 -c "
import json,sys; d=json.load(open(sys.argv[1])); print(d['end']['sum_received']['bits_per_second'] / 1e9)" \
  "$tmp/iperf.json")

# Each rank enters its host's namespace; the bootstrap root listens on host 0.
cat > "$tmp/enter_host.sh" <<EOF
#!/usr/bin/env bash
h=\$(( FTCCL_RANK / $per_host ))
exec ip netns exec ${tag}h\$h env FTCCL_NODE_ID=host\$h FTCCL_SOCKET_IFNAME=eth0 \
  UCX_TLS=tcp,self UCX_NET_DEVICES=eth0 "\$@"
EOF
cat > "$tmp/enter_host_mpi.sh" <<EOF
#!/usr/bin/env bash
h=\$(( OMPI_COMM_WORLD_RANK / $per_host ))
exec ip netns exec ${tag}h\$h env UCX_TLS=tcp,self UCX_NET_DEVICES=eth0 "\$@"
EOF
chmod +x "$tmp/enter_host.sh" "$tmp/enter_host_mpi.sh"
nranks=$(( hosts * per_host ))
to_bytes() { python3 -c "import sys; t=sys.argv[1]; u={'K':1<<10,'M':1<<20,'G':1<<30}; print(int(t[:-1])*u[t[-1]] if t[-1] in u else int(t))" "$1"; }

# report_degradation ALGO LOG AT_FILE: when the ranks flagged the degraded link.
report_degradation() {
  python3 - "$@" <<'EOF'
import datetime, os, re, sys
algo, log, at_file = sys.argv[1:4]
if not os.path.exists(at_file):
    print(f"{algo}: the run ended before the link was degraded"); sys.exit(0)
at = float(open(at_file).read())
seen = []
for line in open(log):
    m = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) .*link to (rank \d+)[^:]* degraded", line)
    if m:
        t = datetime.datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc)
        seen.append((t.timestamp() - at, line.split("]")[0] + "] " + m[2]))
if not seen:
    print(f"{algo}: no rank flagged the link"); sys.exit(0)
first = min(s[0] for s in seen)
print(f"{algo}: {len(seen)} flags, the first {first * 1e3:.0f} ms after the change: " +
      "; ".join(f"{who} at +{dt * 1e3:.0f} ms" for dt, who in sorted(seen)[:4]))
EOF
}

echo "# $hosts hosts x $per_host ranks, links shaped to $rate; iperf3 measured $(printf %.3f "$link_gbps") Gbit/s"
echo "# all_reduce_perf float sum, $iters iterations, median busbw of $reps interleaved runs"
for ((rep = 0; rep < reps; rep++)); do
  for algo in ${algos//,/ }; do
    if [ "$algo" = ompi ]; then
      PMIX_MCA_ptl_tcp_remote_connections=1 PMIX_MCA_ptl_tcp_if_include=eth0 \
        timeout 1200 ip netns exec "${tag}h0" mpirun --allow-run-as-root --oversubscribe \
        --bind-to none -np "$nranks" --mca pml ucx --mca pml_ucx_tls any \
        --mca pml_ucx_devices any --mca btl self --mca oob_tcp_if_include eth0 \
        "$tmp/enter_host_mpi.sh" "$build/bench/mpi_allreduce_perf" -b "$(to_bytes "$min")" \
        -e "$(to_bytes "$max")" -f 2 -n "$iters" -w 1 > "$tmp/run.txt" 2>&1 &
      pids+=($!)
      wait $! || { cat "$tmp/run.txt" >&2; exit 1; }
      grep -q "WRONG" "$tmp/run.txt" && { cat "$tmp/run.txt" >&2; exit 1; }
      awk -v n="$nranks" '$1 ~ /^[0-9]+$/ && NF >= 5 && $3 > 0 {
        print "ompi", $1, $1 / $3 / 1e3 * 2 * (n - 1) / n}' "$tmp/run.txt" >> "$tmp/busbw.txt"
      continue
    fi
    spec=allreduce:$algo; [ "$algo" = auto ] && spec=""
    # The launcher runs on host 0, whose address the bootstrap root listens on. In the
    # background, so that a signal to this script is handled at once (bash runs traps
    # only between commands, and `wait` is interruptible).
    FTCCL_ALGO=$spec timeout 1200 ip netns exec "${tag}h0" "$build/tools/ftccl_run" \
      -n "$nranks" -q --addr 10.99.0.1 --timeout 1100 -- "$tmp/enter_host.sh" \
      "$build/tools/all_reduce_perf" -b "$(to_bytes "$min")" -e "$(to_bytes "$max")" -f 2 \
      -n "$iters" -w 1 -z 1 > "$tmp/run.txt" 2>&1 &
    run=$!
    pids+=($run)
    if [ -n "$degrade" ]; then
      (
        trap 'kill $nap 2> /dev/null; exit 0' TERM  # no sleep outlives the run
        sleep "$degrade_after" & nap=$!
        wait $nap
        date +%s.%N > "$tmp/degraded_at"
        shape change "$degrade_host" "$degrade_rate"
      ) &
      pids+=($!)
    fi
    wait $run || { cat "$tmp/run.txt" >&2; exit 1; }
    if [ -n "$degrade" ]; then
      kill "${pids[-1]}" 2> /dev/null || true
      wait "${pids[-1]}" 2> /dev/null || true
      shape change "$degrade_host" "$rate"
      report_degradation "$algo" "$tmp/run.txt" "$tmp/degraded_at" >> "$tmp/degradation.txt"
      rm -f "$tmp/degraded_at"
    fi
    [ -z "$logs" ] || { mkdir -p "$logs" && cp "$tmp/run.txt" "$logs/run-$rep-$algo.txt"; }
    grep -q "FAILED" "$tmp/run.txt" && { cat "$tmp/run.txt" >&2; exit 1; }
    # busbw from the out-of-place time: the tools print it with two decimals only.
    awk -v a="$algo" -v n="$nranks" '$1 == "[0]" && $2 ~ /^[0-9]+$/ && NF >= 13 && $7 > 0 {
      print a, $2, $2 / $7 / 1e3 * 2 * (n - 1) / n}' "$tmp/run.txt" >> "$tmp/busbw.txt"
  done
done
python3 - "$tmp/busbw.txt" "$link_gbps" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
link = float(sys.argv[2]) / 8  # GB/s
algos = list(dict.fromkeys(r[0] for r in rows))
print("| size | " + " | ".join(f"{a} busbw GB/s (of link)" for a in algos) + " |")
print("|---|" + "---|" * len(algos))
for size in sorted({int(r[1]) for r in rows}):
    cells = []
    for a in algos:
        v = [float(r[2]) for r in rows if r[0] == a and int(r[1]) == size]
        m = statistics.median(v)
        cells.append(f"{m:.3f} ({100 * m / link:.0f}%, {min(v):.3f}-{max(v):.3f})")
    print(f"| {size} | " + " | ".join(cells) + " |")
print(f"# link rate: {link:.3f} GB/s per direction (iperf3)")
EOF
if [ -n "$degrade" ]; then
  echo "# host $degrade_host's link lowered to $degrade_rate ${degrade_after} s into each ftccl run:"
  cat "$tmp/degradation.txt"
fi
