"""Harvest at millions: a whole harvest from a loopback PaNOSC source (``demo.panosc_source``, in its own
process, its pages made before the run, as a static file server would hold them: on this machine the
source's CPU would otherwise be taken from the harvester's, where a facility's server runs elsewhere)
through the broker's harvest (fetch, map, index, OAI feed, checkpoints), against the import of the same
datasets already mapped straight into the embedded index, in the same run. Each phase runs in a process of
its own, so each one's peak RSS is its own; the CPU time of each (on every core) is printed per dataset.

Run: `python bench/harvest.py --datasets 1000000` (or through `bench/search.py --harvest-datasets N`).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))

PAGE = 500
RELATIONS = ["techniques", "instrument", "parameters", "files", "samples", "documents"]


def _rss_mb(process: psutil.Process | None = None) -> float:
    try:
        return (process or psutil.Process()).memory_info().rss / 2**20
    except psutil.NoSuchProcess:  # ended meanwhile
        return 0.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


class RssTrail:
    """The process's RSS, sampled every quarter second: is memory flat through the run? And the peak of the
    RSS of the process with the processes it started, and the CPU time its descendants spent (each one's
    last reading: a mapping process is not this process's child, so its time is not in ``RUSAGE_CHILDREN``)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.tree_peak = 0.0
        self.descendants_cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        own, known, ticks = psutil.Process(), {}, 0
        while not self._stop.wait(0.25):
            self.samples.append(_rss_mb())
            if ticks % 8 == 0:  # a walk of every process (psutil's children()) is dear: every 2 s only
                known.update({p.pid: p for p in own.children(recursive=True) if p.pid not in known})
            ticks += 1
            tree = _rss_mb(own)
            for pid, process in list(known.items()):
                try:
                    self.descendants_cpu[pid] = _cpu_s(process)
                    tree += _rss_mb(process)
                except psutil.NoSuchProcess:
                    del known[pid]
            self.tree_peak = max(self.tree_peak, tree)

    def stop(self) -> list[float]:
        """RSS at 25, 50, 75 and 100% of the run (MB)."""
        self._stop.set()
        self._thread.join()
        s = self.samples or [_rss_mb()]
        return [round(s[min(len(s) - 1, int(len(s) * q))]) for q in (0.25, 0.5, 0.75, 0.999)]


def index_only(count: int, data_dir: Path) -> dict:
    """The datasets mapped first (untimed, a page at a time), then imported straight into the index with
    the harvest's commit cadence, as a first harvest imports them (pids the index does not hold are added
    without a delete of an older version): only the index documents' making, the imports and commits are timed."""
    from broker.harvest import COMMIT_EVERY
    from broker.harvest_pipeline import harvest_tuning
    from broker.search.tantivy_index import TantivyIndex
    from connectors.panosc_records import decode_page
    from connectors.panosc_mapping import to_dataset
    from demo.panosc_source import PanoscSource

    source, index = PanoscSource(count), TantivyIndex(data_dir / "index")
    trail, spent, since_commit, untimed_cpu = RssTrail(), 0.0, 0, 0.0
    harvest_tuning().__enter__()  # as the harvest runs, so the ratio compares like with like
    cpu_before = _cpu_s(psutil.Process())
    for skip in range(0, count, PAGE):
        mapping_cpu = time.thread_time()
        datasets = [to_dataset(r, "sim-ill", "sim-ill-s") for r in decode_page(source.page(skip, PAGE, RELATIONS))]
        untimed_cpu += time.thread_time() - mapping_cpu
        started = time.perf_counter()
        index.upsert_prepared(index.prepare(datasets), absent={d.pid for d in datasets})  # as a first harvest imports
        since_commit += len(datasets)
        if since_commit >= COMMIT_EVERY:
            index.commit()
            since_commit = 0
        spent += time.perf_counter() - started
    started = time.perf_counter()
    index.commit()
    spent += time.perf_counter() - started
    assert index.count() == count, index.count()
    index.close()
    cpu = _cpu_s(psutil.Process()) - cpu_before - untimed_cpu  # the index's threads included, the mapping not
    return {"rate": count / spent, "seconds": spent, "rss": trail.stop(), "peak_mb": _peak_mb(),
            "tree_peak_mb": trail.tree_peak, "cpu": {"index": cpu}}


def end_to_end(count: int, data_dir: Path, source_url: str, processes: int) -> dict:
    """The broker's harvest of the loopback source, timed whole."""
    from panbroker.app import build_broker
    from broker.authz import Principal
    from broker.registry_kinds import KINDS
    from broker.settings import Settings, loopback_networks

    broker = build_broker(Settings(data_dir=data_dir, log_level="WARNING", allowed_networks=loopback_networks(),
                                   harvest_processes=processes))
    actor = Principal("bench", admin=True)
    broker.registry.create(actor, KINDS.facility, {"id": "sim-ill", "name": "sim-ill", "country": "FR"})
    broker.registry.create(actor, KINDS.search_endpoint, {
        "id": "sim-ill-s", "facility_id": "sim-ill", "kind": "panosc-search-api", "base_url": source_url,
        "connector_config": {"page_size": PAGE}})
    trail, started, cpu_before, serial = RssTrail(), time.perf_counter(), _cpu_s(psutil.Process()), time.thread_time()
    job = broker.harvest.run("sim-ill-s")  # imports in this thread: its CPU time is the harvest's serial part
    spent, serial = time.perf_counter() - started, time.thread_time() - serial
    own_cpu = _cpu_s(psutil.Process()) - cpu_before
    assert job["state"] == "succeeded" and job["imported"] == count, job
    assert broker.index.count() == count, broker.index.count()
    broker.index.close()
    return {"rate": count / spent, "seconds": spent, "rss": trail.stop(), "peak_mb": _peak_mb(),
            "tree_peak_mb": trail.tree_peak, "processes": broker.settings.harvest_processes,
            "cpu": {"harvester": own_cpu, "mapping processes": sum(trail.descendants_cpu.values())},
            "serial": serial}


def _phase(args: list[str]) -> dict:
    """One phase in a child process: its figures and its own peak RSS."""
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"phase {args[:2]} failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def bench_harvest(count: int, processes: int | None = None) -> None:
    from broker.settings import Settings

    processes = Settings().harvest_processes if processes is None else processes
    with tempfile.TemporaryDirectory() as tmp:
        source = subprocess.Popen([sys.executable, "-m", "demo.panosc_source", "--count", str(count),
                                   "--prerender", str(PAGE)], cwd=ROOT,
                                  stdout=subprocess.PIPE, text=True)
        try:
            url = source.stdout.readline().strip()
            alone = _phase(["--phase", "index-only", "--datasets", str(count), "--dir", f"{tmp}/alone"])
            source_cpu = _cpu_s(psutil.Process(source.pid))
            whole = _phase(["--phase", "harvest", "--datasets", str(count), "--dir", f"{tmp}/whole", "--url", url,
                            "--processes", str(processes)])
            whole["cpu"]["source"] = _cpu_s(psutil.Process(source.pid)) - source_cpu
        finally:
            source.terminate()
            source.wait()
    ratio = whole["rate"] / alone["rate"]
    print(f"\nharvest of {count:,} PaNOSC datasets from a loopback source (pages of {PAGE}, source in its own process, "
          f"pages made before the run)")
    print(f"  index-only import of the same datasets already mapped: {alone['rate']:,.0f} datasets/s "
          f"({alone['seconds']:.1f} s); RSS at 25/50/75/100% {alone['rss']} MB, peak {alone['peak_mb']:,.0f} MB")
    print(f"  end to end (fetch, map, index, OAI feed, checkpoints; {whole['processes']} mapping processes): "
          f"{whole['rate']:,.0f} datasets/s ({whole['seconds']:.1f} s); RSS at 25/50/75/100% {whole['rss']} MB, "
          f"peak {whole['peak_mb']:,.0f} MB, with its mapping processes {whole['tree_peak_mb']:,.0f} MB")
    print(f"  CPU time per dataset (µs), every core: index-only {_per_dataset(alone['cpu'], count)}; end to end "
          f"{_per_dataset(whole['cpu'], count)} (this machine: {psutil.cpu_count()} cores; wall time per dataset: "
          f"index-only {alone['seconds'] / count * 1e6:.0f} µs, end to end {whole['seconds'] / count * 1e6:.0f} µs)")
    cores, index_wall = psutil.cpu_count(), alone["seconds"] / count
    print(f"  ceiling of the ratio on this machine, every core busy: index-only's wall time x {cores} cores / end to "
          f"end's CPU time = {index_wall * cores / (sum(whole['cpu'].values()) / count):.2f}; the importing thread "
          f"(the harvest's serial part) spent {whole['serial'] / count * 1e6:.0f} µs a dataset, so with cores enough "
          f"for the rest the ratio could reach {index_wall / (whole['serial'] / count):.2f} (a projection)")
    print(f"  end to end / index-only: {whole['rate']:,.0f} / {alone['rate']:,.0f} = {ratio:.2f} (target >= 0.8)")


def _per_dataset(cpu: dict[str, float], count: int) -> str:
    parts = [f"{name} {seconds / count * 1e6:.0f}" for name, seconds in cpu.items()]
    total = sum(cpu.values()) / count * 1e6
    return f"{total:.0f}" if len(parts) == 1 else f"{total:.0f} ({', '.join(parts)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=200_000)
    parser.add_argument("--phase", choices=["index-only", "harvest"])
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--url")
    parser.add_argument("--processes", type=int, help="mapping processes of the harvest (PANBROKER_HARVEST_PROCESSES)")
    args = parser.parse_args()
    if args.phase == "index-only":
        print(json.dumps(index_only(args.datasets, args.dir)))
    elif args.phase == "harvest":
        print(json.dumps(end_to_end(args.datasets, args.dir, args.url, args.processes)))
    else:
        bench_harvest(args.datasets, args.processes)


if __name__ == "__main__":
    main()
