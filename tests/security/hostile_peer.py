#!/usr/bin/env python3
"""A hostile process at every port of a running 4-rank job (bounded resources).

Starts all_reduce_perf on 4 ranks under ftccl_run on loopback, checking its data. Rank 3
is stopped for its first seconds, so the rendezvous waits while the bootstrap root is
flooded; then, for --seconds, every port of every rank is attacked at once:

  bootstrap   1,100 idle connections and 40 slow hellos (a header naming a 1 MiB body,
              then a byte now and then) at rank 0's root port, while the ranks meet
  health TCP  per rank: 150 idle connections; 30 hellos followed by half a 60 KiB frame;
              frames naming 4 GiB; forged sealed frames; one connection streaming frames
              as fast as the rank reads; truncated hellos, reconnecting all the time
  health UDP  garbage datagrams, oversized ones and forged probes, 20,000 a second
  UCX         every other TCP port the ranks listen on (UCX's TCP interfaces): idle
              connections and random bytes

The job must finish with correct results (all_reduce_perf -c 1 exits non-zero on a wrong
value), with no rank declared failed, and each rank's resident memory may grow by at most
--rss-bound-mb while it is attacked. Prints one line of evidence per check; exit status 0
when all held.
usage: hostile_peer.py --build DIR [--seconds S] [--rss-bound-mb M]
"""
import argparse
import os
import random
import re
import select
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attack_health import (NRANKS, addr_of, fake_seal, frame, health_cpu_ticks,  # noqa: E402
                           hello, probe, rss_kb)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "ftccl_chaos"))
from chaos_run import _children_of as children_of  # noqa: E402  (ftccl_run's ranks)

BOOTSTRAP_MAGIC = 0x53425446  # "FTBS" little-endian, bootstrap/wire.h


class Attack:
    """Threads that attack until stop(); each keeps what it opened and counts."""

    def __init__(self):
        self.stopping = threading.Event()
        self.threads = []
        self.counts = {}
        self.lock = threading.Lock()
        self.held = []

    def count(self, what, n=1):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + n

    def hold(self, s):
        with self.lock:
            self.held.append(s)

    def run(self, fn, *args):
        t = threading.Thread(target=self._guard, args=(fn,) + args, daemon=True)
        t.start()
        self.threads.append(t)

    def _guard(self, fn, *args):
        try:
            fn(*args)
        except Exception as e:  # an attack thread must not end the test silently
            self.count("attack thread error: %s" % type(e).__name__)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=10)
        for s in self.held:
            try:
                s.close()
            except OSError:
                pass
        self.held.clear()


