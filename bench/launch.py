"""Launch benchmarks against real hubs on this machine: a plain JupyterHub (local processes) and
JupyterHub + jupyterhub-moss spawning Slurm jobs (Debian slurm-wlm + munge, started here). For each:
the broker's time to a ready server against calling the hub directly (p50/p95 and ratio), the broker's
own time per launch, and N launches submitted at once (how many end ready, time until the last).

Run: `python bench/launch.py [--sequential 10] [--burst 20 50] [--moss-sequential 5] [--moss-burst 10]`
(needs `make test`'s installs; the moss part is skipped, saying why, where Slurm cannot run).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import requests  # noqa: E402

from panbroker.app import build_broker  # noqa: E402
from broker.authz import Principal  # noqa: E402
from broker.registry_kinds import KINDS  # noqa: E402
from panmodel.datasets import Dataset  # noqa: E402
from broker.settings import Settings, loopback_networks  # noqa: E402
from tests.jupyterhub_fixture import start_hub, stop_hub  # noqa: E402
from tests.moss_fixture import BIN, start_moss_hub  # noqa: E402
from tests.slurm_fixture import missing_reason, start_slurm, stop_slurm  # noqa: E402

ADMIN = Principal("bench", admin=True)
POLL = 0.2


def pct(samples: list[float]) -> tuple[float, float]:
    if len(samples) < 2:
        return samples[0], samples[0]
    q = statistics.quantiles(samples, n=20)
    return statistics.median(samples), q[18]


def direct(hub, user: str, server: str, options: dict | None = None) -> float:  # noqa: ANN001
    """Time to ready calling the hub's API directly, polling like the broker does."""
    headers = {"Authorization": f"token {hub.token}"}
    started = time.perf_counter()
    requests.post(f"{hub.url}/hub/api/users/{user}", headers=headers, timeout=10)
    requests.post(f"{hub.url}/hub/api/users/{user}/servers/{server}", headers=headers, json=options or {"x": 1},
                  timeout=60)
    while True:
        servers = requests.get(f"{hub.url}/hub/api/users/{user}", headers=headers, timeout=10).json()["servers"]
        if servers.get(server, {}).get("ready"):
            elapsed = time.perf_counter() - started
            requests.delete(f"{hub.url}/hub/api/users/{user}/servers/{server}", headers=headers,
                            json={"remove": True}, timeout=60)
            return elapsed
        time.sleep(POLL)


