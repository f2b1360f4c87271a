"""Running one chaos job: the command line, the network namespaces for link cuts, the
link cut itself, the log, and the backstop that ends a job ftccl_run failed to end.

Only processes this module started are ever signalled: the ftccl_run it spawned (in a
session of its own) and, if ftccl_run itself must be SIGKILLed, that ftccl_run's own
children (found through /proc by parent pid), whose process groups it created.
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from chaos_plan import SPLIT_EVERY

SUBNET = "10.98.0"          # addresses inside our own namespaces only
BACKSTOP_GRACE_S = 15.0     # after ftccl_run's --timeout, before we end it ourselves
TERM_WAIT_S = 12.0          # ftccl_run's own cleanup allows 10 s


def netns_available():
    """'' when link cuts can run here, else why not."""
    if os.geteuid() != 0:
        return "link cuts need root (network namespaces)"
    if shutil.which("ip") is None:
        return "link cuts need iproute2's `ip` (apt-get install iproute2)"
    return ""


def reap_stale_namespaces():
    """Deletes namespaces an earlier campaign of this tool left behind when it was
    SIGKILLed (fch<pid>...: only those whose pid no longer runs). Returns their names."""
    res = _ip("netns", "list", check=False)
    stale = []
    for line in res.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(r"fch(\d+)(?:s|h\d+)", name)
        if m and not os.path.exists(f"/proc/{m[1]}"):
            _ip("netns", "del", name, check=False)
            stale.append(name)
    return stale


def _ip(*args, check=True):
    res = subprocess.run(["ip", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    if check and res.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {res.stderr.strip()}")
    return res


class Fabric:
    """One network namespace per process ('host'), each with one veth link into a bridge
    in a switch namespace, as bench/multihost.sh builds them. Created once per campaign
    (at the first link-cut run) for the largest job; every link is brought back up
    between runs. Names carry our pid, so concurrent campaigns never collide."""

    def __init__(self, hosts, workdir):
        self.tag = f"fch{os.getpid()}"
        self.hosts = hosts
        self.switch = f"{self.tag}s"
        self.wrapper = os.path.join(workdir, "enter_host.sh")
        self._made = []  # namespaces created, for cleanup even after a partial setup

    def host(self, i):
        return f"{self.tag}h{i}"

    def bridge_port(self, i):
        return f"{self.tag}b{i}"

    def addr(self, i):
        return f"{SUBNET}.{i + 1}"

    def create(self):
        self._add_ns(self.switch)
        _ip("-n", self.switch, "link", "set", "lo", "up")
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for i in range(self.hosts):
            ns, outer = self.host(i), f"{self.tag}a{i}"
            self._add_ns(ns)
            _ip("link", "add", outer, "type", "veth", "peer", "name", self.bridge_port(i))
            _ip("link", "set", outer, "netns", ns)
            _ip("link", "set", self.bridge_port(i), "netns", self.switch)
            _ip("-n", ns, "link", "set", outer, "name", "eth0")
            _ip("-n", ns, "addr", "add", f"{self.addr(i)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", self.switch, "link", "set", self.bridge_port(i), "master", "br0", "up")
        self._write_wrapper()

    def _add_ns(self, name):
        _ip("netns", "add", name)
        self._made.append(name)

    def _write_wrapper(self):
        # Each rank enters the namespace of its launcher index. UCX between namespaces
        # of one kernel would still pick shared memory and bypass the link: TCP only.
        with open(self.wrapper, "w") as f:
            f.write("#!/bin/sh\n"
                    f'exec ip netns exec {self.tag}h"$FTCCL_RANK" env '
                    'FTCCL_NODE_ID=host"$FTCCL_RANK" FTCCL_SOCKET_IFNAME=eth0 '
                    'UCX_TLS=tcp,self UCX_NET_DEVICES=eth0 "$@"\n')
        os.chmod(self.wrapper, 0o755)

    def cut(self, proc):
        """Takes process `proc`'s link down on the switch side: a cut cable, seen by
        neither end's sockets (no reset, no error), only by silence."""
        _ip("-n", self.switch, "link", "set", self.bridge_port(proc), "down")

    def restore(self):
        for i in range(self.hosts):
            _ip("-n", self.switch, "link", "set", self.bridge_port(i), "up", check=False)

    def destroy(self):
        # Deleting a namespace deletes its veth end, and with it the peer.
        for name in reversed(self._made):
            _ip("netns", "del", name, check=False)
        self._made = []


