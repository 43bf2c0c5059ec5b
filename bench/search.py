"""Search benchmarks on this machine: harvest-import throughput into the embedded index, index query
latency in the search service and over HTTP, and live fan-out overhead with slow and dead facilities.

Run: `make bench-search` or `python bench/search.py --datasets 1000000`. Prints figures only.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

# run as a script, this file's folder would come first on sys.path (bench/registry.py hides `registry`)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.append(str(Path(__file__).resolve().parent.parent))  # tests.panosc_reference starts the reference servers

import requests  # noqa: E402
import tantivy  # noqa: E402

from panbroker.app import build_broker  # noqa: E402
from broker.authz import Principal  # noqa: E402
from broker.registry_kinds import KINDS  # noqa: E402
from broker.search.index import FACETS  # noqa: E402
from panmodel.datasets import Dataset, DocumentRef, TechniqueRef  # noqa: E402
from broker.search.service import parse_query  # noqa: E402
from broker.search.tantivy_index import TantivyIndex  # noqa: E402
from panmodel.techniques import panet  # noqa: E402
from broker.settings import Settings, loopback_networks  # noqa: E402
from connectors.panosc_mapping import parameter, to_dataset  # noqa: E402
from demo import federation as sim  # noqa: E402
from demo.catalogue import FACILITIES, SAMPLES, STUDIES, generate  # noqa: E402
from tests.loopback import panbroker_serving  # noqa: E402

ACTOR = Principal("bench", admin=True)


def synthetic(n: int, seed: int = 7, interleaved: bool = False):  # noqa: ANN201 - iterator of Dataset
    """``n`` datasets spread over four facilities, realistic titles, techniques and parameters, in the order
    a harvest writes them (one facility's endpoint after another), or with the facilities interleaved."""
    rng = random.Random(seed)
    instruments = [(f, inst, panet().resolve(name)[0], name) for f, (_, _, rows) in FACILITIES.items()
                   for inst, _pid, name, _k in rows]
    start = datetime(2012, 1, 1, tzinfo=timezone.utc)
    order = range(n) if interleaved else (i for facility in FACILITIES for i in range(n)
                                          if instruments[i % len(instruments)][0] == facility)
    for i in order:
        facility, instrument, iri, technique = instruments[i % len(instruments)]
        sample, text, keywords = SAMPLES[rng.randrange(len(SAMPLES))]
        yield Dataset(
            pid=f"{facility}/{i:08d}", facility=facility, source=f"{facility}-search",
            title=f"{STUDIES[rng.randrange(len(STUDIES))]} {sample} by {technique} on {instrument}",
            creation_date=start + timedelta(minutes=i * 7), is_public=rng.random() < 0.8, instrument=instrument,
            summary=text, techniques=(TechniqueRef(technique, iri),),
            parameters=(parameter("sample_temperature", rng.choice([4.2, 77, 295, 300, 350]), "K"),),
            documents=(DocumentRef(f"{facility}-prop-{i // 5}", keywords=tuple(keywords)),))


def percentiles(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100)
    return q[49], q[94]


def timed(fn, repeat: int) -> list[float]:  # noqa: ANN001
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


QUERIES = {
    "one term": {"q": "lysozyme", "facet": ["facility"]},
    "two terms": {"q": "lysozyme diffraction", "facet": ["facility"]},
    "filtered + faceted": {"q": "scattering", "facility": ["sim-ill", "sim-ess"], "technique": ["small angle scattering"],
                           "parameter": ["sample_temperature:280..310:K"],
                           "facet": ["facility", "technique", "instrument", "year", "access"]},
}


def reference(n: int) -> tuple[float, float]:
    """The measurement the issue's targets were set beside, repeated here: top-10 for a term matching 17% of
    ``n`` synthetic titles, and its facility facet (the issue: 1 ms and 1.1 ms at 1M on its machine).
    Machines of this kind differ 2-3x from session to session; this line says how fast this one is."""
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("title", stored=False, tokenizer_name="en_stem")
    builder.add_text_field("facility", stored=False, fast=True, tokenizer_name="raw", index_option="basic")
    index = tantivy.Index(builder.build())
    rng = random.Random(3)
    words = [f"w{i}" for i in range(5000)]
    facilities = list(FACILITIES)
    writer = index.writer(heap_size=256_000_000)
    for i in range(n):
        title = " ".join(rng.choices(words, k=6)) + (" scattering" if rng.random() < 0.17 else "")
        writer.add_document(tantivy.Document(title=title, facility=facilities[i % len(facilities)]))
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    searcher, query = index.searcher(), index.parse_query("scattering", ["title"])
    top10 = statistics.median(timed(lambda: searcher.search(query, limit=10, count=False), 50))
    facet = statistics.median(timed(lambda: searcher.aggregate(query, {"f": {"terms": {"field": "facility"}}}), 50))
    print(f"reference (the issue's measurement), {n:,} titles, a term in 17%: top-10 {top10:.2f} ms (issue: 1 ms), "
          f"facility facet {facet:.2f} ms (issue: 1.1 ms)\n")
    return top10, facet


def clause_costs(embedded: TantivyIndex, request) -> None:  # noqa: ANN001
    """Where the filtered + faceted query's time goes: the aggregation pass (no scoring) with one clause
    added at a time, and the two passes alone and side by side."""
    index, schema = embedded._index, embedded.schema  # noqa: SLF001
    searcher = index.searcher()
    occur, query_of = tantivy.Occur.Must, tantivy.Query
    text = index.parse_query_lenient(request.q, ["all"])[0]
    clauses = [("text", text),
               ("+ technique", embedded._any_of("technique_path", request.techniques)),  # noqa: SLF001
               ("+ parameter range", query_of.range_query(schema, "p_sample_temperature", tantivy.FieldType.Float,
                                                          request.parameters[0][1].low, request.parameters[0][1].high,
                                                          use_inverted_index=False)),
               ("+ 2 facilities", embedded._any_of("facility", request.facilities))]  # noqa: SLF001
    facet = {"f": {"terms": {"field": "facility"}}}
    print("  filtered + faceted, clause by clause (aggregation pass, one facet)   p50 ms")
    for i in range(len(clauses)):
        query = query_of.boolean_query([(occur, query_of.const_score_query(q, 0.0) if j else q)
                                        for j, (_, q) in enumerate(clauses[:i + 1])])
        print(f"    {' '.join(name for name, _ in clauses[:i + 1]):62} "
              f"{statistics.median(timed(lambda: searcher.aggregate(query, facet), 40)):6.2f}")
    facets = {name: FACETS[name] for name in FACETS}
    pool = ThreadPoolExecutor(max_workers=1)

    def top20() -> None:
        searcher.search(query, limit=20, count=False)

    def both() -> None:  # as the index runs them: the facets on the other core
        pending = pool.submit(searcher.aggregate, query, facets)
        top20()
        pending.result()

    alone = [statistics.median(timed(fn, 40)) for fn in (top20, lambda: searcher.aggregate(query, facets), both)]
    pool.shutdown()
    print(f"    top-20 pass alone {alone[0]:.2f}; five-facet pass alone {alone[1]:.2f}; both on the two cores "
          f"{alone[2]:.2f}")


def bench_index(data_dir: Path, n: int, interleaved: bool) -> None:
    broker = build_broker(Settings(data_dir=data_dir, log_level="WARNING"))
    for facility in FACILITIES:
        broker.registry.create(ACTOR, KINDS.facility, {"id": facility, "name": facility, "country": "FR"})
        broker.registry.create(ACTOR, KINDS.search_endpoint, {"id": f"{facility}-search", "facility_id": facility,
                                                              "kind": "panosc-search-api",
                                                              "base_url": "https://search.facility.example"})
    raw = generate("sim-ill", 20_000)
    started = time.perf_counter()
    [to_dataset(r, "sim-ill", "x") for r in raw]
    mapping_rate = len(raw) / (time.perf_counter() - started)

    indexing, batch = 0.0, []
    for dataset in synthetic(n, interleaved=interleaved):
        batch.append(dataset)
        if len(batch) == 20_000:
            started = time.perf_counter()
            broker.index.upsert(batch)
            indexing += time.perf_counter() - started
            batch = []
    started = time.perf_counter()
    broker.index.upsert(batch)
    broker.index.commit()
    indexing += time.perf_counter() - started
    print(f"harvest import, {n:,} synthetic datasets into the embedded index "
          f"({'facilities interleaved' if interleaved else 'one facility after another, as harvests write'}): "
          f"{n / indexing:,.0f} datasets/s "
          f"({indexing:.1f} s incl. commit); mapping PaNOSC records to datasets: {mapping_rate:,.0f} records/s")
    started = time.perf_counter()  # queries are measured in the steady state, not during the merges
    broker.index.close()  # waits for the background merges the import started
    broker.index.commit()  # reload the searcher on the merged segments
    print(f"background merges after the import: {time.perf_counter() - started:.1f} s, "
          f"{broker.index._index.searcher().num_segments} segments")  # noqa: SLF001

    print(f"\nindex queries at {broker.index.count():,} datasets          p50 ms   p95 ms   hits")
    for name, params in QUERIES.items():
        query = parse_query(params)
        result = broker.search.search(query)
        index_only = timed(lambda: broker.index.search(query.request), 50)
        service = timed(lambda: broker.search.search(query), 200)
        print(f"  {name:20} search service   {percentiles(service)[0]:7.2f}  {percentiles(service)[1]:7.2f}  "
              f"{result.total:,}  (index alone p50 {percentiles(index_only)[0]:.2f})")
    clause_costs(broker.index, parse_query(QUERIES["filtered + faceted"]).request)
    broker.index.close()
    broker.store.engine.dispose()



def bench_http(data_dir: Path) -> None:
    with panbroker_serving(data_dir) as served:
        base = f"{served}/api/v1/datasets"
        session = requests.Session()
        print("\nsame queries end to end over HTTP (uvicorn, 1 process)   p50 ms   p95 ms")
        for name, params in QUERIES.items():
            samples = timed(lambda: session.get(base, params=params, timeout=10).raise_for_status(), 200)
            print(f"  {name:20}                        {percentiles(samples)[0]:7.2f}  {percentiles(samples)[1]:7.2f}")


def blackhole() -> tuple[socket.socket, str]:
    """A listening socket that never accepts: connections open, answers never come."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


def bench_live(tmp: Path, repeat: int) -> None:
    delays = [0.02, 0.05, 0.08, 0.12, 0.16, 0.2, 0.25, 0.32, 0.4]
    with sim.Federation() as fed:
        for i, delay in enumerate(delays):
            facility = list(FACILITIES)[i % len(FACILITIES)]
            fed.add(f"f{i}", sim.panosc_search_api(facility, generate(facility, 200, seed=i), delay=delay))
        fed.start()
        hole, dead_url = blackhole()
        for with_dead in (False, True):
            broker = build_broker(Settings(data_dir=tmp / f"live-{with_dead}", log_level="WARNING",
                                           allowed_networks=loopback_networks(), http_retries=0))
            urls = {f"f{i}": fed.url(f"f{i}") for i in range(len(delays))}
            if with_dead:
                urls["dead"] = dead_url
            for name, url in urls.items():
                broker.registry.create(ACTOR, KINDS.facility, {"id": name, "name": name, "country": "FR"})
                broker.registry.create(ACTOR, KINDS.search_endpoint, {"id": f"{name}-s", "facility_id": name,
                                                                      "kind": "panosc-search-api", "base_url": url})
            query = parse_query({"mode": "live", "q": "scattering", "size": 20})
            overhead, elapsed_all = [], []
            for _ in range(repeat):
                started = time.perf_counter()
                result = broker.search.search(query)
                elapsed = (time.perf_counter() - started) * 1000
                slowest = max(s.latency_ms for s in result.sources if s.status.value == "ok")
                elapsed_all.append(elapsed)
                if not with_dead:
                    overhead.append(elapsed - slowest)
            if not with_dead:
                print(f"\nlive fan-out, 9 facilities answering in 20-400 ms, deadline "
                      f"{broker.settings.search_deadline_seconds:g} s ({repeat} searches)")
                print(f"  broker overhead over the slowest answering facility: p50 {percentiles(overhead)[0]:.1f} ms, "
                      f"p95 {percentiles(overhead)[1]:.1f} ms (total p50 {percentiles(elapsed_all)[0]:.0f} ms)")
            else:
                fail_max = broker.settings.breaker_fail_max
                first, rest = elapsed_all[:fail_max], elapsed_all[fail_max + 1:]
                print(f"  plus one dead facility (accepts, never answers): the first {fail_max} searches took "
                      f"{statistics.median(first):.0f} ms (the deadline); once its circuit opened: "
                      f"p50 {percentiles(rest)[0]:.0f} ms, p95 {percentiles(rest)[1]:.0f} ms")
            broker.index.close()
        hole.close()


# PaNOSC filters a client sends to one facility's Search API, and to the broker's /panosc/api
PANOSC_QUERIES = {
    "first 10": {"limit": 10},
    "words, top 10": {"query": "lysozyme", "limit": 10},
    "technique scope": {"include": [{"relation": "techniques", "scope": {"where": {"name": "small angle neutron scattering"}}}],
                        "limit": 10},
    "parameter scope": {"include": [{"relation": "parameters", "scope": {"where": {"and": [
        {"name": "sample_temperature"}, {"value": {"between": [280, 310]}}, {"unit": "K"}]}}}], "limit": 10},
}


def bench_reference(tmp: Path, per_provider: int, repeat: int) -> None:
    """Over real PaNOSC reference servers: the broker's live overhead over the slowest provider (time spent
    beyond what the providers themselves took for the same calls), and /panosc/api answering from the index
    against one provider answering the same filter itself."""
    from tests.panosc_reference import reference_unavailable, start_reference, to_reference_db

    reason = reference_unavailable()
    if reason:
        print(f"\nPaNOSC reference benchmarks SKIPPED: {reason}")
        return
    facilities = ("sim-ill", "sim-esrf", "sim-ess")
    servers = {}
    for facility in facilities:
        records = generate(facility, per_provider)
        for record in records:  # as the reference keeps techniques: a local pid, PaNET in panetId
            for technique in record["techniques"]:
                technique["panetId"], technique["pid"] = technique["pid"], f"{facility}/t/{technique['pid'][-5:]}"
        servers[facility] = start_reference(to_reference_db(records), tmp / f"ref-{facility}")
    data_dir = tmp / "panosc-bench"
    try:
        broker = build_broker(Settings(data_dir=data_dir, log_level="WARNING", allowed_networks=loopback_networks(),
                                       http_retries=0, search_deadline_seconds=10.0))
        for facility, server in servers.items():
            broker.registry.create(ACTOR, KINDS.facility, {"id": facility, "name": facility, "country": "FR"})
            broker.registry.create(ACTOR, KINDS.search_endpoint, {
                "id": f"{facility}-s", "facility_id": facility, "kind": "panosc-search-api",
                "base_url": server.base_url, "connector_config": {"page_size": 500}})
        started = time.perf_counter()
        for facility in facilities:
            broker.harvest.run(f"{facility}-s")
        harvest_s = time.perf_counter() - started
        print(f"\nPaNOSC reference Search API (panosc-eu/search-api), 3 providers x {per_provider} datasets; "
              f"harvest of all {3 * per_provider}: {harvest_s:.1f} s")
        calls = _recording(broker.search.live.http)
        sessions = {server.base_url: requests.Session() for server in servers.values()}  # reused, as the broker's

        def alone(sequence) -> float:  # noqa: ANN001 - one provider asked, in order, what the broker asked it
            base_url, asked = sequence
            t0 = time.perf_counter()
            for method, url, params in asked:
                sessions[base_url].request(method, url, params=params, timeout=10).raise_for_status()
            return (time.perf_counter() - t0) * 1000

        for label, params in (("newest first, no words", {"size": 20}),
                              ("words (the reference ignores them)", {"q": "lysozyme", "size": 20})):
            query = parse_query({**params, "mode": "live"})
            broker.search.search(query)  # the counts and relations the broker keeps are known from here on
            overheads, totals, providers, own = [], [], [], []
            with ThreadPoolExecutor(max_workers=len(servers)) as pool:
                for _ in range(repeat):
                    calls.clear()
                    t0 = time.perf_counter()
                    result = broker.search.search(query)
                    total = (time.perf_counter() - t0) * 1000
                    assert not result.partial, result.sources
                    # the same calls, each provider alone and all at once as the fan-out asks them (they share
                    # this machine's cores): what the slowest took is the time no broker could beat
                    by_provider: dict[str, list] = {}
                    waited: dict[str, float] = {}  # each provider's calls as the broker waited for them
                    for base_url, call, seconds in calls:
                        by_provider.setdefault(base_url, []).append(call)
                        waited[base_url] = waited.get(base_url, 0.0) + seconds * 1000
                    own.append(total - max(waited.values()))
                    slowest = max(pool.map(alone, by_provider.items()))
                    providers.append(slowest)
                    totals.append(total)
                    overheads.append(total - slowest)
            asked = sum(len(c) for c in by_provider.values())
            print(f"  live, {label}: broker p50 {percentiles(totals)[0]:.1f} ms, slowest provider alone p50 "
                  f"{percentiles(providers)[0]:.1f} ms ({asked} calls to {len(by_provider)} providers) -> overhead p50 "
                  f"{percentiles(overheads)[0]:.1f} ms, p95 {percentiles(overheads)[1]:.1f} ms (target p50 <= 5 ms; "
                  f"the PaNOSC aggregator measured beside the same providers: 11-12 ms)")
            print(f"    the broker's own time beside the calls it waited for (the providers timed as it saw them, "
                  f"sharing the cores alike): p50 {percentiles(own)[0]:.1f} ms, p95 {percentiles(own)[1]:.1f} ms")
        broker.index.close()
        bench_panosc_http(data_dir, servers["sim-ill"].api, repeat)
    finally:
        for server in servers.values():
            server.stop()


def _recording(http) -> list[tuple[str, tuple[str, str, dict], float]]:  # noqa: ANN001 - the broker's HttpClient
    """Every call the broker's client sends from now on, as (provider base URL, (method, URL, params), seconds
    it took), so the providers can be asked the very same calls without the broker."""
    calls: list[tuple[str, tuple[str, str, dict], float]] = []
    send = http.request

    def request(method: str, url: str, **kwargs):  # noqa: ANN003, ANN202
        base_url = url.split("/api/", 1)[0]
        started = time.perf_counter()
        try:
            return send(method, url, **kwargs)
        finally:
            calls.append((base_url, (method, url, dict(kwargs.get("params") or {})), time.perf_counter() - started))

    http.request = request
    return calls


def bench_panosc_http(data_dir: Path, provider_api: str, repeat: int) -> None:
    with panbroker_serving(data_dir) as served:
        broker_api = f"{served}/panosc/api"
        session = requests.Session()
        print("  /panosc/api from the index (3 providers' datasets) vs one provider answering the same filter:")
        for name, flt in PANOSC_QUERIES.items():
            params = {"filter": json.dumps(flt)}
            ours, theirs = [], []
            for _ in range(repeat):  # interleaved, so drift hits both alike
                ours += timed(lambda: session.get(f"{broker_api}/Datasets", params=params, timeout=10).raise_for_status(), 1)
                theirs += timed(lambda: session.get(f"{provider_api}/Datasets", params=params,
                                                    timeout=10).raise_for_status(), 1)
            ratio = statistics.median(ours) / statistics.median(theirs)
            print(f"    {name:16} broker p50 {statistics.median(ours):6.2f} ms, provider p50 "
                  f"{statistics.median(theirs):7.2f} ms: ratio {ratio:.2f} (target <= 0.3)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=1_000_000)
    parser.add_argument("--live-repeat", type=int, default=40)
    parser.add_argument("--reference-datasets", type=int, default=2000,
                        help="datasets per PaNOSC reference provider (the reference benchmarks)")
    parser.add_argument("--only-reference", action="store_true", help="run only the PaNOSC reference benchmarks")
    parser.add_argument("--harvest-datasets", type=int, default=200_000,
                        help="datasets of the end-to-end harvest benchmark (bench/harvest.py); 0 skips it")
    parser.add_argument("--only-harvest", action="store_true", help="run only the end-to-end harvest benchmark")
    parser.add_argument("--interleaved", action="store_true",
                        help="write the facilities' datasets interleaved (the worst layout for facility filters)")
    args = parser.parse_args()
    args.live_repeat = max(args.live_repeat, 10)  # the dead facility's figures need searches after its circuit opens
    print(f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}\n")
    if args.only_harvest or (args.harvest_datasets and not args.only_reference):
        from bench.harvest import bench_harvest

        bench_harvest(args.harvest_datasets or 200_000)
        if args.only_harvest:
            return
    if args.only_reference:
        with tempfile.TemporaryDirectory() as tmp:
            bench_reference(Path(tmp), args.reference_datasets, args.live_repeat)
        return
    reference(args.datasets)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "index-bench"
        bench_index(data_dir, args.datasets, args.interleaved)
        bench_http(data_dir)
        bench_live(Path(tmp), args.live_repeat)
        bench_reference(Path(tmp), args.reference_datasets, args.live_repeat)


if __name__ == "__main__":
    main()
