"""Registry API throughput with 1,000 registered services.

Starts `panbroker serve` (uvicorn, one process, no worker) on loopback against a fresh SQLite registry
of 1,000 services over 20 facilities, then drives it from client threads for a fixed time per
request kind and prints requests/s and latency percentiles. Run: `make bench` (or
`python bench/registry.py --seconds 5 --clients 8`).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

# run as a script, this file's folder comes first on sys.path and its name would hide the registry package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.append(str(Path(__file__).resolve().parent.parent))  # for tests.loopback

import requests  # noqa: E402

from panbroker.app import build_broker  # noqa: E402
from broker.authz import Principal  # noqa: E402
from broker.registry_kinds import KINDS  # noqa: E402
from broker.settings import Settings  # noqa: E402
from tests.loopback import panbroker_serving  # noqa: E402

KINDS_CYCLE = ["jupyterhub", "visa", "binderhub", "remote-desktop"]


def populate(data_dir: Path, services: int, facilities: int) -> None:
    broker = build_broker(Settings(data_dir=data_dir, log_level="WARNING"))
    actor = Principal("bench", admin=True)
    for f in range(facilities):
        broker.registry.create(actor, KINDS.facility, {"id": f"fac-{f:02d}", "name": f"Facility {f}", "country": "FR"})
    for s in range(services):
        broker.registry.create(actor, KINDS.service, {
            "id": f"svc-{s:04d}", "facility_id": f"fac-{s % facilities:02d}", "kind": KINDS_CYCLE[s % 4],
            "title": f"Service {s}", "base_url": f"https://svc{s}.facility.example",
            "capabilities": {"max_cpus": 8, "gpu": s % 3 == 0}})
    broker.store.engine.dispose()



def drive(paths: list[str], base: str, seconds: float, clients: int) -> tuple[float, list[float]]:
    """Requests/s and per-request latencies (ms) of ``clients`` threads looping over ``paths``."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        session = requests.Session()
        mine = []
        while time.monotonic() < stop:
            path = rng.choice(paths)
            started = time.perf_counter()
            response = session.get(base + path, timeout=10)
            mine.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: HTTP {response.status_code}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(latencies) / (time.monotonic() - began), latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        populate(data_dir, args.services, 20)
        with panbroker_serving(data_dir) as base:
            ids = [f"svc-{s:04d}" for s in range(args.services)]
            scenarios = {
                "get one service": [f"/api/v1/services/{i}" for i in ids],
                "list 50 services (page)": [f"/api/v1/services?limit=50&offset={o}" for o in range(0, args.services, 50)],
                "list 50 filtered (facility+kind)": [f"/api/v1/services?facility=fac-{f:02d}&kind=visa&limit=50"
                                                     for f in range(20)],
                "list 500 services": ["/api/v1/services?limit=500"],
            }
            print(f"registry: {args.services} services, 20 facilities, SQLite; {args.clients} client threads, "
                  f"{args.seconds:g} s per scenario; server: uvicorn, 1 process ({os.cpu_count()} cores)")
            print(f"{'scenario':36} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
            for name, paths in scenarios.items():
                drive(paths, base, min(1.0, args.seconds), args.clients)  # warm-up
                rate, latencies = drive(paths, base, args.seconds, args.clients)
                q = statistics.quantiles(latencies, n=100)
                print(f"{name:36} {rate:8.0f} {q[49]:8.1f} {q[94]:8.1f} {q[98]:8.1f}")


if __name__ == "__main__":
    main()
