"""Launch benchmarks against a real JupyterHub on this machine: the broker's time to a ready server
against calling the hub directly (p50/p95 and ratio), the cost of the launch request itself, and N
launches submitted at once (how many end ready, time until the last).

Run: `python bench/launch.py [--sequential 10] [--burst 20 50]` (needs `make test`'s installs).
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

from broker.app import build_broker  # noqa: E402
from broker.authz import Principal  # noqa: E402
from broker.registry_kinds import KINDS  # noqa: E402
from broker.search.model import Dataset  # noqa: E402
from broker.settings import Settings, loopback_networks  # noqa: E402
from tests.jupyterhub_fixture import start_hub, stop_hub  # noqa: E402

ADMIN = Principal("bench", admin=True)
POLL = 0.2


def pct(samples: list[float]) -> tuple[float, float]:
    if len(samples) < 2:
        return samples[0], samples[0]
    q = statistics.quantiles(samples, n=20)
    return statistics.median(samples), q[18]


def direct(hub, user: str, server: str) -> float:  # noqa: ANN001
    """Time to ready calling the hub's API directly, polling like the broker does."""
    headers = {"Authorization": f"token {hub.token}"}
    started = time.perf_counter()
    requests.post(f"{hub.url}/hub/api/users/{user}", headers=headers, timeout=10)
    requests.post(f"{hub.url}/hub/api/users/{user}/servers/{server}", headers=headers, json={"x": 1}, timeout=30)
    while True:
        servers = requests.get(f"{hub.url}/hub/api/users/{user}", headers=headers, timeout=10).json()["servers"]
        if servers.get(server, {}).get("ready"):
            elapsed = time.perf_counter() - started
            requests.delete(f"{hub.url}/hub/api/users/{user}/servers/{server}", headers=headers,
                            json={"remove": True}, timeout=30)
            return elapsed
        time.sleep(POLL)


class WaitClock:
    """Time this thread spends waiting for the hub inside the broker's HTTP client."""

    def __init__(self, client) -> None:  # noqa: ANN001
        self.waited = 0.0
        self.thread = threading.get_ident()
        original = client.request

        def timed(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                if threading.get_ident() == self.thread:
                    self.waited += time.perf_counter() - started

        client.request = timed


def through_broker(broker, clock: WaitClock, actor, key: str, pid: str) -> tuple[float, float, float]:  # noqa: ANN001
    """(time to ready, time of the create call itself, the broker's own time: the create call and every
    worker step for this launch, less the time they spent waiting for the hub)."""
    started = time.perf_counter()
    launch, _ = broker.launches.create(actor, key, {"dataset": pid, "kind": "jupyterhub"})
    created = time.perf_counter() - started
    own, waited_before = created, clock.waited
    while broker.launches.get(actor, launch["id"])["state"] not in ("ready", "failed"):
        step = time.perf_counter()
        broker.launches.advance()
        own += time.perf_counter() - step
        time.sleep(POLL)
    elapsed = time.perf_counter() - started
    own -= clock.waited - waited_before
    broker.launches.cancel(actor, launch["id"])
    return elapsed, created, own


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=10)
    parser.add_argument("--burst", type=int, nargs="*", default=[20, 50])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        hub = start_hub(Path(tmp) / "hub")
        try:
            broker = build_broker(Settings(data_dir=Path(tmp) / "broker", log_level="WARNING",
                                           allowed_networks=loopback_networks(), http_retries=0))
            broker.registry.create(ADMIN, KINDS.facility, {"id": "fac", "name": "F", "country": "FR",
                                                           "accepted_issuers": ["idp"]})
            broker.registry.create(ADMIN, KINDS.service, {
                "id": "hub", "facility_id": "fac", "kind": "jupyterhub", "title": "Hub", "base_url": hub.url,
                "launch_mode": "api", "credential": hub.token, "connector_config": {"start_timeout_seconds": 300}})
            total = args.sequential + sum(args.burst)
            broker.index.upsert([Dataset(pid=f"fac/{n:04d}", facility="fac", title=f"run {n}", source="s")
                                 for n in range(total)])
            broker.index.commit()

            clock = WaitClock(broker.http)
            direct_times, broker_times, create_times, own_times = [], [], [], []
            for n in range(args.sequential):  # interleaved, so that both see the hub in the same state
                direct_times.append(direct(hub, f"direct{n}", "s"))
                person = broker.people.create(ADMIN, {"display_name": f"u{n}",
                                                      "identities": [{"issuer": "idp", "subject": f"seq{n}"}]})
                elapsed, created, own = through_broker(broker, clock, Principal(f"person:{person['id']}"),
                                                       f"seq{n}", f"fac/{n:04d}")
                broker_times.append(elapsed)
                create_times.append(created * 1000)
                own_times.append(own * 1000)
            d50, d95 = pct(direct_times)
            b50, b95 = pct(broker_times)
            c50, c95 = pct(create_times)
            print(f"JupyterHub {requests.get(hub.url + '/hub/api/', timeout=5).json()['version']}, "
                  f"SimpleLocalProcessSpawner, polling every {POLL} s; {args.sequential} launches each way")
            print(f"  time to ready, hub called directly:   p50 {d50:.2f} s  p95 {d95:.2f} s")
            print(f"  time to ready, through the broker:    p50 {b50:.2f} s  p95 {b95:.2f} s  "
                  f"(ratio p50 {b50 / d50:.2f})")
            o50, o95 = pct(own_times)
            print(f"  broker's own time per launch (request + worker steps, less waiting for the hub): "
                  f"p50 {o50:.1f} ms, p95 {o95:.1f} ms")
            print(f"  the launch request itself (route + record): p50 {c50:.1f} ms, p95 {c95:.1f} ms; "
                  f"time-to-ready difference p50 {(b50 - d50) * 1000:.0f} ms (spawn-time noise and step spacing)")

            offset = args.sequential
            for size in args.burst:
                person = broker.people.create(ADMIN, {"display_name": f"burst{size}",
                                                      "identities": [{"issuer": "idp", "subject": f"burst{size}"}]})
                actor = Principal(f"person:{person['id']}")
                started = time.perf_counter()
                ids = [broker.launches.create(actor, f"b{size}-{n}", {"dataset": f"fac/{offset + n:04d}",
                                                                      "kind": "jupyterhub"})[0]["id"]
                       for n in range(size)]
                offset += size
                while True:
                    broker.launches.advance()
                    states = [broker.launches.get(actor, i)["state"] for i in ids]
                    if all(s in ("ready", "failed") for s in states):
                        break
                    time.sleep(POLL)
                last = time.perf_counter() - started
                print(f"  {size} launches submitted at once (at most 4 starting at a time): "
                      f"{states.count('ready')} of {size} ready, the last after {last:.1f} s")
                for i in ids:
                    broker.launches.cancel(actor, i)
            broker.index.close()
        finally:
            stop_hub(hub)


if __name__ == "__main__":
    main()
