"""Load and faults together: N clients (each from its own loopback address) for S seconds against
`panbroker serve`, mixing index searches, live searches, portal pages, dataset lookups (known and unknown
pids) and launch event streams, while one facility hangs and another drips one byte a second. Prints
throughput, p50/p99/max and errors per kind of request, the healthy facilities' share of `ok` in live
answers, and `/api/v1/facilities` while the event streams are open, against a calibration (the same
request on the idle broker) measured in the same run.

Run: `python bench/load.py [--clients 50] [--seconds 60] [--streams 50] [--workers 2]`.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import requests  # noqa: E402
from requests.adapters import HTTPAdapter  # noqa: E402

from panbroker.app import build_broker  # noqa: E402
from broker.authz import Principal  # noqa: E402
from broker.registry_kinds import KINDS  # noqa: E402
from panmodel.datasets import SearchRequest  # noqa: E402
from broker.settings import Settings, loopback_networks  # noqa: E402
from demo import federation as sim  # noqa: E402
from demo.catalogue import generate  # noqa: E402
from demo.faults import FaultServer  # noqa: E402
from registry.models import Launch  # noqa: E402

ADMIN = Principal("bench", admin=True)
HEALTHY = ("sim-ill", "sim-esrf", "sim-ess")
DEADLINE = 2.5
WORDS = ("lysozyme", "scattering", "diffraction", "micelles", "catalyst", "tomography", "powder", "spectroscopy")


class FromAddress(HTTPAdapter):
    """Connections from one loopback address: the broker sees as many clients as there are addresses."""

    def __init__(self, address: str):
        self.address = address
        super().__init__(pool_connections=2, pool_maxsize=2)

    def init_poolmanager(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        kwargs["source_address"] = (self.address, 0)
        return super().init_poolmanager(*args, **kwargs)


def session_from(address: str) -> requests.Session:
    session = requests.Session()
    session.mount("http://", FromAddress(address))
    return session


def prepare(data_dir: Path, fed: sim.Federation, faulty: dict[str, str], streams: int) -> tuple[list, list, dict]:
    """Registry, harvested index, and the users whose launches the event streams follow."""
    settings = Settings(data_dir=data_dir, allowed_networks=loopback_networks(), log_level="WARNING")
    broker = build_broker(settings)
    endpoints = {name: fed.url(name) for name in HEALTHY} | faulty
    for name, url in endpoints.items():
        broker.registry.create(ADMIN, KINDS.facility, {"id": name, "name": name, "country": "FR"})
        broker.registry.create(ADMIN, KINDS.search_endpoint, {"id": f"{name}-search", "facility_id": name,
                                                              "kind": "panosc-search-api", "base_url": url})
    for name in HEALTHY:
        broker.harvest.run(f"{name}-search")
    pids = [d.pid for d in broker.index.search(SearchRequest(limit=200)).items]
    users = []
    for i in range(streams):
        person = broker.people.create(ADMIN, {"display_name": f"Load {i}", "identities": [
            {"issuer": "bench", "subject": f"load-{i}"}]})
        token = broker.people.issue_token(ADMIN, person["id"], {"name": "bench"})["token"]
        launch_id = str(uuid.uuid4())
        with broker.store.session() as session:
            session.add(Launch(id=launch_id, person_id=person["id"], idempotency_key=launch_id, fingerprint="f",
                               request={}, dataset_pid=pids[0], state="starting"))
        users.append(({"Authorization": f"Bearer {token}"}, launch_id))
    broker.index.close()
    broker.store.engine.dispose()
    return pids, users, {"facilities": len(endpoints)}


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    if not ordered:
        return float("nan"), float("nan"), float("nan")
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return statistics.median(ordered), p99, ordered[-1]


def timed_gets(session: requests.Session, url: str, count: int = 200) -> list[float]:
    """The seconds each of ``count`` GETs of ``url``, one after the other, took."""
    took = []
    for _ in range(count):
        started = time.perf_counter()
        session.get(url, timeout=5)
        took.append(time.perf_counter() - started)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="panbroker-load-"))
    with sim.Federation() as fed, FaultServer("hang") as hung, FaultServer("drip") as drip:
        for name in HEALTHY:
            fed.add(name, sim.panosc_search_api(name, generate(name, 300)))
        fed.start()
        pids, users, _ = prepare(work / "data", fed, {"hung": hung.url, "drip": drip.url}, args.streams)
        port = sim.free_port()
        env = {**os.environ, "PANBROKER_DATA_DIR": str(work / "data"), "PANBROKER_ALLOWED_NETWORKS": "127.0.0.0/8",
               "PANBROKER_LOG_LEVEL": "WARNING", "PANBROKER_HEALTH_INTERVAL_SECONDS": "3600",
               "PANBROKER_SEARCH_DEADLINE_SECONDS": str(DEADLINE),
               "PANBROKER_LAUNCH_POLL_SECONDS": "3600"}  # the followed launches stay where they are
        log = (work / "server.log").open("w")  # the broker's own log, apart from the figures
        server = subprocess.Popen([sys.executable, "-m", "panbroker.cli", "serve", "--port", str(port),
                                   "--workers", str(args.workers)], env=env, cwd=ROOT, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            run(base, args, pids, users)
        finally:
            server.terminate()
            server.wait(timeout=30)
            print(f"(the broker's log: {work / 'server.log'})")


def run(base: str, args: argparse.Namespace, pids: list[str], users: list) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(base + "/api/v1/facilities", timeout=2).ok:
                break
        except requests.RequestException:
            time.sleep(0.3)
    idle = session_from("127.0.0.1")
    idle_p50, idle_p99, _ = percentiles(timed_gets(idle, base + "/api/v1/facilities"))

    # the event streams: one per user, each from its own address, held open for the whole run
    stop = threading.Event()
    open_streams = []
    stream_errors = []

    def hold_stream(i: int) -> None:
        auth, launch_id = users[i]
        try:
            with session_from(f"127.0.2.{i % 250 + 1}").get(f"{base}/api/v1/launches/{launch_id}/events",
                                                              headers=auth, stream=True, timeout=(5, 30)) as r:
                if r.status_code != 200:
                    stream_errors.append(r.status_code)
                    return
                open_streams.append(i)
                for _ in r.iter_lines():
                    if stop.is_set():
                        return
        except requests.RequestException as exc:
            if not stop.is_set():
                stream_errors.append(type(exc).__name__)

    holders = [threading.Thread(target=hold_stream, args=(i,), daemon=True) for i in range(len(users))]
    for thread in holders:
        thread.start()
    time.sleep(2)

    # /api/v1/facilities while the streams are open and nothing else runs: streams must hold no thread
    streams_p50, streams_p99, _ = percentiles(timed_gets(idle, base + "/api/v1/facilities"))
    streams_then = len(open_streams)

    samples: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    healthy_ok = [0, 0]
    healthy_latency: list[float] = []
    lock = threading.Lock()
    end = time.monotonic() + args.seconds

    def request(session: requests.Session, kind: str, path: str, **params) -> requests.Response | None:  # noqa: ANN003
        started = time.perf_counter()
        try:
            response = session.get(base + path, params=params, timeout=DEADLINE + 10)
            outcome = str(response.status_code)
        except requests.RequestException as exc:
            response, outcome = None, type(exc).__name__
        with lock:
            samples[kind].append(time.perf_counter() - started)
            statuses[kind][outcome] += 1
        return response

    def client(i: int) -> None:
        session = session_from(f"127.0.1.{i % 250 + 1}")
        rng = random.Random(i)
        while time.monotonic() < end:
            pick = rng.random()
            if pick < 0.30:
                request(session, "index search", "/api/v1/datasets", q=rng.choice(WORDS))
            elif pick < 0.45:
                live = request(session, "live search", "/api/v1/datasets", q=rng.choice(WORDS), mode="live", size=10)
                if live is not None and live.ok:
                    sources = {s["facility"]: s for s in live.json()["sources"]}
                    with lock:
                        for name in HEALTHY:
                            healthy_ok[0] += sources[name]["status"] == "ok"
                            healthy_ok[1] += 1
                            healthy_latency.append((sources[name].get("latency_ms") or 0) / 1000
                                                   if sources[name]["status"] == "ok" else float("inf"))
            elif pick < 0.65:
                request(session, "portal page", rng.choice(["/", "/search", "/services"]), **(
                    {"q": rng.choice(WORDS)} if rng.random() < 0.5 else {}))
            elif pick < 0.75:
                request(session, "lookup (indexed)", f"/api/v1/datasets/{rng.choice(pids)}")
            elif pick < 0.80:
                request(session, "lookup (unknown)", f"/api/v1/datasets/10.5072/unknown-{rng.randrange(10**6)}")
            else:
                request(session, "facilities", "/api/v1/facilities")

    started = time.monotonic()
    clients = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    elapsed = time.monotonic() - started
    streams_at_end = len(open_streams)
    stop.set()

    print(f"\nbench/load.py: {args.clients} clients for {elapsed:.0f} s, {streams_at_end} event streams open "
          f"({len(stream_errors)} refused: {sorted(set(map(str, stream_errors)))}), {args.workers} worker processes;"
          f" facilities: {', '.join(HEALTHY)} healthy, one hung, one dripping 1 byte/s; live deadline {DEADLINE} s")
    print(f"calibration: /api/v1/facilities on the idle broker p50 {idle_p50 * 1000:.1f} ms, p99 {idle_p99 * 1000:.1f} ms")
    print(f"\n{'request':<18}{'count':>7}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}  outcomes")
    worst = 0.0
    for kind in sorted(samples):
        p50, p99, top = percentiles(samples[kind])
        worst = max(worst, top)
        outcome = ", ".join(f"{k}: {v}" for k, v in sorted(statuses[kind].items()))
        print(f"{kind:<18}{len(samples[kind]):>7}{len(samples[kind]) / elapsed:>8.1f}{p50 * 1000:>9.1f}"
              f"{p99 * 1000:>9.1f}{top * 1000:>9.1f}  {outcome}")
    total = sum(len(v) for v in samples.values())
    errors = sum(n for kind in statuses for outcome, n in statuses[kind].items() if not outcome.startswith(("2", "4")))
    facilities_p99 = percentiles(samples["facilities"])[1]
    live_p99 = percentiles(samples["live search"])[1]
    print(f"\nthroughput {total / elapsed:.1f} req/s; errors (5xx or no answer): {errors}")
    if healthy_ok[1]:
        healthy_p99 = percentiles(healthy_latency)[1]
        print(f"healthy facilities in live answers: {healthy_ok[0]}/{healthy_ok[1]} ok ({healthy_ok[0] / healthy_ok[1]:.1%}),"
              f" their answer p99 {healthy_p99:.2f} s: {'within' if healthy_p99 <= DEADLINE else 'OVER'} the "
              f"{DEADLINE} s deadline (whole live request p99 {live_p99:.2f} s, with queueing and merging)")
    print(f"/api/v1/facilities with {streams_then} event streams open and no other load: p50 "
          f"{streams_p50 * 1000:.1f} ms, p99 {streams_p99 * 1000:.1f} ms ({streams_p99 / idle_p99:.1f}x idle): "
          f"{'within' if streams_p99 <= 0.1 else 'OVER'} 100 ms")
    print(f"/api/v1/facilities under the whole load p99 {facilities_p99 * 1000:.1f} ms "
          f"({facilities_p99 / idle_p99:.1f}x the idle p99)")
    print(f"slowest request {worst:.2f} s: {'within' if worst <= DEADLINE + 1 else 'OVER'} deadline + 1 s")


if __name__ == "__main__":
    main()