class StepClock:
    """The broker's own work: the worker's steps (they run on starter threads) less the time they
    spent waiting for the hub inside the HTTP clients; followers only wait on the hub's stream."""

    def __init__(self, launches) -> None:  # noqa: ANN001 - broker.launch.runner.LaunchRunner
        self.stepped = self.waited = 0.0
        self._inside = threading.local()
        self._lock = threading.Lock()
        step = launches._step  # noqa: SLF001 - measured, not changed

        def timed_step(launch_id: str) -> None:
            started = time.perf_counter()
            self._inside.on = True
            try:
                step(launch_id)
            finally:
                self._inside.on = False
                with self._lock:
                    self.stepped += time.perf_counter() - started

        launches._step = timed_step  # noqa: SLF001
        for client in (launches.http, launches.start_http):
            self._wrap(client)

    def _wrap(self, client) -> None:  # noqa: ANN001
        original = client.request

        def timed(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                if getattr(self._inside, "on", False):
                    with self._lock:
                        self.waited += time.perf_counter() - started

        client.request = timed

    def own(self) -> float:
        return self.stepped - self.waited


def through_broker(broker, clock: StepClock, actor, key: str, pid: str, body: dict) -> tuple[float, float, float]:  # noqa: ANN001
    """(time to ready, time of the create call itself, the broker's own time: the create call, the
    worker's rounds and every step for this launch, less the time the steps spent waiting for the hub)."""
    own_before = clock.own()
    started = time.perf_counter()
    launch, _ = broker.launches.create(actor, key, {"dataset": pid, **body})
    created = time.perf_counter() - started
    rounds = 0.0
    while broker.launches.get(actor, launch["id"])["state"] not in ("ready", "failed"):
        step = time.perf_counter()
        broker.launch_runner.advance()
        rounds += time.perf_counter() - step
        time.sleep(POLL)
    elapsed = time.perf_counter() - started
    broker.launch_runner.wait_for_steps()
    own = created + rounds + clock.own() - own_before
    broker.launches.cancel(actor, launch["id"])
    return elapsed, created, own


def measure(label: str, hub, broker, service: dict, direct_options: dict | None, body: dict,  # noqa: ANN001
            sequential: int, bursts: list[int], offset: int) -> None:
    broker.registry.create(ADMIN, KINDS.service, service)
    clock = StepClock(broker.launch_runner)
    direct_times, broker_times, create_times, own_times = [], [], [], []
    for n in range(sequential):  # interleaved, so that both see the hub in the same state
        direct_times.append(direct(hub, f"direct{offset}x{n}", "s", direct_options))
        person = broker.people.create(ADMIN, {"display_name": f"u{n}",
                                              "identities": [{"issuer": "idp", "subject": f"seq{offset}x{n}"}]})
        elapsed, created, own = through_broker(broker, clock, Principal(f"person:{person['id']}"),
                                               f"seq{n}", f"fac/{offset + n:04d}", body)
        broker_times.append(elapsed)
        create_times.append(created * 1000)
        own_times.append(own * 1000)
    d50, d95 = pct(direct_times)
    b50, b95 = pct(broker_times)
    c50, c95 = pct(create_times)
    o50, o95 = pct(own_times)
    print(f"{label}: JupyterHub {requests.get(hub.url + '/hub/api/', timeout=5).json()['version']}, "
          f"polling every {POLL} s; {sequential} launches each way")
    print(f"  time to ready, hub called directly:   p50 {d50:.2f} s  p95 {d95:.2f} s")
    print(f"  time to ready, through the broker:    p50 {b50:.2f} s  p95 {b95:.2f} s  (ratio p50 {b50 / d50:.2f})")
    print(f"  broker's own time per launch (request + worker rounds + steps, less waiting for the hub): "
          f"p50 {o50:.1f} ms, p95 {o95:.1f} ms")
    print(f"  the launch request itself (route + record): p50 {c50:.1f} ms, p95 {c95:.1f} ms; "
          f"time-to-ready difference p50 {(b50 - d50) * 1000:.0f} ms (spawn-time noise and step spacing)")
    offset += sequential
    for size in bursts:
        person = broker.people.create(ADMIN, {"display_name": f"burst{size}",
                                              "identities": [{"issuer": "idp", "subject": f"burst{offset}x{size}"}]})
        actor = Principal(f"person:{person['id']}")
        started = time.perf_counter()
        ids = [broker.launches.create(actor, f"b{size}-{n}", {"dataset": f"fac/{offset + n:04d}", **body})[0]["id"]
               for n in range(size)]
        offset += size
        while True:
            broker.launch_runner.advance()
            states = [broker.launches.get(actor, i)["state"] for i in ids]
            if all(s in ("ready", "failed") for s in states):
                break
            time.sleep(POLL)
        last = time.perf_counter() - started
        print(f"  {size} launches submitted at once (at most 4 starting at a time): "
              f"{states.count('ready')} of {size} ready, the last after {last:.1f} s")
        broker.launch_runner.wait_for_steps()
        for i in ids:
            broker.launches.cancel(actor, i)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=10)
    parser.add_argument("--burst", type=int, nargs="*", default=[20, 50])
    parser.add_argument("--moss-sequential", type=int, default=5)
    parser.add_argument("--moss-burst", type=int, nargs="*", default=[10])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = build_broker(Settings(data_dir=Path(tmp) / "broker", log_level="WARNING",
                                       allowed_networks=loopback_networks(), http_retries=0))
        broker.registry.create(ADMIN, KINDS.facility, {"id": "fac", "name": "F", "country": "FR",
                                                       "accepted_issuers": ["idp"]})
        total = args.sequential + sum(args.burst) + args.moss_sequential + sum(args.moss_burst)
        broker.index.upsert([Dataset(pid=f"fac/{n:04d}", facility="fac", title=f"run {n}", source="s")
                             for n in range(total)])
        broker.index.commit()
        hub = start_hub(Path(tmp) / "hub")
        try:
            measure("plain hub (SimpleLocalProcessSpawner)", hub, broker, {
                "id": "hub", "facility_id": "fac", "kind": "jupyterhub", "title": "Hub", "base_url": hub.url,
                "launch_mode": "api", "credential": hub.token, "connector_config": {"start_timeout_seconds": 300}},
                None, {"service_id": "hub"}, args.sequential, args.burst, 0)
        finally:
            stop_hub(hub)
        reason = missing_reason()
        if reason:
            print(f"moss hub on Slurm: SKIPPED ({reason})")
        else:
            moss(args, broker, Path(tmp), args.sequential + sum(args.burst))
        broker.index.close()


def moss(args, broker, tmp: Path, offset: int) -> None:  # noqa: ANN001
    """The moss hub: one node declaring 16 CPUs and 8 GB, sessions of 1 CPU and 256 MB."""
    slurm = start_slurm(tmp / "slurm", cpus=16, memory_mb=8000)
    hub = None
    try:
        hub = start_moss_hub(tmp / "moss-hub", slurm)
        options = {"partition": "cpu", "runtime": "1:00:00", "nprocs": 1, "memory": "256M", "reservation": "",
                   "ngpus": 0, "options": "", "output": "/dev/null", "environment_id": "default",
                   "environment_path": BIN, "environment_modules": "", "default_url": "/lab",
                   "root_dir": str(tmp), "gres": "", "prologue": ""}
        measure("moss hub on Slurm (jupyterhub-moss, batchspawner, slurm-wlm)", hub, broker, {
            "id": "moss", "facility_id": "fac", "kind": "jupyterhub", "title": "Moss hub", "base_url": hub.url,
            "launch_mode": "api", "credential": hub.token,
            "capabilities": {"partitions": [{"id": "cpu", "max_cpus": 16, "max_memory_gb": 7.8}]},
            "connector_config": {"flavour": "moss", "start_timeout_seconds": 300, "slow_spawn_timeout_seconds": 4,
                                 "environments": {"default": {"path": BIN}},
                                 "user_options": {"runtime": "1:00:00", "default_url": "/lab"}}},
            options, {"service_id": "moss", "resources": {"memory_gb": 0.25}}, args.moss_sequential, args.moss_burst,
            offset)
    finally:
        if hub is not None:
            stop_hub(hub)
        stop_slurm(slurm)


if __name__ == "__main__":
    main()
