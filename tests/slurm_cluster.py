"""A real single-node SLURM cluster on this machine, for the profiles/slurm integration test.

Debian's munge, slurmctld, slurmd and slurm-client (``make system-deps``) provide the daemons;
nothing starts them on a container, so this module does: ``munged``, ``slurmctld -D`` and
``slurmd -D``, each stopped by PID. State, logs, the munge key and socket live in a temporary
folder. The node offers this machine's cores, 90% of its memory and two fake GPUs (GRES backed
by plain files), so rules that ask for a GPU are scheduled as they would be on a GPU cluster.

The one file written outside the temporary folder is ``/etc/slurm/slurm.conf`` (and
``gres.conf``): the Snakemake SLURM plugin strips ``SLURM_CONF`` from the environment of the
``srun`` it starts inside each job, so the job step only finds the default path. The cluster
refuses to start over an existing configuration and removes its own on stop.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "sinfo", "srun")
SYSTEM_CONF = Path("/etc/slurm")


def unavailable_reason() -> str | None:
    """Why a cluster cannot be started here, or ``None`` when it can."""
    if os.geteuid() != 0:
        return "starting munged, slurmctld and slurmd needs root"
    missing = [name for name in DAEMONS + CLIENTS if shutil.which(name) is None
               and not Path("/usr/sbin", name).exists()]
    if missing:
        return (f"{', '.join(missing)} not installed: run `make system-deps` (Debian packages "
                "munge slurmctld slurmd slurm-client)")
    for name in ("slurm.conf", "gres.conf"):
        if (SYSTEM_CONF / name).exists():
            return (f"{SYSTEM_CONF / name} exists; refusing to replace a real cluster's "
                    "configuration")
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


class SlurmCluster:
    """munged + slurmctld + slurmd on 127.0.0.1, one partition ``debug`` with one node."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.node = socket.gethostname().split(".")[0]
        self.cpus = os.cpu_count() or 1
        self.memory_mb = int(_memory_mb() * 0.9)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.env = {**os.environ, "SLURM_CONF": str(SYSTEM_CONF / "slurm.conf")}

    def _config(self) -> str:
        r = self.root
        return "\n".join([
            "ClusterName=hybridrec-test",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            f"AuthInfo=socket={r}/munge.socket",
            f"StateSaveLocation={r}/state",
            f"SlurmdSpoolDir={r}/spool",
            f"SlurmctldPidFile={r}/slurmctld.pid",
            f"SlurmdPidFile={r}/slurmd.pid",
            f"SlurmctldLogFile={r}/log/slurmctld.log",
            f"SlurmdLogFile={r}/log/slurmd.log",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "MpiDefault=none",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            # without a default, one job would be given the whole node's memory
            "DefMemPerCPU=1000",
            # no accounting daemon: finished jobs stay visible to squeue for an hour
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            "MinJobAge=3600",
            "ReturnToService=2",
            "GresTypes=gpu",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} "
            f"RealMemory={self.memory_mb} Gres=gpu:2 State=UNKNOWN",
            f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
            "",
        ])

    def _spawn(self, name: str, *args: str) -> None:
        out = open(self.root / "log" / f"{name}.out", "wb")  # noqa: SIM115 (closed with the daemon)
        self.processes[name] = subprocess.Popen([name, *args], stdout=out,
                                                stderr=subprocess.STDOUT, env=self.env)

    def start(self, timeout: float = 60.0) -> None:
        for folder in ("state", "spool", "log"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        key = self.root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        for index in range(2):
            (self.root / f"fakegpu{index}").touch()
        SYSTEM_CONF.mkdir(parents=True, exist_ok=True)
        (SYSTEM_CONF / "slurm.conf").write_text(self._config())
        (SYSTEM_CONF / "gres.conf").write_text(
            f"AutoDetect=off\nNodeName={self.node} Name=gpu File={self.root}/fakegpu[0-1]\n")
        self._spawn("munged", "--foreground", "--force", f"--socket={self.root}/munge.socket",
                    f"--key-file={key}", f"--pid-file={self.root}/munged.pid",
                    f"--seed-file={self.root}/munge.seed",
                    f"--log-file={self.root}/log/munged.log")
        self._wait_for(lambda: (self.root / "munge.socket").exists(), timeout, "munged")
        self._spawn("slurmctld", "-D", "-i")
        self._spawn("slurmd", "-D", "-N", self.node)
        self._wait_for(self._node_idle, timeout, "the node to become idle")

    def _node_idle(self) -> bool:
        state = self.run("sinfo", "--noheader", "--format=%T", check=False).stdout.strip()
        return state == "idle"

    def _wait_for(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}: "
                                       f"{self.logs()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:.0f} s for {what}: {self.logs()[-3000:]}")
            time.sleep(0.2)

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, env=self.env, capture_output=True, text=True,
                              check=check, timeout=60)

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')}"
                         for path in sorted((self.root / "log").glob("*")))

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for name in ("slurm.conf", "gres.conf"):
            (SYSTEM_CONF / name).unlink(missing_ok=True)
