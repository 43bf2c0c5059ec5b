"""JupyterHub with jupyterhub-moss (PyPI jupyterhub-moss on batchspawner) spawning single-user
servers as jobs of the tests' own single-node Slurm (tests/slurm_fixture.py), as ESRF runs it.

Partitions ``cpu`` (no GPU) and ``gpu`` (one GPU, gres ``gpu:{}``); environments ``default`` and
``lab``, both the test virtualenv's bin directory. The sandbox runs as root without system accounts
for hub users: jobs are submitted without ``sudo -u`` (ESRF keeps moss's ``sudo -E -u {username}``)
and everyone's job starts in one home directory. Hub user names follow ``username_pattern``.
"""
from __future__ import annotations

import sys
from pathlib import Path

from tests.jupyterhub_fixture import RunningHub, start_hub
from tests.slurm_fixture import RunningSlurm

USERNAME_PATTERN = r"^[a-z][a-z0-9_.-]{0,31}$"
SLOW_SPAWN_SECONDS = 4
BIN = str(Path(sys.executable).parent)

MOSS_CONFIG = f'''
SLOW_SPAWN_SECONDS = {SLOW_SPAWN_SECONDS}
import jupyterhub_moss
import traitlets


class SandboxMOSlurmSpawner(jupyterhub_moss.MOSlurmSpawner):
    """moss unchanged, except that hub users have no system account here (batchspawner looks them
    up with getpwnam): every job runs as root in one home directory."""

    @traitlets.default("req_homedir")
    def _homedir(self):
        return os.environ["HUB_DIR"] + "/home"

    def user_env(self, env):
        env.update(USER=self.user.name, HOME=self.req_homedir, SHELL="/bin/bash")
        return env


jupyterhub_moss.set_config(c)
c.JupyterHub.spawner_class = SandboxMOSlurmSpawner
c.MOSlurmSpawner.exec_prefix = ""  # ESRF: "sudo -E -u {{username}}" (the default); here everything runs as root
c.MOSlurmSpawner.state_exechost_exp = "127.0.0.1"  # the node's name is not an address here
c.MOSlurmSpawner.start_timeout = 120
c.MOSlurmSpawner.startup_poll_interval = 0.5
c.Spawner.env_keep = ["PATH", "LANG", "LC_ALL", "SLURM_CONF", "VIRTUAL_ENV"]
c.Spawner.args = ["--allow-root"]
# ESRF keeps JupyterHub's 10 s; shorter here so that a start held by the hub costs the tests less time
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": SLOW_SPAWN_SECONDS}}
c.Authenticator.username_pattern = {USERNAME_PATTERN!r}
c.JupyterHub.log_level = "INFO"  # batchspawner's submit, stop and scancel lines, for a failing test's message
c.MOSlurmSpawner.partitions = {{
    "cpu": {{"description": "x86 CPUs", "architecture": "x86_86", "gpu": "", "simple": True, "max_runtime": 14400,
             "jupyter_environments": {{
                 "default": {{"description": "Python 3 (test environment)", "path": {BIN!r}}},
                 "lab": {{"description": "JupyterLab (test environment)", "path": {BIN!r}}}}}}},
    "gpu": {{"description": "GPU node", "architecture": "x86_86", "gpu": "gpu:{{}}", "max_ngpus": 1, "simple": True,
             "max_runtime": 14400, "jupyter_environments": {{
                 "default": {{"description": "Python 3 (test environment)", "path": {BIN!r}}}}}}},
}}
'''


def start_moss_hub(workdir: Path, slurm: RunningSlurm, extra_config: str = "") -> RunningHub:
    """A moss hub on loopback whose jobs go to ``slurm``."""
    (workdir / "home").mkdir(parents=True, exist_ok=True)
    return start_hub(workdir, MOSS_CONFIG + extra_config, env={"SLURM_CONF": slurm.env["SLURM_CONF"]})
