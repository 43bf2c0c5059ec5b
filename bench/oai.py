"""What the OAI-PMH feed costs: the harvest's extra work to keep datestamps (first sight of N datasets, and a
harvest where nothing changed), against the index's own upsert of the same datasets measured in the same run;
and the time of a ListRecords page (oai_dc, 100 records) deep in a complete harvest of the broker.
Run: `python bench/oai.py --datasets 50000`.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from panbroker.app import build_broker, create_app  # noqa: E402
from panmodel.datasets import Dataset, TechniqueRef  # noqa: E402
from broker.settings import Settings, loopback_networks  # noqa: E402

TOKEN = re.compile(r"<resumptionToken[^>]*>([^<]+)<")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", type=int, default=20_000)
    parser.add_argument("--pages", type=int, default=50)
    args = parser.parse_args()
    broker = build_broker(Settings(data_dir=Path(tempfile.mkdtemp()), allowed_networks=loopback_networks(),
                                   log_level="WARNING"))
    datasets = [Dataset(pid=f"ill/{i:07d}", facility="ill", title=f"Run {i}", summary="SANS of lysozyme " * 5,
                        doi=f"10.5291/ILL-DATA.{i}", techniques=(TechniqueRef(
                            "small angle neutron scattering", "http://purl.org/pan-science/PaNET/PaNET01188"),))
                for i in range(args.datasets)]
    pages = [datasets[i:i + 1000] for i in range(0, len(datasets), 1000)]

    started = time.perf_counter()
    for page in pages:
        broker.index.upsert(page)
    broker.index.commit()
    calibration = time.perf_counter() - started

    timings = []
    for _ in range(2):  # first sight, then nothing changed
        started = time.perf_counter()
        batch = broker.harvest.records.batch()
        for page in pages:
            batch.add(page)
        batch.publish()
        timings.append(time.perf_counter() - started)
    print(f"{args.datasets} datasets: index upsert+commit {calibration:.2f} s (calibration)")
    print(f"  feed, first harvest   {timings[0]:.2f} s = {timings[0] / calibration:.2f} x the index's upsert")
    print(f"  feed, nothing changed {timings[1]:.2f} s = {timings[1] / calibration:.2f} x the index's upsert")

    client = create_app(broker=broker).test_client()
    token = TOKEN.search(client.get("/oai?verb=ListRecords&metadataPrefix=oai_dc").text).group(1)
    started, done = time.perf_counter(), 0
    while token and done < args.pages:
        answer = client.get("/oai", params={"verb": "ListRecords", "resumptionToken": token}).text
        done += 1
        match = TOKEN.search(answer)
        token = match.group(1) if match else None
    per_page = (time.perf_counter() - started) / done
    print(f"  ListRecords oai_dc, {done} pages of 100: {per_page * 1000:.1f} ms a page, "
          f"{100 / per_page:.0f} records/s")


if __name__ == "__main__":
    main()
