"""A single-node Slurm (Debian slurm-wlm + munge) on loopback, started by the tests themselves.

The sandbox has no systemd and no cgroups to delegate: munged, slurmctld and slurmd run in the
foreground from a working directory with a generated, cgroup-free slurm.conf (proctrack/linuxproc,
task/none, no accounting). Two partitions share the one node: ``cpu`` (no GPU) and ``gpu`` (one
GPU declared as a count-only gres, as a facility's GPU nodes are declared to Slurm). Every command
that talks to this Slurm needs ``SLURM_CONF`` from :attr:`RunningSlurm.env`.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.jupyterhub_fixture import _free_ports

NODE_CPUS = 4  # declared; slurmd takes the configuration's word for it (config_overrides)
NODE_MEMORY_MB = 3900
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")

SLURM_CONF = """\
ClusterName=panbroker
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
LaunchParameters=use_interactive_step
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
ReturnToService=2
EnforcePartLimits=ALL
MailProg=/bin/true
SchedulerParameters=sched_interval=2
MinJobAge=30
KillWait=1
InactiveLimit=0
SlurmctldTimeout=10
SlurmdTimeout=30
NodeName=pbnode NodeAddr=127.0.0.1 NodeHostname={host} CPUs={cpus} RealMemory={memory} Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=pbnode Default=YES MaxTime=04:00:00 State=UP
PartitionName=gpu Nodes=pbnode MaxTime=04:00:00 State=UP
"""


@dataclass
class RunningSlurm:
    directory: Path
    env: dict[str, str]
    processes: list[subprocess.Popen] = field(default_factory=list)

    def run(self, *command: str) -> str:
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=20, check=True).stdout

    def jobs(self) -> list[dict[str, str]]:
        """The jobs Slurm holds (pending or running): id, name, state, reason."""
        out = self.run("squeue", "--noheader", "--format=%i|%j|%T|%r")
        return [dict(zip(("id", "name", "state", "reason"), line.split("|"))) for line in out.splitlines() if line]


def missing_reason() -> str | None:
    """Why Slurm cannot run here, or None."""
    absent = [p for p in PROGRAMS if shutil.which(p) is None and not Path("/usr/sbin", p).exists()]
    if absent:
        return f"{', '.join(absent)} not installed (make test installs Debian slurm-wlm and munge)"
    if os.geteuid() != 0:
        return "slurmd must run as root to start jobs, and these tests are not running as root"
    return None


def _program(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def start_slurm(directory: Path, cpus: int = NODE_CPUS, memory_mb: int = NODE_MEMORY_MB) -> RunningSlurm:
    """munged, slurmctld and slurmd in the foreground; waits until the node takes jobs. Skips the
    calling tests, saying why, when Slurm cannot run on this machine."""
    reason = missing_reason()
    if reason:
        pytest.skip(f"Slurm cannot run: {reason}: moss+Slurm launch tests SKIPPED")
    directory.mkdir(parents=True, exist_ok=True)
    munge = directory / "munge"
    for sub in (munge, directory / "state", directory / "spool"):
        sub.mkdir(exist_ok=True)
    munge.chmod(0o700)
    key = munge / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    munge_socket = munge / "munge.socket"
    ctld_port, d_port = _free_ports(2)
    conf = directory / "slurm.conf"
    conf.write_text(SLURM_CONF.format(host=socket.gethostname(), ctld_port=ctld_port, d_port=d_port,
                                      munge_socket=munge_socket, dir=directory, cpus=cpus,
                                      memory=memory_mb))
    (directory / "gres.conf").write_text("NodeName=pbnode Name=gpu File=/dev/null\n")
    env = {**os.environ, "SLURM_CONF": str(conf)}
    running = RunningSlurm(directory, env)
    logs = open(directory / "daemons.log", "w")  # noqa: SIM115 - closed with the processes
    running.processes.append(subprocess.Popen(
        [_program("munged"), "-F", "-f", f"--key-file={key}", f"--socket={munge_socket}",
         f"--pid-file={munge}/munged.pid", f"--seed-file={munge}/seed", f"--log-file={munge}/munged.log"],
        env=env, stdout=logs, stderr=subprocess.STDOUT))
    _wait(lambda: munge_socket.exists(), 10, "munged did not create its socket", running)
    running.processes.append(subprocess.Popen([_program("slurmctld"), "-D", "-i", "-f", str(conf)],
                                              env=env, stdout=logs, stderr=subprocess.STDOUT))
    running.processes.append(subprocess.Popen([_program("slurmd"), "-D", "-N", "pbnode", "-f", str(conf)],
                                              env=env, stdout=logs, stderr=subprocess.STDOUT))

    def node_idle() -> bool:
        try:
            return running.run("sinfo", "--noheader", "--nodes=pbnode", "--format=%t").split()[0] in ("idle", "mix")
        except (subprocess.SubprocessError, IndexError):
            return False

    _wait(node_idle, 30, "the Slurm node never became idle", running)
    return running


def _wait(ready, seconds: float, what: str, running: RunningSlurm) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        if any(p.poll() is not None for p in running.processes):
            break
        time.sleep(0.3)
    logs = "\n".join((running.directory / name).read_text()[-1500:] for name in
                     ("daemons.log", "slurmctld.log", "slurmd.log") if (running.directory / name).exists())
    stop_slurm(running)
    raise RuntimeError(f"{what}:\n{logs}")


def stop_slurm(running: RunningSlurm) -> None:
    """Cancel every job, then stop the daemons (slurmd first, munged last)."""
    try:
        subprocess.run(["scancel", "--full", "--user=root"], env=running.env, timeout=10, capture_output=True)
    except (subprocess.SubprocessError, OSError):
        pass
    for process in reversed(running.processes):
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
