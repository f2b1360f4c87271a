#!/usr/bin/env python3
"""Forging attacks on a running job's health channel, from a process of the same host
that holds no key (an outsider), the way a new user would try them.

Starts a 4-rank all_reduce_perf job under ftccl_run on loopback, learns every rank's
health address from its log, attacks, and checks what the job did:

  failed     forged FAILED notices naming rank 1, on a TCP connection to every rank,
             under the communicator named in the stats files and a random one, with a
             made-up seal (and without one)
  expelled   forged EXPELLED agreement messages to every rank, the same way
  heartbeats rank 2 is stopped (SIGSTOP); heartbeats "from" it are forged to its
             monitors (new ones, and its own real ones, recorded on loopback before the
             stop and replayed) until the hang is detected, or for 20 s: it must be
  acks       a flood of acks and heartbeats under fresh sender keys to every rank: no
             false failure, and the health threads' CPU and the ranks' memory stay put

Exit status 0 when every attack held. Each attack prints one line of evidence.
usage: attack_health.py --build DIR [--attack NAME ...] [--seconds S]
"""
import argparse
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

NRANKS = 4
# --before: frames of the format before the health channel was sealed (no nonce in the
# hello, no seal), to show what each attack did to a build of that time.
LEGACY = False


def frame(kind, body):
    return struct.pack("<IB", len(body), kind) + body


def put_string(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<I", len(b)) + b


def hello(sender, nonce=b""):
    body = put_string(sender) + put_string("attacker") + struct.pack("<i", 4242)
    return frame(1, body if LEGACY else body + put_string(nonce))


def fake_seal(comm, epoch=0):
    return b"" if LEGACY else struct.pack("<QIB", comm, epoch, 0) + os.urandom(16)


def failed_notice(comm, rank, failed_key):
    body = (struct.pack("<QIi", comm, 0, rank) + put_string(failed_key) +
            struct.pack("<Bdi", 1, 1.0, 0))
    return frame(4, body)


def expelled(comm):
    # RecoveryMessage (agreement.cc): type, epoch, failed, next {epoch, ranks, spares},
    # failedRanks, replaced, shrunk, joined, blob, ballot, acceptedFailed, wantsReport,
    # salt, sealedKey.
    payload = (struct.pack("<BQ", 3, 5) + struct.pack("<I", 0) + struct.pack("<Q", 5) +
               struct.pack("<II", 0, 0) + struct.pack("<I", 0) + struct.pack("<iB", 0, 0) +
               struct.pack("<I", 0) + struct.pack("<I", 0) + struct.pack("<q", -1) +
               struct.pack("<I", 0) + struct.pack("<B", 0) +
               (b"" if LEGACY else bytes(16) + struct.pack("<I", 0)))
    return frame(6, struct.pack("<Q", comm) + put_string(payload))


def probe(kind, sender, seq, comm):
    if kind == "heartbeat":
        body = struct.pack("<QqB", seq, time.monotonic_ns(), 0)
        p = frame(2, body)
    else:
        p = frame(3, struct.pack("<Qqq", seq, time.monotonic_ns(), 0))
    return hello(sender) + p + fake_seal(comm)


def addr_of(key):
    host, port = key.rsplit(":", 1)
    return host.strip("[]"), int(port)


class Job:
    """A 4-rank all_reduce_perf under ftccl_run, its log, its health addresses."""

    def __init__(self, build, seconds, extra_run=(), extra_perf=()):
        self.statsDir = tempfile.mkdtemp(prefix="ftccl-attack-")
        env = dict(os.environ, FTCCL_SOCKET_IFNAME="lo", FTCCL_DEBUG="info",
                   FTCCL_DEBUG_SUBSYS="HEALTH,RECOVERY,INIT",
                   FTCCL_STATS_FILE=os.path.join(self.statsDir, "stats.%p.jsonl"),
                   FTCCL_STATS_INTERVAL_MS="200")
        cmd = [os.path.join(build, "tools", "ftccl_run"), "-n", str(NRANKS),
               "--timeout", str(int(seconds) + 60), *extra_run, "--",
               os.path.join(build, "tools", "all_reduce_perf"), "-b", "64K", "-e", "64K",
               "-n", "100000000", "-w", "2", "-c", "1", "-z", "1", *extra_perf]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=env, text=True, start_new_session=True)
        self.lines = []
        self.keys = {}   # rank -> health key
        self.pids = {}   # rank -> pid
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            m = re.match(r"\[(\d+)\] .*health service of pid (\d+) listening on (\S+)", line)
            if m:
                self.keys[int(m.group(1))] = m.group(3)
                self.pids[int(m.group(1))] = int(m.group(2))

    def wait_ready(self, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            if len(self.keys) == NRANKS:
                time.sleep(2.0)  # init done, operations running
                return self.proc.poll() is None
            if self.proc.poll() is not None:
                return False
            time.sleep(0.1)
        return False

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.reader.join(timeout=5)
        shutil.rmtree(self.statsDir, ignore_errors=True)

    def commFromStats(self):
        """The communicator named in the stats files (what anyone who reads them sees)."""
        for name in sorted(os.listdir(self.statsDir)):
            with open(os.path.join(self.statsDir, name)) as f:
                for line in f:
                    m = re.search(r'"comm":"([0-9a-f]+)"', line)
                    if m:
                        return int(m.group(1), 16)
        return random.getrandbits(64)

    def failures(self):
        return [l for l in self.lines if " failed: " in l and "[Health]" in l]

    def log(self, pattern):
        return [l for l in self.lines if re.search(pattern, l)]


def tcp_attack(job, make_frames):
    """Opens a connection to every rank's health port and sends the frames; counts the
    connections the rank closed (it refused what it read)."""
    closed = 0
    for rank, key in sorted(job.keys.items()):
        for frames in make_frames(rank, key):
            try:
                s = socket.create_connection(addr_of(key), timeout=2)
            except OSError:
                continue  # the rank is gone
            s.settimeout(0.3)
            try:
                try:
                    s.recv(4096)  # its hello (builds before the seal send none)
                except socket.timeout:
                    pass
                s.sendall(frames)
                s.settimeout(2)
                closed += 1 if s.recv(4096) == b"" else 0
            except socket.timeout:
                pass
            except OSError:
                closed += 1
            finally:
                s.close()
    return closed


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def health_cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            for tid in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                    if f.read().strip() != "ftccl-health":
                        continue
                with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total


def forge_notices(build, seconds, what, make, bad_lines, extra_perf=()):
    """Sends what make(job, comm, impostor) builds to every rank over TCP, for the comm key
    read from the stats files and a random one; held when the job runs on and logs no
    failure and no line matching bad_lines."""
    job = Job(build, seconds, extra_perf=extra_perf)
    try:
        if not job.wait_ready():
            return False, "the job did not start"
        sent = []

        def frames(rank, key):
            impostor = job.keys[(rank + 1) % NRANKS]
            for comm in (job.commFromStats(), random.getrandbits(64)):
                for f in make(job, comm, impostor):
                    sent.append(f)
                    yield f
        closed = tcp_attack(job, frames)
        time.sleep(1.0)
        bad = job.failures() + (job.log(bad_lines) if bad_lines else [])
        running = job.proc.poll() is None
        return (not bad and running,
                "forged %s on %d connections: %d closed by the rank, %d failure or expel "
                "lines, job running: %s" % (what, len(sent), closed, len(bad), running))
    finally:
        job.stop()


def attack_failed(build, seconds):
    def make(job, comm, impostor):
        notice = failed_notice(comm, 1, job.keys[1])
        yield hello(impostor, os.urandom(16)) + notice + fake_seal(comm)
        yield hello(impostor, os.urandom(16)) + notice  # no seal at all
        yield hello(impostor) + notice + fake_seal(comm)  # the old hello
    return forge_notices(build, seconds, "FAILED naming rank 1", make, None)


def attack_expelled(build, seconds):
    def make(job, comm, impostor):
        yield hello(impostor, os.urandom(16)) + expelled(comm) + fake_seal(comm, 5)
    return forge_notices(build, seconds, "EXPELLED", make, r"expelled|Recovery.*failed|rebuilt",
                         extra_perf=("--recover",))


def record_probes(port, seconds):
    """Datagrams sent from the health port `port` on loopback (AF_PACKET), as payloads."""
    try:
        raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
        raw.bind(("lo", 0))
    except PermissionError:
        print("note: recording loopback needs CAP_NET_RAW: only forged heartbeats are sent")
        return []
    raw.settimeout(0.2)
    got, end = [], time.time() + seconds
    while time.time() < end:
        try:
            packet = raw.recv(65536)
        except socket.timeout:
            continue
        ip = packet[14:]
        if len(ip) < 28 or ip[9] != 17:
            continue
        ihl = (ip[0] & 15) * 4
        sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
        if sport == port:
            got.append((dport, ip[ihl + 8:]))
    raw.close()
    return got


def attack_heartbeats(build, seconds):
    job = Job(build, seconds, extra_perf=("--recover",))
    try:
        if not job.wait_ready():
            return False, "the job did not start"
        victim = job.keys[2]
        host, vport = addr_of(victim)
        recorded = record_probes(vport, 1.0)
        monitors = [job.keys[1], job.keys[3]]
        os.kill(job.pids[2], signal.SIGSTOP)
        stopped = time.time()
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        seq = int(time.time() * 1e6)
        sent = 0
        def detected():
            return [l for l in job.failures() if "pid %d" % job.pids[2] in l and
                    "detected here" in l]
        # Forged heartbeats flow until the hang is detected (or 20 s: it was hidden).
        rounds = 0
        while time.time() - stopped < 20.0 and not (rounds % 50 == 49 and detected()):
            rounds += 1
            for key in monitors:
                seq += 1
                out.sendto(probe("heartbeat", victim, seq, random.getrandbits(64)), addr_of(key))
                sent += 1
            for dport, payload in recorded:
                out.sendto(payload, (host, dport))
                sent += 1
            time.sleep(0.002)
        seconds = time.time() - stopped
        found = detected()
        ms = [float(x) for l in found for x in re.findall(r"([0-9.]+) ms after its last", l)]
        os.kill(job.pids[2], signal.SIGCONT)
        ok = bool(found)
        return ok, ("rank 2 stopped; %d forged and replayed heartbeats (%d recorded real "
                    "ones) sent to its monitors over %.1f s: its hang detected by %d "
                    "monitor(s) after %s ms" % (sent, len(recorded), seconds, len(found),
                                                ", ".join("%.0f" % m for m in ms) or "-"))
    finally:
        job.stop()


def attack_acks(build, seconds):
    job = Job(build, seconds)
    try:
        if not job.wait_ready():
            return False, "the job did not start"
        pids = list(job.pids.values())
        time.sleep(1.0)
        rss0 = sum(rss_kb(p) for p in pids)
        t0, c0 = time.time(), health_cpu_ticks(pids)
        time.sleep(3.0)
        quiet_cpu = (health_cpu_ticks(pids) - c0) / os.sysconf("SC_CLK_TCK") / (time.time() - t0)
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t0, c0 = time.time(), health_cpu_ticks(pids)
        sent = 0
        while time.time() - t0 < 4.0:
            for key in job.keys.values():
                sender = "127.0.0.1:%d" % random.randint(1024, 65535)
                kind = "ack" if sent % 2 else "heartbeat"
                out.sendto(probe(kind, sender, random.getrandbits(63), random.getrandbits(64)),
                           addr_of(key))
                sent += 1
            if sent % 64 == 0:
                time.sleep(0.0005)
        flood_cpu = (health_cpu_ticks(pids) - c0) / os.sysconf("SC_CLK_TCK") / (time.time() - t0)
        rss1 = sum(rss_kb(p) for p in pids)
        time.sleep(1.0)
        fails = job.failures()
        ok = not fails and job.proc.poll() is None and rss1 - rss0 < 20 * 1024
        return ok, ("%d forged acks and heartbeats under fresh sender keys in 4 s (%d/s): "
                    "health threads %.1f%% of a core in all before, %.1f%% during; ranks' "
                    "RSS %+d KiB; %d failures reported" % (
                        sent, sent / 4, 100 * quiet_cpu, 100 * flood_cpu, rss1 - rss0,
                        len(fails)))
    finally:
        job.stop()


ATTACKS = {"failed": attack_failed, "expelled": attack_expelled,
           "heartbeats": attack_heartbeats, "acks": attack_acks}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--attack", action="append", choices=sorted(ATTACKS))
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--before", action="store_true",
                    help="speak the unsealed format of builds before the health channel was sealed")
    args = ap.parse_args()
    global LEGACY
    LEGACY = args.before
    held = True
    for name in args.attack or list(ATTACKS):
        ok, evidence = ATTACKS[name](args.build, args.seconds)
        print("%s %s: %s" % ("HELD" if ok else "BROKEN", name, evidence), flush=True)
        held = held and ok
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
