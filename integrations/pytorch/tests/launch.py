#!/usr/bin/python3
"""Starts a torch.distributed job on this host, like a small torchrun: N ranks (and
spares) of /usr/bin/python3 SCRIPT with RANK, WORLD_SIZE, MASTER_ADDR/PORT (env://) and
FTCCL_COMM_ID/FTCCL_COMM_SECRET/FTCCL_SPARES; a spare gets SPARE_INDEX instead of RANK.

    launch.py -n 4 [--spares 1] [--timeout 300] [--allow-exit RANK]... -- script.py args

Exits 0 when every process did, except those named by --allow-exit (a rank that kills
or stops itself on purpose: not waited for, killed at the end); on a timeout, or when
one fails, the whole job is killed.
"""
import argparse
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time


def free_ports(count):
    """`count` distinct ports free on every address, from below the kernel's ephemeral
    range: a port the kernel picks (bind to 0) is free only when asked; the next such
    call may return it again (MASTER_PORT and FTCCL_COMM_ID were once the same), and
    any outgoing connection of a test running beside this one may take it as its
    source port before the rank binds it (TCPStore: "Address already in use")."""
    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    rng = random.SystemRandom()
    ports = []
    for _ in range(1000):
        port = rng.randrange(10000, max(low, 10001))
        if port in ports:
            continue
        try:
            with socket.socket() as s:
                s.bind(("0.0.0.0", port))
        except OSError:
            continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError("launch.py: no free port below %d" % low)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, required=True)
    p.add_argument("--spares", type=int, default=0)
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--allow-exit", type=int, action="append", default=[])
    p.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args()
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    store_port, root_port = free_ports(2)
    base = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(store_port),
                WORLD_SIZE=str(a.n), FTCCL_COMM_ID="127.0.0.1:%d" % root_port,
                FTCCL_COMM_SECRET=secrets.token_hex(16), FTCCL_SPARES=str(a.spares))
    procs = []

    def kill_all(*_):
        # Also when CTest's timeout or a Ctrl-C ends us: the ranks run in their own
        # sessions and would outlive us.
        for _, _, proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        sys.exit(1)

    signal.signal(signal.SIGTERM, kill_all)
    signal.signal(signal.SIGINT, kill_all)
    for i in range(a.n + a.spares):
        env = dict(base)
        if i < a.n:
            env["RANK"] = str(i)
            name = "rank %d" % i
        else:
            env["SPARE_INDEX"] = str(i - a.n)
            name = "spare %d" % (i - a.n)
        procs.append((name, i, subprocess.Popen(["/usr/bin/python3"] + command, env=env,
                                                start_new_session=True)))
    deadline = time.time() + a.timeout
    failed = None
    while time.time() < deadline:
        codes = [(name, i, proc.poll()) for name, i, proc in procs]
        for name, i, code in codes:
            if code not in (None, 0) and i not in a.allow_exit and failed is None:
                failed = "%s exited with %d" % (name, code)
        # Those allowed to exit need not: one stopped on purpose is killed at the end.
        if failed or all(code is not None for _, i, code in codes if i not in a.allow_exit):
            break
        time.sleep(0.05)
    else:
        failed = "timed out after %.0f s" % a.timeout
    for _, _, proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if failed:
        print("launch.py: " + failed, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
