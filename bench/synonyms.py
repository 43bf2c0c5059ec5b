"""What search forgiveness costs: index query latency of typed queries that name a technique by its
abbreviation or a facility by its name (expanded at query time, broker/search/synonyms.py) against the
same queries written the way the index holds them, on synthetic datasets in the embedded index.

Run: `python bench/synonyms.py --datasets 200000`. Prints figures only.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.search, beside this file

from bench.search import percentiles, synthetic, timed  # noqa: E402
from panmodel.datasets import SearchRequest  # noqa: E402
from broker.search.synonyms import FACILITIES  # noqa: E402
from broker.search.tantivy_index import TantivyIndex  # noqa: E402

# (as a person types it, as the index holds it): the second is the calibration, measured in the same run
PAIRS = [("SANS", "small angle neutron scattering"), ("lysozyme SAXS", "lysozyme small angle x-ray scattering"),
         ("myoglobin ESRF", "myoglobin"), ("XAS battery", "x-ray absorption spectroscopy battery")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    FACILITIES.know([("sim-ill", "ILL (simulated)"), ("sim-esrf", "ESRF (simulated)"), ("sim-ess", "ESS (simulated)"),
                     ("sim-european-xfel", "European XFEL (simulated)")])
    with tempfile.TemporaryDirectory() as folder:
        index = TantivyIndex(Path(folder))
        index.upsert(synthetic(args.datasets))
        index.commit()
        print(f"{args.datasets:,} datasets; p50 / p95 ms of a top-20 search with facets, {args.repeat} runs each")
        for typed, held in PAIRS:
            row = []
            for q in (typed, held):
                request = SearchRequest(q=q, limit=20, facets=("facility", "technique", "instrument"))
                found = index.search(request).total
                p50, p95 = percentiles(timed(lambda r=request: index.search(r), args.repeat))
                row.append((q, found, p50, p95))
            (tq, tn, t50, t95), (hq, hn, h50, h95) = row
            print(f"  {tq!r:>22}: {tn:>7,} found, {t50:6.2f} / {t95:6.2f} ms   |   {hq!r}: {hn:,} found, "
                  f"{h50:.2f} / {h95:.2f} ms   ratio p50 {t50 / h50:.2f}")
        index.close()


if __name__ == "__main__":
    main()
