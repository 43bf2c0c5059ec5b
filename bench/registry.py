"""Registry and catalogue read throughput with 1,000 registered services, as a ratio to a trivial route.

Starts `panbroker serve` (uvicorn, one process, no worker) on loopback against a fresh SQLite registry
of 1,000 services over 20 facilities, then drives it for a fixed time per request kind — with wrk
(2 threads, 16 connections) when it is installed (`make bench` installs Debian's `wrk`), else with
Python client threads — and prints requests/s, latency percentiles and each read's ratio to `/healthz`
measured in the same run (the target is >= 0.5). Run: `make bench` (or
`python bench/registry.py --seconds 5`).
"""
from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
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
TARGET_RATIO = 0.5
# wrk's Lua: each request picks one of the scenario's paths at random
WRK_SCRIPT = """
paths = {}
for line in io.lines("%s") do paths[#paths + 1] = line end
math.randomseed(os.time())
request = function() return wrk.format("GET", paths[math.random(#paths)]) end
done = function(summary, latency, requests)
  io.write(string.format("PCT %%.3f %%.3f %%.3f\\n", latency:percentile(50) / 1000,
                         latency:percentile(95) / 1000, latency:percentile(99) / 1000))
  io.write(string.format("NON2XX %%d\\n", summary.errors.status + summary.errors.timeout))
end
"""


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


def drive_python(paths: list[str], base: str, seconds: float, clients: int) -> tuple[float, list[float]]:
    """Requests/s and (p50, p95, p99) latencies in ms of ``clients`` threads looping over ``paths``."""
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
    q = statistics.quantiles(latencies, n=100)
    return len(latencies) / (time.monotonic() - began), [q[49], q[94], q[98]]


def drive_wrk(paths: list[str], base: str, seconds: float, clients: int) -> tuple[float, list[float]]:
    """The same figures measured by wrk (2 threads, ``clients`` connections)."""
    with tempfile.TemporaryDirectory() as tmp:
        listing, script = Path(tmp) / "paths", Path(tmp) / "paths.lua"
        listing.write_text("\n".join(paths) + "\n")
        script.write_text(WRK_SCRIPT % listing)
        command = ["wrk", "-t2", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
                   "-s", str(script), base]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    if int(re.search(r"NON2XX (\d+)", out).group(1)):
        raise RuntimeError(f"{paths[0]}: some answers were not 2xx or timed out (10 s):\n{out}")
    return rate, [float(x) for x in re.search(r"PCT (\S+) (\S+) (\S+)", out).groups()]


def warm(paths: list[str], base: str) -> None:
    with requests.Session() as session:
        for path in paths:
            session.get(base + path, timeout=30)


def scenarios(services: int) -> dict[str, list[str]]:
    ids = [f"svc-{s:04d}" for s in range(services)]
    return {
        "trivial route (/healthz)": ["/healthz"],
        "get one service": [f"/api/v1/services/{i}" for i in ids],
        "list 50 services (page)": [f"/api/v1/services?limit=50&offset={o}" for o in range(0, services, 50)],
        "list 50 filtered (facility+kind)": [f"/api/v1/services?facility=fac-{f:02d}&kind=visa&limit=50"
                                             for f in range(20)],
        "list facilities": ["/api/v1/facilities"],
        "catalogue, one facility": [f"/api/v1/catalogue?facility=fac-{f:02d}" for f in range(20)],
        "list 500 services": ["/api/v1/services?limit=500"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=16, help="connections (wrk) or client threads (Python)")
    parser.add_argument("--python", action="store_true", help="use the Python load generator even if wrk is here")
    args = parser.parse_args()
    use_wrk = shutil.which("wrk") is not None and not args.python
    drive = drive_wrk if use_wrk else drive_python

    os.environ["PANBROKER_WORKERS"] = "1"  # one uvicorn process: the ratio is per process
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        populate(data_dir, args.services, 20)
        with panbroker_serving(data_dir) as base:
            print(f"registry: {args.services} services, 20 facilities, SQLite; "
                  f"{'wrk -t2' if use_wrk else 'Python threads'}, {args.clients} connections, {args.seconds:g} s "
                  f"per scenario; server: uvicorn, 1 process ({os.cpu_count()} cores)")
            print(f"{'scenario':36} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'ratio':>7}")
            calibration, short = None, []
            for name, paths in scenarios(args.services).items():
                warm(paths, base)  # every path read once: the steady state of a catalogue read again and again
                drive(paths, base, 1.0, args.clients)
                rate, (p50, p95, p99) = drive(paths, base, args.seconds, args.clients)
                calibration = calibration or rate
                ratio = rate / calibration
                print(f"{name:36} {rate:8.0f} {p50:8.1f} {p95:8.1f} {p99:8.1f} {ratio:6.2f}x")
                if ratio < TARGET_RATIO and name != "list 500 services":
                    short.append(name)
            print(f"ratio = req/s / trivial route's {calibration:.0f} req/s in this run; target >= {TARGET_RATIO} "
                  f"(list 500 is ten pages' worth, shown for scale): "
                  + ("met" if not short else "NOT met by " + ", ".join(short)))


if __name__ == "__main__":
    main()
