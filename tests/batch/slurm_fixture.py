"""A real single-node SLURM cluster on loopback, for the tests of ``cluster/slurm-*.yaml``.

Debian's ``slurm-wlm`` and ``munge`` (installed here with apt-get when absent and
we are root): one ``munged`` with its own key and socket, one ``slurmctld`` and one
``slurmd`` on free ports, all from a generated ``slurm.conf`` in a temporary
folder, nothing under ``/etc`` read or written. ``slurm_cluster`` starts them and
stops them; pytest-xdist workers share one cluster: a file lock guards the start,
each worker registers while it uses the cluster, and the last one out stops it.
Clients reach it through ``SLURM_CONF`` (:attr:`Slurm.env`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: the daemons and clients the tests need, and where Debian puts the daemons
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scancel", "scontrol")
_SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")
APT_PACKAGES = ("slurm-wlm", "munge")
#: apt-get update + install: ~8 s on a fast mirror, 3.5 MB of packages
APT_TIMEOUT_S = 300
#: munged + slurmctld + slurmd until ``sinfo`` says idle: ~1 s here
START_TIMEOUT_S = 60
#: jobs ask for one core each; the node offers at least this many (``config_overrides``),
#: so that two tests' two jobs run side by side on a 2-core CI machine (they mostly wait)
MIN_CPUS = 4
PARTITION = "debug"

Procs = list[subprocess.Popen[bytes]]


class SlurmUnavailableError(RuntimeError):
    """SLURM cannot run here; the message says why (the tests skip with it)."""


@dataclass(frozen=True)
class Slurm:
    """A running test cluster: its ``slurm.conf`` and the commands' environment."""

    root: Path
    conf: Path
    partition: str = PARTITION

    @property
    def env(self) -> dict[str, str]:
        """This process's environment with ``SLURM_CONF`` and the sbin folders on ``PATH``."""
        path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN])
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": path}

    def command(self, *argv: str, timeout: float = 30) -> str:
        """Run a SLURM client command on this cluster; its stdout (raises on failure)."""
        done = subprocess.run(
            [_find(argv[0]) or argv[0], *argv[1:]],
            capture_output=True, text=True, timeout=timeout, env=self.env, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            msg = f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}"
            raise RuntimeError(msg)
        return done.stdout

    def jobs(self, name: str | None = None) -> dict[str, str]:
        """``{job id: state}`` of the jobs in the queue (of job name ``name``); states as squeue's %T."""
        argv = ["squeue", "-h", "-o", "%i %T"] + (["-n", name] if name else [])
        return dict(line.split() for line in self.command(*argv).splitlines() if line.strip())

    def wait_no_jobs(self, name: str | None = None, timeout: float = 60) -> dict[str, str]:
        """Wait until no job (of ``name``) is queued, running or completing; those left at the timeout."""
        deadline = time.monotonic() + timeout
        while (left := self.jobs(name)) and time.monotonic() < deadline:
            time.sleep(0.2)
        return left


def _find(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN))


def _missing() -> list[str]:
    return [n for n in (*DAEMONS, *CLIENTS) if _find(n) is None]


