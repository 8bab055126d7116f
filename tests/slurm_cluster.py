"""A real single-node SLURM cluster (munged + slurmctld + slurmd) that a test session starts and stops.

Everything (config, state, spool, logs, pid files, the munge socket) lives under one temp folder, the
daemons listen on free ports, and ``SLURM_CONF`` points the client commands at it, so the cluster neither
needs nor touches anything in /etc beyond copying the installed munge key. Without accounting
(no slurmdbd), ``sacct`` fails and finished jobs are read from ``scontrol show job`` — the fallback a
cluster without accounting needs. Daemons are stopped by the pids in their pid files.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REQUIRED_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol")
MUNGE_KEY = Path("/etc/munge/munge.key")
_SBIN = ("/usr/sbin", "/usr/bin", "/sbin")


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(Path(folder, name)) for folder in _SBIN if Path(folder, name).is_file()), None
    )


def missing_requirements() -> list[str]:
    """What is missing to run a cluster here (binaries, the munge key, root)."""
    missing = [name for name in REQUIRED_BINARIES if _which(name) is None]
    if not MUNGE_KEY.is_file():
        missing.append(str(MUNGE_KEY))
    if os.geteuid() != 0:
        missing.append("root (SlurmUser=root)")
    return missing


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SlurmCluster:
    """A running cluster; ``env`` is what client commands (sbatch, squeue...) need."""

    base: Path
    conf: Path
    pid_files: list[Path] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a SLURM client command against this cluster."""
        return subprocess.run(list(argv), env={**os.environ, **self.env}, capture_output=True, text=True,
                              timeout=30, check=check)

    def wait_until_idle(self, timeout: float = 30.0) -> None:
        """Wait until the node accepts jobs (it registers with slurmctld within a few seconds)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            result = self.run("sinfo", "--noheader", "--format=%T", check=False)
            last = result.stdout.strip() + result.stderr.strip()
            if result.returncode == 0 and last in ("idle", "mixed", "allocated"):
                return
            time.sleep(0.3)
        raise RuntimeError(f"SLURM node not idle after {timeout} s (sinfo: {last!r}); logs in {self.base}")

    def stop(self) -> None:
        """Stop every daemon by its pid file: SIGTERM, then SIGKILL after a few seconds."""
        for pid_file in reversed(self.pid_files):
            try:
                pid = int(pid_file.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                time.sleep(0.1)
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)


def _slurm_conf(base: Path, ctld_port: int, slurmd_port: int, socket_path: Path) -> str:
    return f"""# nnwatch test cluster
ClusterName=nnwatchtest
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={socket_path}
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
MinJobAge=3600
KillWait=5
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/slurmctld.log
SlurmdLogFile={base}/slurmd.log
NodeName=localhost CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def start_cluster(base: Path, timeout: float = 30.0) -> SlurmCluster:
    """Start munged, slurmctld and slurmd under ``base`` and wait for the node to be idle (~2-5 s)."""
    base = base.absolute()
    munge_dir = base / "munge"
    for folder in (munge_dir, base / "state", base / "spool"):
        folder.mkdir(parents=True, exist_ok=True)
    os.chmod(munge_dir, 0o755)
    key = munge_dir / "munge.key"
    shutil.copyfile(MUNGE_KEY, key)
    os.chmod(key, 0o600)
    socket_path = munge_dir / "munge.socket.2"
    conf = base / "slurm.conf"
    conf.write_text(_slurm_conf(base, _free_port(), _free_port(), socket_path))
    cluster = SlurmCluster(base=base, conf=conf)
    env = {**os.environ, **cluster.env}
    steps = [
        (munge_dir / "munged.pid",
         [_which("munged"), f"--key-file={key}", f"--socket={socket_path}", f"--pid-file={munge_dir}/munged.pid",
          f"--log-file={munge_dir}/munged.log", f"--seed-file={munge_dir}/munged.seed", "--force"]),
        (base / "slurmctld.pid", [_which("slurmctld"), "-c", "-f", str(conf)]),
        (base / "slurmd.pid", [_which("slurmd"), "-N", "localhost", "-f", str(conf)]),
    ]
    try:
        for pid_file, argv in steps:
            subprocess.run([str(arg) for arg in argv], env=env, check=True, capture_output=True, timeout=30)
            cluster.pid_files.append(pid_file)
            deadline = time.monotonic() + 10
            while not pid_file.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        cluster.wait_until_idle(timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster
