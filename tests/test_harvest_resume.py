"""A harvest of a large source killed half way (kill -9 of its process) resumes after its last committed
page, not from zero, and the index ends with every dataset once; the PaNOSC fast path (typed decoding)
maps every record as the tolerant reader does."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, text

from panbroker.app import build_broker
from broker.authz import Principal
from broker.harvest_pipeline import DEPTH, Pipeline, mapping_pool
from broker.registry_kinds import KINDS
from panmodel.datasets import SearchRequest, Sort
from broker.settings import Settings, loopback_networks
from connectors.panosc_records import decode_page
from connectors.panosc_mapping import to_dataset
from demo.catalogue import generate
from demo.panosc_source import RELATIONS, PanoscSource

ROOT = Path(__file__).resolve().parent.parent
ACTOR = Principal("test", admin=True)
COUNT, PAGE, COMMIT_EVERY = 3000, 50, 200  # a checkpoint every 4 pages

HARVEST = """
import sys
from pathlib import Path
from panbroker.app import build_broker
from broker.settings import Settings, loopback_networks
broker = build_broker(Settings(data_dir=Path(sys.argv[1]), log_level="WARNING", allowed_networks=loopback_networks(),
                               harvest_commit_every=int(sys.argv[2])))
broker.harvest.run("ill-search")
"""


def _settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, log_level="WARNING", allowed_networks=loopback_networks(),
                    harvest_commit_every=COMMIT_EVERY)


def _checkpoint(data_dir: Path) -> tuple[int, int] | None:
    engine = create_engine(f"sqlite:///{data_dir / 'panbroker.db'}")
    try:
        with engine.connect() as connection:
            row = connection.execute(text("SELECT pages, records FROM harvest_checkpoints")).first()
    finally:
        engine.dispose()
    return (row[0], row[1]) if row else None


def _descendants(pid: int) -> set[int]:
    return {child.pid for child in psutil.Process(pid).children(recursive=True)}


def _wait_gone(pids: set[int], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        alive = {p for p in pids if _running(p)}
        if not alive:
            return
        time.sleep(0.1)
    raise AssertionError(f"processes of the killed harvest still running: {sorted(alive)}")


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow  # a harvest in a process of its own, killed and started again
def test_a_harvest_killed_half_way_resumes_after_its_last_committed_page(tmp_path: Path) -> None:
    data_dir = tmp_path / "broker"
    with PanoscSource(COUNT, delay=0.03) as source:
        broker = build_broker(_settings(data_dir))
        broker.registry.create(ACTOR, KINDS.facility, {"id": "ill", "name": "ILL", "country": "FR"})
        broker.registry.create(ACTOR, KINDS.search_endpoint, {
            "id": "ill-search", "facility_id": "ill", "kind": "panosc-search-api", "base_url": source.url,
            "connector_config": {"page_size": PAGE}})
        broker.index.close()
        broker.store.engine.dispose()
        harvest = subprocess.Popen([sys.executable, "-c", HARVEST, str(data_dir), str(COMMIT_EVERY)], cwd=ROOT,
                                   env={**os.environ, "PYTHONPATH": str(ROOT)})
        deadline = time.monotonic() + 120
        while (_checkpoint(data_dir) or (0, 0))[0] < 20 and harvest.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        helpers = _descendants(harvest.pid)
        assert helpers, "the harvest maps its pages in processes of its own"
        harvest.send_signal(signal.SIGKILL)
        harvest.wait()
        _wait_gone(helpers)  # its mapping processes (and their fork server) end with it, none left waiting
        pages, records = _checkpoint(data_dir)
        assert 20 <= pages < COUNT // PAGE and records == pages * PAGE, (pages, records)
        served_before = len(source.served)
        assert served_before < COUNT // PAGE  # killed half way indeed

        resumed = build_broker(_settings(data_dir))
        assert resumed.harvest.recover_interrupted() == ["ill-search"]  # the worker's start, after a kill
        job = resumed.harvest.run("ill-search")
        again = source.served[served_before:]
    assert job["state"] == "succeeded", job
    assert again[0] == records  # the first page asked is the one after the last committed page
    refetched = served_before - records // PAGE  # pages read by the killed run after its last checkpoint
    # a commit's worth plus what the pipeline held: two queues, the pages in the mapping processes, one in each hand
    assert refetched <= COMMIT_EVERY // PAGE + 3 * DEPTH + 3
    assert again == list(range(records, COUNT + 1, PAGE))[:len(again)] and len(again) == (COUNT - records) // PAGE + 1
    assert _checkpoint(data_dir) is None  # the harvest read the whole source: nothing to resume
    # every dataset once: nothing lost, nothing twice
    assert resumed.index.count() == COUNT
    pids = resumed.index.pids("ill-search")
    assert len(pids) == COUNT and pids == {json.loads(source.page(n, 1, [])[1:-1])["pid"] for n in range(COUNT)}
    first = resumed.index.search(SearchRequest(sort=Sort.PID, limit=1))
    assert first.total == COUNT


def test_typed_decoding_maps_every_record_as_the_tolerant_reader_does() -> None:
    source = PanoscSource(600)
    body = source.page(0, 600, list(RELATIONS))
    typed = decode_page(body)
    assert typed is not None and len(typed) == 600
    for plain, fast in zip(json.loads(body), typed):
        assert to_dataset(fast, "ill", "s") == to_dataset(plain, "ill", "s")
    records = generate("sim-esrf", 200)  # the demo's nested shape, with documents and members
    typed = decode_page(json.dumps(records).encode())
    assert [to_dataset(r, "esrf", None) for r in typed] == [to_dataset(r, "esrf", None) for r in records]


@pytest.mark.parametrize("change", [{"title": 5}, {"techniques": [{"pid": "x"}]}, {"instrument": "D22"},
                                    {"documents": [{"pid": "p", "keywords": ["a", 3]}]}])
def test_a_page_the_types_refuse_is_read_the_tolerant_way(change: dict) -> None:
    records = generate("sim-ill", 3)
    records[1].update(change)
    assert decode_page(json.dumps(records).encode()) is None  # the connector then reads it as plain JSON


def test_pages_mapped_in_processes_come_back_in_order_and_a_failure_reaches_the_harvest() -> None:
    with mapping_pool(2) as pool:
        with Pipeline([str(n) for n in range(40)], int, pool=pool) as pipeline:
            assert list(pipeline) == list(range(40))
        with Pipeline(["1", "2", "three", "4"], int, pool=pool) as pipeline:
            mapped = iter(pipeline)
            assert [next(mapped), next(mapped)] == [1, 2]
            with pytest.raises(ValueError, match="three"):
                next(mapped)


def test_harvests_tune_the_interpreter_while_any_runs_and_restore_it_after_the_last() -> None:
    import gc
    import sys

    from broker.harvest_pipeline import GC_EVERY, SWITCH_SECONDS, harvest_tuning

    before = (gc.get_threshold(), sys.getswitchinterval())
    with harvest_tuning():
        with harvest_tuning():  # a second harvest of the process, ending first
            pass
        assert gc.get_threshold()[0] >= GC_EVERY and sys.getswitchinterval() == pytest.approx(SWITCH_SECONDS)
    assert (gc.get_threshold(), sys.getswitchinterval()) == before