def ensure_installed() -> None:
    """Find the SLURM and munge programs; install Debian's packages once when they are absent."""
    if not (missing := _missing()):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        packages = " ".join(APT_PACKAGES)
        msg = f"{', '.join(missing)} not found, and installing {packages} needs root and apt-get"
        raise SlurmUnavailableError(msg)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES]
    deadline = time.monotonic() + APT_TIMEOUT_S

    def apt(argv: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                argv, capture_output=True, text=True, env=env, check=False,
                timeout=max(1.0, deadline - time.monotonic()),
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            msg = f"{' '.join(argv)} failed: {exc}"
            raise SlurmUnavailableError(msg) from exc

    done = apt(install)
    if done.returncode != 0:  # a clean image has no package lists yet
        if (update := apt(["apt-get", "update", "-q"])).returncode != 0:
            msg = f"apt-get update exited {update.returncode}: {update.stderr.strip()[-500:]}"
            raise SlurmUnavailableError(msg)
        done = apt(install)
    if done.returncode != 0 or (missing := _missing()):
        why = done.stderr.strip()[-500:] or f"{', '.join(missing)} still missing"
        msg = f"{' '.join(install)} exited {done.returncode}: {why}"
        raise SlurmUnavailableError(msg)


def _free_ports(n: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def _memory_mb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 4096


def write_conf(root: Path) -> Path:
    """``root/slurm.conf``: one node ``localhost`` (127.0.0.1), one default partition, no accounting."""
    ctld_port, slurmd_port = _free_ports(2)
    cpus = max(MIN_CPUS, os.cpu_count() or 1)
    lines = {
        "ClusterName": "cohortsciseg",
        "SlurmctldHost": "localhost(127.0.0.1)",
        "SlurmctldPort": ctld_port,
        "SlurmdPort": slurmd_port,
        "SlurmUser": "root",
        "SlurmdUser": "root",
        "AuthType": "auth/munge",
        "CredType": "cred/munge",
        "AuthInfo": f"socket={root / 'munge' / 'munge.socket'}",
        "StateSaveLocation": root / "state",
        "SlurmdSpoolDir": root / "spool",
        "SlurmctldPidFile": root / "slurmctld.pid",
        "SlurmdPidFile": root / "slurmd.pid",
        "SlurmctldLogFile": root / "slurmctld.log",
        "SlurmdLogFile": root / "slurmd.log",
        "PlugStackConfig": root / "plugstack.conf",  # not Debian's /etc/slurm one
        "MailProg": "/bin/true",
        # no cgroups in a container: processes tracked by parent pid, no task binding
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        # no AccountingStorageType / JobAcctGatherType / JobCompType: their defaults keep no
        # accounting (spelling "none" out breaks on Slurm releases that dropped those plugins)
        "MpiDefault": "none",
        "SchedulerType": "sched/backfill",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_Core",
        "ReturnToService": 2,
        # the node below may claim more CPUs than the machine has (MIN_CPUS)
        "SlurmdParameters": "config_overrides",
        "KillWait": 5,  # scancel: SIGTERM, then SIGKILL after 5 s (default 30)
    }
    text = "".join(f"{k}={v}\n" for k, v in lines.items())
    text += f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={_memory_mb()} State=UNKNOWN\n"
    text += f"PartitionName={PARTITION} Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n"
    conf = root / "slurm.conf"
    conf.write_text(text)
    (root / "plugstack.conf").write_text("")
    return conf


def _munge_key(path: Path) -> None:
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_bytes(os.urandom(1024))
    path.chmod(0o400)


def start(root: Path) -> dict[str, int]:
    """Start munged, slurmctld and slurmd of ``root/slurm.conf``; their pids once the node is idle."""
    root.chmod(0o755)  # mkdtemp's 0700 would hide munged's socket from other users
    for sub in ("state", "spool", "munge"):
        (root / sub).mkdir(mode=0o755, exist_ok=True)
    _munge_key(root / "key" / "munge.key")
    conf = root / "slurm.conf"
    m = root / "munge"
    argvs = {
        "munged": [
            _find("munged"), "--foreground", "--force", f"--socket={m / 'munge.socket'}",
            f"--key-file={root / 'key' / 'munge.key'}", f"--pid-file={m / 'munged.pid'}",
            f"--log-file={m / 'munged.log'}", f"--seed-file={m / 'munged.seed'}",
        ],
        "slurmctld": [_find("slurmctld"), "-D", "-i", "-f", str(conf)],
        "slurmd": [_find("slurmd"), "-D", "-f", str(conf), "-N", "localhost"],
    }  # fmt: skip
    pids: dict[str, int] = {}
    procs: Procs = []
    slurm = Slurm(root, conf)
    try:
        for name, argv in argvs.items():
            with (root / f"{name}.out").open("wb") as out:
                # its own session: the test's Ctrl-C does not reach it, teardown stops it
                proc = subprocess.Popen(
                    [str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True, env=slurm.env,
                )  # fmt: skip
            pids[name] = proc.pid
            procs.append(proc)
            if name == "munged":
                _wait_for(lambda: (m / "munge.socket").exists(), procs, root, "munged's socket")
        _wait_for(lambda: _node_state(slurm) == "idle", procs, root, "the node idle in sinfo")
    except BaseException:
        stop(root, pids)
        raise
    return pids


def _node_state(slurm: Slurm) -> str:
    with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
        return slurm.command("sinfo", "-h", "-N", "-o", "%T", timeout=10).strip()
    return ""


def _wait_for(ready: Callable[[], bool], procs: Procs, root: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            logs = "".join(
                f"\n--- {out.name}:\n{out.read_text(errors='replace')[-1500:]}"
                for out in sorted(root.glob("*.out"))
            )
            msg = f"SLURM test cluster did not start (waiting for {what}):{logs}"
            raise SlurmUnavailableError(msg)
        time.sleep(0.1)


def stop(root: Path, pids: dict[str, int]) -> None:
    """Cancel every job, stop the daemons (SIGTERM, then SIGKILL), remove ``root``."""
    slurm = Slurm(root, root / "slurm.conf")
    if "slurmd" in pids:
        with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
            slurm.command("scancel", "--partition", PARTITION, timeout=10)
            slurm.wait_no_jobs(timeout=20)
    for name in ("slurmd", "slurmctld", "munged"):  # clients of munged last
        if name in pids:
            _terminate(pids[name])
    shutil.rmtree(root, ignore_errors=True)


def _terminate(pid: int, timeout: float = 10) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):  # our child (else its starter's): reap it
        os.waitpid(pid, 0)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (a daemon another xdist worker started and stopped) does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[dict[str, Any]]:
    """The shared state file ``path`` (JSON), read and written under an exclusive lock."""
    with open(path.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(path.read_text()) if path.exists() else {}
        try:
            yield state
        finally:  # also when the body failed: others must learn that SLURM is unavailable
            path.write_text(json.dumps(state))
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def slurm_cluster(shared: Path) -> Iterator[Slurm]:
    """A running cluster shared by the processes that pass the same ``shared`` folder.

    The first one installs (once: a failure is remembered and re-raised to the others)
    and starts it; each registers its pid while it uses it; the last one out stops it.
    """
    if os.geteuid() != 0:
        msg = f"the test cluster runs its daemons as root (SlurmUser=root); this is uid {os.geteuid()}"
        raise SlurmUnavailableError(msg)
    shared.mkdir(parents=True, exist_ok=True)
    state_file = shared / "slurm.json"
    me = os.getpid()
    with _locked(state_file) as state:
        if state.get("unavailable"):
            raise SlurmUnavailableError(state["unavailable"])
        users = [p for p in state.get("users", []) if _alive(p)]
        if not users and state.get("root"):  # a crashed worker's cluster
            stop(Path(state["root"]), state.get("pids", {}))
            state.clear()
        if not state.get("root"):
            try:
                t0 = time.perf_counter()
                ensure_installed()
                t1 = time.perf_counter()
                root = Path(tempfile.mkdtemp(prefix="slurm-"))  # short: unix socket paths
                write_conf(root)
                state["pids"] = start(root)
                state["root"] = str(root)
                # what the set-up cost (kept in the shared folder's slurm.json)
                state["install_s"] = round(t1 - t0, 2)
                state["start_s"] = round(time.perf_counter() - t1, 2)
            except SlurmUnavailableError as exc:
                state["unavailable"] = str(exc)
                raise
        state["users"] = [*users, me]
        root = Path(state["root"])
    try:
        yield Slurm(root, root / "slurm.conf")
    finally:
        with _locked(state_file) as state:
            users = [p for p in state.get("users", []) if p != me and _alive(p)]
            state["users"] = users
            if not users and state.get("root"):
                stop(Path(state["root"]), state.get("pids", {}))
                state.pop("root")
                state.pop("pids", None)