def workload_args(plan):
    """The perf tool's flags, or split_job's (several communicators: world + children)."""
    if plan.tool == "split_job":
        args = ["--steps", str(plan.iters), "--count", str(max(1, plan.nbytes // 4)),
                "--split-every", str(SPLIT_EVERY), "--spares", str(plan.spares),
                "--joiners", str(plan.joiners)]
        return args if plan.recover else args + ["--no-shrink"]
    args = ["-b", str(plan.nbytes), "-e", str(plan.nbytes), "-n", str(plan.iters),
            "-w", str(plan.warmup), "-c", "1"]
    if plan.blocking:
        args += ["-z", "1"]
    if plan.spares:
        args += ["--spares", str(plan.spares)]
    elif plan.recover:
        args.append("--recover")
    return args


def job_command(plan, build, fabric, hang_grace_s, failure_timeout_s, bootstrap_timeout_s=10.0):
    """(argv, env, timeout_s) for the run. ftccl_run's --timeout is the hang bound."""
    tool = os.path.join(build, "tools", plan.tool)
    timeout = job_timeout(plan, hang_grace_s, failure_timeout_s)
    argv = [os.path.join(build, "tools", "ftccl_run"), "-n", str(plan.procs),
            "--timeout", f"{timeout:.1f}"]
    for f in plan.faults:
        if f.action in ("kill", "stop", "cont"):
            argv += [f"--{f.action}", f"{f.proc}@{f.at:.3f}"]
    if plan.netns:
        # ftccl_run binds the bootstrap port on the root's address, so it lives in host 0.
        argv = ["ip", "netns", "exec", fabric.host(0)] + argv + ["--addr", fabric.addr(0),
                                                                 "--", fabric.wrapper]
    else:
        argv.append("--")
    argv += [tool] + workload_args(plan)
    env = dict(os.environ)
    env.pop("FTCCL_ALGO", None)
    if plan.algo:
        env["FTCCL_ALGO"] = plan.algo
    if not plan.netns:
        env["FTCCL_SOCKET_IFNAME"] = "lo"
    # info adds each rank's "ready" line (when init was over: some failures are allowed
    # only during init) to the warn lines read anyway (failures, rebuilds, mid-transfer);
    # about ten lines per rank. A caller's own FTCCL_DEBUG wins.
    env.setdefault("FTCCL_DEBUG", "info")
    # A rank that dies or stops before it connects can only be noticed by the bootstrap
    # timeout (120 s by default): bring it inside the hang bound, as a job would.
    if bootstrap_timeout_s > 0:
        env["FTCCL_BOOTSTRAP_TIMEOUT_MS"] = str(int(bootstrap_timeout_s * 1000))
    return argv, env, timeout


def job_timeout(plan, hang_grace_s, failure_timeout_s):
    """The hang bound: every survivor must give its verdict within the failure timeout
    plus the grace after the last fault; the job's own estimated length is added, since
    the survivors still have to run what is left of the benchmark after recovering."""
    last = max((f.at for f in plan.faults), default=0.0)
    return last + failure_timeout_s + hang_grace_s + plan.est_total_s


class Output:
    """The merged stdout/stderr of ftccl_run, each line with its arrival time (time.time()),
    copied to the run's log as it comes. The tool adds its own lines ('chaos: ...')."""

    def __init__(self, log, echo):
        self.lines = []
        self._log = log
        self._echo = echo
        self._lock = threading.Lock()
        self.t_start = time.time()

    def add(self, text, when=None):
        when = time.time() if when is None else when
        with self._lock:
            self.lines.append((when, text))
            self._log.write(f"{when - self.t_start:9.3f} {text}\n")
            self._log.flush()
        if self._echo:
            print(text, flush=True)

    def pump(self, stream):
        for raw in iter(stream.readline, b""):
            self.add(raw.decode("utf-8", "replace").rstrip("\n"))


def _children_of(pid):
    """Pids whose parent is `pid` (ftccl_run's ranks: each leads its process group)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def end_launcher(proc):
    """Backstop: SIGTERM ftccl_run (it then kills every rank), SIGKILL it if it does not
    go, and then the process groups of the ranks it leaves behind."""
    if proc.poll() is not None:
        return
    ranks = _children_of(proc.pid)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(TERM_WAIT_S)
        return
    except subprocess.TimeoutExpired:
        pass
    ranks += _children_of(proc.pid)
    proc.kill()
    proc.wait()
    for pid in set(ranks):
        try:
            os.killpg(pid, signal.SIGCONT)
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass  # already gone


def run_job(plan, build, fabric, log_path, hang_grace_s, failure_timeout_s, bootstrap_timeout_s,
            echo=False):
    """Runs the plan's job; returns (Output, ftccl_run's exit status or None, backstop
    fired). Link cuts are done here at their instants; the launcher does the rest."""
    argv, env, timeout = job_command(plan, build, fabric, hang_grace_s, failure_timeout_s,
                                     bootstrap_timeout_s)
    scratch = tempfile.mkdtemp(prefix="ftccl_chaos_job.")
    env["FTCCL_CHAOS_DIR"] = scratch  # split_job's join ids; removed with the run
    try:
        return _run_job(plan, argv, env, timeout, fabric, log_path, echo)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run_job(plan, argv, env, timeout, fabric, log_path, echo):
    cuts = sorted((f for f in plan.faults if f.action == "linkcut"), key=lambda f: f.at)
    with open(log_path, "w") as log:
        shown = ("FTCCL_ALGO", "FTCCL_DEBUG", "FTCCL_BOOTSTRAP_TIMEOUT_MS", "FTCCL_SOCKET_IFNAME")
        log.write(f"# {' '.join(argv)}\n# " +
                  " ".join(f"{k}={env[k]}" for k in shown if k in env) + "\n")
        out = Output(log, echo)
        # Its own session: a Ctrl-C at the terminal reaches us alone, and we end the job.
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        out.t_start = time.time()
        reader = threading.Thread(target=out.pump, args=(proc.stdout,), daemon=True)
        backstop = False
        try:
            reader.start()
            deadline = out.t_start + timeout + BACKSTOP_GRACE_S
            for cut in cuts:
                if _wait(proc, out.t_start + cut.at):
                    break  # the job ended first
                t0 = time.time()
                fabric.cut(cut.proc)
                port = fabric.bridge_port(cut.proc)
                out.add(f"chaos: linkcut on process {cut.proc} (link {port}) "
                        f"at {t0 - out.t_start:.3f} s", when=t0)
            if not _wait(proc, deadline):
                backstop = True
                out.add(f"chaos: backstop: ftccl_run still running "
                        f"{timeout + BACKSTOP_GRACE_S:.0f} s after the start; ending it")
                end_launcher(proc)
        finally:
            end_launcher(proc)  # a no-op unless we are interrupted
            reader.join(5)
            proc.stdout.close()
    return out, proc.returncode, backstop


def _wait(proc, until):
    """True when the process ended before the wall-clock instant `until`."""
    try:
        proc.wait(max(0.0, until - time.time()))
        return True
    except subprocess.TimeoutExpired:
        return False


def make_workdir():
    return tempfile.mkdtemp(prefix="ftccl_chaos.")
