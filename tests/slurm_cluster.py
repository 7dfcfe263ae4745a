"""A single-node SLURM cluster on this machine, from Debian's packages, for the tests.

    python tests/slurm_cluster.py start [--cpus N] [--no-accounting]   # prints the folder
    SLURM_CONF=<folder>/etc/slurm.conf sinfo
    python tests/slurm_cluster.py stop <folder>

Needs root and Debian (apt-get); installs what is missing (`slurmctld slurmd slurm-client
munge`, and `slurmdbd mariadb-server` for accounting) and nothing when all is there. No systemd:
every daemon (munged, mariadbd, slurmdbd, slurmctld, slurmd) runs in the foreground as a
background process of its own, its PID recorded in `<folder>/pids`, and is stopped by that PID
in reverse order. Confs, state, sockets and logs live in the folder (a fresh one under /tmp,
readable by the munge and mysql users); the ports are free ones picked at start, so two clusters
(two test sessions) can run side by side. Clients find the cluster through `SLURM_CONF`
(`Cluster.env()`); munge's socket is named in slurm.conf (`AuthInfo=socket=...`).

Settings that work without cgroups (see /work/shared/notes/slurm-single-node.md):
proctrack/linuxproc, task/none, select/cons_tres with CR_Core_Memory, SlurmUser=root, and
`SlurmdParameters=config_overrides` so that the node may declare more CPUs or memory than the
machine has (to emulate a bigger node); by default it declares the machine's true CPU count.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import debian_packages
from debian_packages import Unavailable

CORE_PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
ACCOUNTING_PACKAGES = ("slurmdbd", "mariadb-server")
# the daemons in start order; stop() goes the other way
DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd")
PARTITION = "main"
DB_PASSWORD_FILE = "db-password"


def install(accounting: bool = True) -> float:
    """Install the Debian packages that are missing (apt only then); seconds spent.

    Raises Unavailable with the reason when they cannot be installed here.
    """
    return debian_packages.install(CORE_PACKAGES + (ACCOUNTING_PACKAGES if accounting else ()))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def machine_cpus() -> int:
    return os.cpu_count() or 1


def machine_mem_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, which our own Popen reaps later, counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class Cluster:
    """One single-node cluster in `root`. `cpus`/`mem_mb` are what the node declares (default:
    the machine's true CPU count and 90% of its memory); `accounting=False` runs it without
    slurmdbd (AccountingStorageType=accounting_storage/none, `sacct` then fails)."""

    root: Path
    cpus: int = field(default_factory=machine_cpus)
    mem_mb: int = field(default_factory=lambda: machine_mem_mb() * 9 // 10)
    accounting: bool = True
    min_job_age: int = 300
    name: str = "ckpteval"
    node: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def partition(self) -> str:
        return PARTITION

    def env(self) -> dict[str, str]:
        """The environment for SLURM's client commands (sbatch, sinfo, sacct, ...) to reach
        this cluster."""
        return dict(os.environ, SLURM_CONF=str(self.conf))

    def run(self, *command: str, check: bool = True, timeout: float = 30):
        done = subprocess.run(
            command, capture_output=True, text=True, env=self.env(), timeout=timeout
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"`{' '.join(command)}` failed ({done.returncode}): {done.stdout}{done.stderr}"
            )
        return done

    # -- start ---------------------------------------------------------------------------------

    def start(self) -> Cluster:
        start = time.monotonic()
        try:
            self._write_confs()
            self._start_munge()
            if self.accounting:
                self._start_mariadb()
                self._start_slurmdbd()
            self._start("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
            self._wait("slurmctld", lambda: "UP" in self.run("scontrol", "ping").stdout)
            self._start("slurmd", self._slurmd_command())
            self._wait("slurmd", self._node_ready)
        except BaseException:
            self.stop()
            raise
        self.timings["bring_up"] = time.monotonic() - start
        return self

    def _write_confs(self) -> None:
        for sub in ("etc", "log", "run", "state/ctld", "state/spool"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # munge and mysql reach their folders through it
        self.ports = {n: free_port() for n in ("slurmctld", "slurmd", "slurmdbd", "mariadbd")}
        self.munge_socket = self.root / "munge" / "munge.socket"
        accounting = (
            "AccountingStorageType=accounting_storage/slurmdbd\n"
            "AccountingStorageHost=localhost\n"
            f"AccountingStoragePort={self.ports['slurmdbd']}\n"
            # the munge socket of slurmdbd connections (AuthInfo covers the others)
            f"AccountingStoragePass={self.munge_socket}\n"
            "JobAcctGatherType=jobacct_gather/linux\n"
            if self.accounting
            else "AccountingStorageType=accounting_storage/none\n"
            "JobAcctGatherType=jobacct_gather/none\n"
        )
        log, run, state = self.root / "log", self.root / "run", self.root / "state"
        self.conf.write_text(
            f"ClusterName={self.name}\n"
            f"SlurmctldHost={self.node}(127.0.0.1)\n"
            f"SlurmctldPort={self.ports['slurmctld']}\n"
            f"SlurmdPort={self.ports['slurmd']}\n"
            "SlurmUser=root\n"
            "SlurmdUser=root\n"
            "AuthType=auth/munge\n"
            "CredType=cred/munge\n"
            f"AuthInfo=socket={self.munge_socket}\n"
            "ProctrackType=proctrack/linuxproc\n"
            "TaskPlugin=task/none\n"
            "MpiDefault=none\n"
            "SelectType=select/cons_tres\n"
            "SelectTypeParameters=CR_Core_Memory\n"
            "SchedulerType=sched/backfill\n"
            "ReturnToService=2\n"
            f"MinJobAge={self.min_job_age}\n"
            "SlurmdParameters=config_overrides\n"
            f"StateSaveLocation={state / 'ctld'}\n"
            f"SlurmdSpoolDir={state / 'spool'}\n"
            f"SlurmctldPidFile={run / 'slurmctld.pid'}\n"
            f"SlurmdPidFile={run / 'slurmd.pid'}\n"
            f"SlurmctldLogFile={log / 'slurmctld.log'}\n"
            f"SlurmdLogFile={log / 'slurmd.log'}\n"
            "SlurmctldDebug=info\n"
            "SlurmdDebug=info\n"
            "JobCompType=jobcomp/none\n"
            f"{accounting}"
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} "
            f"RealMemory={self.mem_mb} State=UNKNOWN\n"
            f"PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP\n"
        )

    def _start(self, name: str, command: list[str], **popen) -> subprocess.Popen:
        log = open(self.root / "log" / f"{name}.out", "ab")
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
            start_new_session=True,  # not in the test's process group: ^C there does not hit it
            **popen,
        )
        log.close()
        self.processes[name] = process
        with open(self.root / "pids", "a") as pids:
            pids.write(f"{name} {process.pid}\n")
        return process

    def _wait(self, name: str, ready, timeout: float = 30) -> None:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            process = self.processes[name]
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited ({process.returncode}):\n{self.logs(name)}")
            try:
                if ready():
                    self.timings[name] = time.monotonic() - start
                    return
            except (OSError, RuntimeError, subprocess.TimeoutExpired):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} not ready after {timeout} s:\n{self.logs(name)}")

    def logs(self, name: str, tail: int = 3000) -> str:
        text = ""
        for path in sorted((self.root / "log").glob(f"{name}*")):
            text += f"--- {path.name}\n{path.read_text(errors='replace')[-tail:]}\n"
        return text

    def _start_munge(self) -> None:
        folder = self.munge_socket.parent
        folder.mkdir(exist_ok=True)
        folder.chmod(0o755)  # clients reach the socket in it
        key = folder / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        shutil.chown(folder, "munge", "munge")
        shutil.chown(key, "munge", "munge")
        self._start(
            "munged",
            [
                "munged",
                "--foreground",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--pid-file={folder / 'munged.pid'}",
                f"--log-file={folder / 'munged.log'}",
                f"--seed-file={folder / 'munged.seed'}",
            ],
            user="munge",
            group="munge",
            extra_groups=[],
        )

        def ready() -> bool:
            cred = subprocess.run(
                ["munge", "-n", "-S", str(self.munge_socket)], capture_output=True, timeout=5
            )
            if cred.returncode != 0:
                return False
            back = subprocess.run(
                ["unmunge", "-S", str(self.munge_socket)],
                input=cred.stdout,
                capture_output=True,
                timeout=5,
            )
            return back.returncode == 0

        self._wait("munged", ready)

    def _start_mariadb(self) -> None:
        folder = self.root / "mysql"
        data = folder / "data"
        folder.mkdir(exist_ok=True)
        shutil.chown(folder, "mysql", "mysql")
        self.mysql_socket = folder / "mysqld.sock"
        installed = subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                "--user=mysql",
                f"--datadir={data}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            capture_output=True,
            text=True,
        )
        if installed.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed:\n{installed.stdout}{installed.stderr}")
        self._start(
            "mariadbd",
            [
                "mariadbd",
                "--no-defaults",
                "--user=mysql",
                f"--datadir={data}",
                f"--socket={self.mysql_socket}",
                f"--port={self.ports['mariadbd']}",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                f"--pid-file={folder / 'mariadbd.pid'}",
                "--innodb-buffer-pool-size=64M",
            ],
        )
        self._wait("mariadbd", lambda: self._sql("SELECT 1").returncode == 0)
        password = secrets.token_hex(12)
        (self.root / DB_PASSWORD_FILE).write_text(password)
        (self.root / DB_PASSWORD_FILE).chmod(0o600)
        done = self._sql(
            f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{password}';"
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
        )
        if done.returncode != 0:
            raise RuntimeError(f"creating the slurm DB user failed: {done.stderr}")

    def _sql(self, statement: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                "mariadb",
                "--no-defaults",
                f"--socket={self.mysql_socket}",
                "-u",
                "root",
                "-e",
                statement,
            ],
            capture_output=True,
            text=True,
            timeout=10,
        )

    def _start_slurmdbd(self) -> None:
        dbd = self.conf.parent / "slurmdbd.conf"  # slurmdbd looks beside $SLURM_CONF
        dbd.write_text(
            "AuthType=auth/munge\n"
            f"AuthInfo=socket={self.munge_socket}\n"
            "DbdHost=localhost\n"
            f"DbdPort={self.ports['slurmdbd']}\n"
            "SlurmUser=root\n"
            f"PidFile={self.root / 'run' / 'slurmdbd.pid'}\n"
            f"LogFile={self.root / 'log' / 'slurmdbd.log'}\n"
            "StorageType=accounting_storage/mysql\n"
            "StorageHost=127.0.0.1\n"
            f"StoragePort={self.ports['mariadbd']}\n"
            "StorageUser=slurm\n"
            f"StoragePass={(self.root / DB_PASSWORD_FILE).read_text()}\n"
            "StorageLoc=slurm_acct_db\n"
        )
        dbd.chmod(0o600)  # slurmdbd refuses a conf others can read; owned by SlurmUser (root)
        self._start("slurmdbd", ["slurmdbd", "-D"])
        self._wait(
            "slurmdbd", lambda: self.run("sacctmgr", "-n", "list", "cluster").returncode == 0
        )
        self.run("sacctmgr", "-i", "add", "cluster", self.name)

    def _slurmd_command(self) -> list[str]:
        """slurmd in a mount namespace of its own where this cluster's etc/ is /etc/slurm: the
        jobs it starts find slurm.conf where a real cluster keeps it. (The SLURM executor's
        job step strips SLURM_CONF from the `srun` it runs in each job, and srun has no other
        way to find a config outside /etc/slurm.) Nothing changes outside slurmd's processes,
        so two clusters can run side by side.

        Where mount namespaces are not allowed (an unprivileged container), /etc/slurm/slurm.conf
        becomes a link to this cluster's conf if there is none (removed at stop); else the
        cluster cannot be had here."""
        etc = Path("/etc/slurm")
        etc.mkdir(exist_ok=True)
        slurmd = ["slurmd", "-D", "-N", self.node, "-f", str(self.conf)]
        probe = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True
        )
        if probe.returncode != 0:
            link = etc / "slurm.conf"
            if link.exists() or link.is_symlink():
                raise Unavailable(
                    "no mount namespaces here (unshare --mount fails) and /etc/slurm/slurm.conf "
                    "exists: the jobs' srun would not find this cluster's conf"
                )
            link.symlink_to(self.conf)
            return slurmd
        mount = shlex.join(["mount", "--bind", str(self.conf.parent), str(etc)])
        # unshare and sh exec: the PID recorded is slurmd's
        return ["unshare", "--mount", "--propagation", "private", "--",
                "sh", "-c", f"{mount} && exec {shlex.join(slurmd)}"]  # fmt: skip

    def _node_ready(self) -> bool:
        state = self.run("sinfo", "-h", "-n", self.node, "-o", "%T", check=False).stdout
        return state.strip() in ("idle", "mixed", "allocated")

    # -- stop ----------------------------------------------------------------------------------

    def cancel_jobs(self) -> list[str]:
        """Cancel every job of this cluster; the ids that were left."""
        if not self.conf.exists() or "slurmctld" not in self.pids():
            return []
        listed = self.run("squeue", "-h", "-o", "%i", check=False)
        left = listed.stdout.split()
        if left:
            self.run("scancel", *left, check=False)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if not self.run("squeue", "-h", "-o", "%i", check=False).stdout.split():
                    break
                time.sleep(0.5)
        return left

    def pids(self) -> dict[str, int]:
        path = self.root / "pids"
        if not path.exists():
            return {}
        return {
            name: int(pid)
            for name, pid in (
                line.split() for line in path.read_text().splitlines() if line.strip()
            )
        }

    def stop(self) -> None:
        """Cancel the jobs left, then stop the daemons by their recorded PIDs, last started
        first (SIGTERM, SIGKILL after 15 s)."""
        try:
            self.cancel_jobs()
        except (OSError, subprocess.SubprocessError):
            pass
        pids = self.pids()
        for name in reversed(DAEMONS):
            pid = pids.get(name)
            if pid is None:
                continue
            process = self.processes.get(name)
            stop_pid(pid, process)
        (self.root / "pids").unlink(missing_ok=True)
        self.processes.clear()
        link = Path("/etc/slurm/slurm.conf")  # the fallback of _slurmd_command, if ours
        if link.is_symlink() and link.resolve() == self.conf.resolve():
            link.unlink()


def stop_pid(pid: int, process: subprocess.Popen | None = None, grace: float = 15) -> None:
    """SIGTERM `pid`, wait up to `grace` s, then SIGKILL; reap it if it is our child."""
    if not pid_alive(pid):
        if process:
            process.poll()
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if process is not None:
        process.wait(timeout=10)


def new_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="ckpt-eval-slurm-", dir="/tmp"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="install what is missing, start, print the folder")
    start.add_argument("--cpus", type=int, default=machine_cpus())
    start.add_argument("--mem-mb", type=int, default=machine_mem_mb() * 9 // 10)
    start.add_argument("--no-accounting", action="store_true")
    start.add_argument("--dir", type=Path, help="folder (default: a new one under /tmp)")
    stop = sub.add_parser("stop", help="cancel the jobs, stop the daemons of a folder")
    stop.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    if args.command == "start":
        try:
            seconds = install(accounting=not args.no_accounting)
        except Unavailable as error:
            print(f"cannot set up SLURM here: {error}", file=sys.stderr)
            return 2
        cluster = Cluster(
            args.dir or new_root(),
            cpus=args.cpus,
            mem_mb=args.mem_mb,
            accounting=not args.no_accounting,
        ).start()
        print(
            f"installed in {seconds:.1f} s, up in {cluster.timings['bring_up']:.1f} s",
            file=sys.stderr,
        )
        print(f"export SLURM_CONF={cluster.conf}", file=sys.stderr)
        print(cluster.root)
    else:
        Cluster(args.dir).stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