def connect_nb(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect(addr)
    except BlockingIOError:
        pass
    except OSError:
        s.close()
        return None
    return s


def send_quiet(s, data):
    try:
        s.setblocking(True)
        s.settimeout(0.5)
        s.sendall(data)
        return True
    except OSError:
        return False


def environ_of(pid):
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            return dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
    except OSError:
        return {}


def listening_ports(pid):
    """TCP ports the process listens on (from /proc/net/tcp and its descriptors)."""
    inodes = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            m = re.match(r"socket:\[(\d+)\]", link)
            if m:
                inodes.add(m.group(1))
    except OSError:
        return []
    ports = []
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if parts[3] == "0A" and parts[9] in inodes:  # LISTEN
                ports.append(int(parts[1].split(":")[1], 16))
    return ports


# --- bootstrap --------------------------------------------------------------------
def bootstrap_flood(attack, port, until):
    """Idle connections and slow hellos at the root while the ranks meet."""
    addr = ("127.0.0.1", port)
    idle, slow = [], []
    end = time.time() + 20
    while not until() and time.time() < end and not attack.stopping.is_set():
        if len(idle) < 1100:
            s = connect_nb(addr)
            if s is not None:
                idle.append(s)
                attack.hold(s)
                attack.count("bootstrap idle connections")
        if len(slow) < 40 and len(idle) % 25 == 0:
            s = connect_nb(addr)
            if s is not None:
                # Header: magic, version 2, type hello, 1 MiB body, checksum; then a trickle.
                header = struct.pack("<IHHIQ", BOOTSTRAP_MAGIC, 2, 1, 1 << 20, 0)
                if send_quiet(s, header):
                    slow.append(s)
                    attack.hold(s)
                    attack.count("bootstrap slow hellos")
        for s in slow:
            try:
                s.send(b"\0", socket.MSG_DONTWAIT)
            except OSError:
                pass
        time.sleep(0.001 if len(idle) < 1100 else 0.05)


# --- health TCP ---------------------------------------------------------------------
def health_idle(attack, key, n=150):
    """Connections that say nothing, held."""
    held = 0
    for _ in range(n):
        s = connect_nb(addr_of(key))
        if s is not None:
            attack.hold(s)
            held += 1
    attack.count("health idle connections", held)


def health_half(attack, key, n=30, frame_bytes=60 << 10):
    """A hello, then half of a frame of frame_bytes, held."""
    fake = "127.0.0.1:%d" % random.randint(1024, 65535)
    held = 0
    for _ in range(n):
        s = connect_nb(addr_of(key))
        if s is None:
            continue
        time.sleep(0.002)
        if send_quiet(s, hello(fake, os.urandom(16)) + struct.pack("<IB", frame_bytes, 6) +
                      os.urandom(frame_bytes // 2)):
            attack.hold(s)
            held += 1
    attack.count("health half-sent %d KiB frames" % (frame_bytes >> 10), held)


def health_stream(attack, key):
    """One connection: a hello, a frame naming 1 MiB, then bytes as fast as they go."""
    fake = "127.0.0.1:%d" % random.randint(1024, 65535)
    chunk = os.urandom(1 << 16)
    while not attack.stopping.is_set():
        s = socket.socket()
        s.settimeout(1)
        try:
            s.connect(addr_of(key))
            s.sendall(hello(fake, os.urandom(16)) + struct.pack("<IB", 1 << 20, 6))
            attack.count("health streams")
            while not attack.stopping.is_set():
                s.sendall(chunk)
                attack.count("health MiB streamed", len(chunk) / 2**20)
        except OSError:
            pass
        finally:
            s.close()


def health_churn(attack, key):
    """Connections that come and go: frames naming 4 GiB, forged sealed frames,
    truncated hellos."""
    fake = "127.0.0.1:%d" % random.randint(1024, 65535)
    while not attack.stopping.is_set():
        kind = random.randrange(3)
        s = socket.socket()
        s.settimeout(1)
        try:
            s.connect(addr_of(key))
            if kind == 0:
                s.sendall(hello(fake, os.urandom(16)) + struct.pack("<IB", 0xFFFFFFF0, 6))
                attack.count("health 4 GiB frames")
            elif kind == 1:
                body = struct.pack("<Q", random.getrandbits(64)) + struct.pack("<I", 8) + b"x" * 8
                s.sendall(hello(fake, os.urandom(16)) + frame(6, body) +
                          fake_seal(random.getrandbits(64)))
                attack.count("health forged frames")
            else:
                s.sendall(hello(fake, os.urandom(16))[:7])
                attack.count("health truncated hellos")
        except OSError:
            pass
        finally:
            s.close()


# --- health UDP ---------------------------------------------------------------------
def health_udp(attack, keys, rate, garbage_only=False):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    targets = [addr_of(k) for k in keys]
    fake = "127.0.0.1:%d" % random.randint(1024, 65535)
    seq = 0
    batch = 200
    while not attack.stopping.is_set():
        start = time.time()
        for i in range(batch):
            seq += 1
            kind = 0 if garbage_only else i % 4
            if kind == 0:
                data = os.urandom(8)
            elif kind == 1:
                data = os.urandom(1500)  # over the probe cap
            else:
                data = probe("heartbeat" if kind == 2 else "ack", fake, seq,
                             random.getrandbits(64))
            try:
                s.sendto(data, targets[i % len(targets)])
            except OSError:
                pass
        attack.count("health datagrams", batch)
        time.sleep(max(0.0, batch / rate - (time.time() - start)))


# --- UCX ---------------------------------------------------------------------------
def ucx_ports(attack, ports, hold_each=10):
    idle = []
    for port in ports:
        for _ in range(hold_each):
            s = connect_nb(("127.0.0.1", port))
            if s is not None:
                idle.append(s)
                attack.hold(s)
    attack.count("UCX idle connections", len(idle))
    while not attack.stopping.is_set():
        port = random.choice(ports)
        s = socket.socket()
        s.settimeout(1)
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(os.urandom(random.choice([1, 16, 64, 4096, 65536])))
            attack.count("UCX garbage connections")
        except OSError:
            pass
        finally:
            s.close()
        time.sleep(0.01)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rss-bound-mb", type=float, default=64)
    ap.add_argument("--udp-rate", type=float, default=20000)
    ap.add_argument("--iters", type=int, default=400000)
    ap.add_argument("--attack", default="all",
                    help="comma list of bootstrap,idle,half,stream,churn,udp,garbage,ucx "
                         "(garbage: 8-byte datagrams only, at --udp-rate)")
    ap.add_argument("--half", type=int, default=30, help="half-sent frames per rank")
    ap.add_argument("--half-kib", type=int, default=60, help="their size")
    ap.add_argument("--ucx-hold", type=int, default=10, help="idle connections per UCX port")
    ap.add_argument("--nofile", type=int, default=0, help="the ranks' descriptor limit")
    args = ap.parse_args()
    chosen = set(args.attack.split(","))
    if "all" in chosen:
        chosen = {"bootstrap", "idle", "half", "stream", "churn", "udp", "ucx"}

    def limit():
        if args.nofile:
            import resource
            resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, args.nofile))

    env = dict(os.environ, FTCCL_SOCKET_IFNAME="lo", FTCCL_DEBUG="info",
               FTCCL_DEBUG_SUBSYS="HEALTH,RECOVERY,INIT,BOOTSTRAP")
    stop = ["--stop", "3@0", "--cont", "3@3"] if "bootstrap" in chosen else []
    cmd = [os.path.join(args.build, "tools", "ftccl_run"), "-n", str(NRANKS), *stop,
           "--timeout", str(int(args.seconds) + 240), "--",
           os.path.join(args.build, "tools", "all_reduce_perf"), "-b", "64K", "-e", "64K",
           "-n", str(args.iters), "-w", "2", "-c", "1", "-z", "1"]
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                           text=True, start_new_session=True, preexec_fn=limit)
    lines, keys, pids = [], {}, {}

    def read():
        for line in job.stdout:
            lines.append(line)
            m = re.match(r"\[(\d+)\] .*health service of pid (\d+) listening on (\S+)", line)
            if m:
                keys[int(m.group(1))] = m.group(3)
                pids[int(m.group(1))] = int(m.group(2))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    attack = Attack()
    ok = True
    try:
        # The root's port, from a rank's environment, as soon as the ranks exist.
        port = None
        end = time.time() + 30
        while port is None and time.time() < end and job.poll() is None:
            for kid in children_of(job.pid):
                comm_id = environ_of(kid).get(b"FTCCL_COMM_ID")
                if comm_id:
                    port = int(comm_id.rsplit(b":", 1)[1])
                    break
            time.sleep(0.005)
        if port is None:
            print("BROKEN bootstrap: the job did not start")
            return 1
        if "bootstrap" in chosen:
            attack.run(bootstrap_flood, attack, port, lambda: len(keys) == NRANKS)
        end = time.time() + 60
        while len(keys) < NRANKS and time.time() < end and job.poll() is None:
            time.sleep(0.05)
        attack.stop()
        counts = dict(attack.counts)
        if len(keys) < NRANKS:
            print("BROKEN bootstrap: the ranks did not meet under the flood (%s)" % counts)
            for l in lines[-20:]:
                print("  " + l.rstrip())
            return 1
        if "bootstrap" in chosen:
            print("held bootstrap: the 4 ranks met through %d idle connections and %d slow "
                  "hellos at the root" % (counts.get("bootstrap idle connections", 0),
                                          counts.get("bootstrap slow hellos", 0)))
        time.sleep(2.0)  # operations running
        if job.poll() is not None:
            print("BROKEN job: it ended before the attack (%d iterations too few?)" % args.iters)
            return 1
        rss0 = {r: rss_kb(p) for r, p in pids.items()}
        ports = sorted({p for pid in pids.values() for p in listening_ports(pid)} -
                       {addr_of(k)[1] for k in keys.values()})
        attack = Attack()
        for rank, key in sorted(keys.items()):
            if "idle" in chosen:
                attack.run(health_idle, attack, key)
            if "half" in chosen:
                attack.run(health_half, attack, key, args.half, args.half_kib << 10)
            if "stream" in chosen:
                attack.run(health_stream, attack, key)
            if "churn" in chosen:
                attack.run(health_churn, attack, key)
        if "udp" in chosen or "garbage" in chosen:
            attack.run(health_udp, attack, list(keys.values()), args.udp_rate,
                       "garbage" in chosen)
        if ports and "ucx" in chosen:
            attack.run(ucx_ports, attack, ports, args.ucx_hold)
        ticks0, t0 = health_cpu_ticks(pids.values()), time.time()
        peak = dict(rss0)
        end = time.time() + args.seconds
        while time.time() < end and job.poll() is None:
            for r, p in pids.items():
                peak[r] = max(peak[r], rss_kb(p))
            time.sleep(0.2)
        cpu = (health_cpu_ticks(pids.values()) - ticks0) / os.sysconf("SC_CLK_TCK")
        cpu_pct = 100.0 * cpu / max(1e-9, time.time() - t0) / len(pids)
        ended_early = job.poll() is not None
        attack.stop()
        counts = {k: round(v, 1) for k, v in attack.counts.items()}
        print("attack: %s; %d UCX ports" % (", ".join("%s %s" % (v, k) for k, v in
                                                       sorted(counts.items())), len(ports)))
        if ended_early:
            print("note: the job ended %.1f s into the attack" % (args.seconds - (end - time.time())))
        try:
            job.wait(timeout=240)
        except subprocess.TimeoutExpired:
            print("BROKEN job: it did not finish after the attack")
            ok = False
        reader.join(timeout=5)
        failures = [l.strip() for l in lines if " failed: " in l and "[Health]" in l]
        if job.returncode != 0:
            print("BROKEN job: ftccl_run exited %s" % job.returncode)
            for l in lines[-30:]:
                print("  " + l.rstrip())
            ok = False
        else:
            print("held job: finished, every rank checked its results (exit 0)")
        if failures:
            print("BROKEN failures: %d false failure(s): %s" % (len(failures), failures[0]))
            ok = False
        else:
            print("held failures: no rank declared failed")
        growth = {r: (peak[r] - rss0[r]) / 1024.0 for r in rss0}
        worst = max(growth.values())
        print("%s memory: RSS growth per rank during the attack %s MiB (bound %.0f MiB); "
              "health threads %.1f%% of a core each" %
              ("held" if worst <= args.rss_bound_mb else "BROKEN",
               ", ".join("%.1f" % growth[r] for r in sorted(growth)), args.rss_bound_mb,
               cpu_pct))
        ok = ok and worst <= args.rss_bound_mb
        for l in lines:
            if re.search(r"(flooding|flood of|closed \d+ connection|accept)", l):
                print("log: " + l.strip())
                break
        return 0 if ok else 1
    finally:
        attack.stop()
        if job.poll() is None:
            try:
                os.killpg(job.pid, 9)
            except OSError:
                pass
            job.wait()


if __name__ == "__main__":
    sys.exit(main())
