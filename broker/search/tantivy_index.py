"""The embedded index: Tantivy (BM25 with block-max WAND top-k, fast fields, Elasticsearch-compatible
aggregations) in a folder beside the SQLite file.

One process writes (the worker; in the embedded default the only process); readers reload when a
commit lands, also across processes.
"""
from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Container, Iterable

import msgspec
import tantivy

from broker.search import synonyms
from broker.search.index import FACETS, DatasetIndex, check_window, facet_buckets, indexed
from panmodel.datasets import Dataset, SearchRequest, SearchResult, Sort, parameter_value_term
from panmodel.techniques import panet
from panmodel.units import parameter_key

# One catch-all text field carries the matching and the BM25 score (title, summary, keywords, techniques,
# instrument); the title is written into it TITLE_WEIGHT times, so a title match weighs more. Measured at
# 1M datasets: the five separately boosted fields this replaces made every text query's union of postings
# 2.5x dearer, and a separate boosted title clause cost 8% of a filtered query.
TITLE_WEIGHT = 3
WRITER_HEAP = 128 * 1024 * 1024
SCHEMA_VERSION = 4  # a new version opens a fresh folder beside the old one; the next harvest fills it
TOTAL = "_total"
TERMS_AS_UNION = 16  # a filter on more values than this is a term set (Lucene draws the same line)


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    for name in ("pid", "facility", "instrument", "technique", "access", "source"):  # sorted on or aggregated: fast
        builder.add_text_field(name, stored=False, fast=True, tokenizer_name="raw", index_option="basic")
    # looked up only; technique_path holds each technique's IRI and every PaNET ancestor's, so that a
    # technique filter matching descendants is one term, not a union of every descendant's postings
    for name in ("ids", "documents", "technique_path", "parameter_values"):
        builder.add_text_field(name, stored=False, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("all", stored=False, tokenizer_name="en_stem")
    builder.add_integer_field("year", indexed=True, fast=True)
    builder.add_date_field("date", indexed=True, fast=True)
    # every numeric parameter in SI, keyed by name and dimension (units.parameter_key): any name is searchable
    builder.add_json_field("params", stored=False, fast=True, tokenizer_name="raw")
    builder.add_bytes_field("doc", stored=True)  # the whole record, returned with hits; not indexed
    return builder.build()


class TantivyIndex(DatasetIndex):
    one_writer = True  # Tantivy allows one writer per index folder
    def __init__(self, path: Path | None):
        self.schema = _schema()
        if path is not None:
            path = path / f"v{SCHEMA_VERSION}"
            path.mkdir(parents=True, exist_ok=True)
        self._index = tantivy.Index(self.schema, str(path) if path else None, reuse=True)
        self._index.config_reader("commit")
        self._writer: tantivy.IndexWriter | None = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="facets")

    # -- writes (one writer per index folder, taken on first write) --------------------------
    def _w(self) -> tantivy.IndexWriter:
        if self._writer is None:
            self._writer = self._index.writer(heap_size=WRITER_HEAP)
        return self._writer

    def upsert(self, datasets: Iterable[Dataset]) -> int:
        return self.upsert_prepared(self.prepare(list(datasets)))

    @staticmethod
    def prepare(datasets: list[Dataset], encoded: list[bytes] | None = None) -> list[tuple[str, str]]:
        """Each dataset's pid and document as JSON, which tantivy reads itself (``add_json``): one string,
        cheap to pickle from a harvest's mapping processes, and no Python objects to build on import."""
        encoded = [msgspec.json.encode(dataset) for dataset in datasets] if encoded is None else encoded
        return [(dataset.pid, _JSON.encode(_fields(dataset, doc)).decode()) for dataset, doc in zip(datasets, encoded)]

    def upsert_prepared(self, prepared: list[tuple[str, str]], absent: Container[str] = frozenset()) -> int:
        # the delete by term that replaces an older version was a third of an import's CPU (its look-up in every
        # segment at commit): a pid known ``absent`` is only added
        n = 0
        with self._lock:
            writer = self._w()
            for pid, document in prepared:
                if pid not in absent:
                    writer.delete_documents_by_term("pid", pid)
                writer.add_json(document)
                n += 1
        return n

    def delete(self, pids: Iterable[str]) -> None:
        with self._lock:
            writer = self._w()
            for pid in pids:
                writer.delete_documents_by_term("pid", pid)

    def delete_source(self, source: str) -> None:
        with self._lock:
            self._w().delete_documents_by_term("source", source)

    def commit(self) -> None:
        with self._lock:
            if self._writer is not None:
                try:
                    self._writer.commit()
                except BaseException:
                    # what was not committed is dropped: the index stays as last committed, and a later harvest
                    # (a first one adds without a look-up) never commits it beside its own copy
                    self._writer.rollback()
                    raise
        self._index.reload()

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.wait_merging_threads()
                self._writer = None

    # -- reads ---------------------------------------------------------------------------------
    def _query(self, request: SearchRequest) -> tantivy.Query:
        clauses: list[tuple[tantivy.Occur, tantivy.Query]] = []
        if request.q.strip():
            text, _errors = self._index.parse_query_lenient(supported_syntax(request.q), ["all"],
                                                            conjunction_by_default=not request.any_term)
            clauses.append((tantivy.Occur.Must, self._with_synonyms(text, request)))
        filters = []
        for field, values in (("facility", request.facilities), ("technique_path", request.techniques),
                              ("instrument", request.instruments), ("ids", tuple(p.lower() for p in request.pids)),
                              ("documents", tuple(d.lower() for d in request.documents))):
            if values:
                filters.append(self._any_of(field, values))
        if request.is_public is not None:
            filters.append(tantivy.Query.term_query(self.schema, "access",
                                                    "public" if request.is_public else "embargoed"))
        # a range alone is fastest from the inverted index (one gathered set); beside other clauses, checking
        # each candidate's fast-field value is cheaper than gathering every document in range first
        alone = not clauses and not filters and len(request.parameters) + bool(request.years) == 1
        if request.years:
            filters.append(tantivy.Query.range_query(self.schema, "year", tantivy.FieldType.Integer,
                                                     _bound(request.years.low, int, -10**9),
                                                     _bound(request.years.high, int, 10**9), use_inverted_index=alone))
        for name, bounds in request.parameters:
            # a range on a JSON path is built by the query parser only; bounds are written in full precision
            low = repr(float(bounds.low)) if bounds.low is not None else "*"
            high = repr(float(bounds.high)) if bounds.high is not None else "*"
            filters.append(self._index.parse_query(f"params.{parameter_key(name, bounds.dimension or '1')}:"
                                                   f"[{low} TO {high}]"))
        for name, value in request.parameter_values:
            filters.append(tantivy.Query.term_query(self.schema, "parameter_values", parameter_value_term(name, value)))
        clauses.extend((tantivy.Occur.Must, tantivy.Query.const_score_query(f, 0.0)) for f in filters)
        if request.exclude_sources:
            clauses.append((tantivy.Occur.MustNot, self._any_of("source", request.exclude_sources)))
            if len(clauses) == 1:
                clauses.append((tantivy.Occur.Must, tantivy.Query.all_query()))
        if not clauses:
            return tantivy.Query.all_query()
        return tantivy.Query.boolean_query(clauses)

    def _with_synonyms(self, text: tantivy.Query, request: SearchRequest) -> tantivy.Query:
        """The query as typed, or else its reading with other names of the techniques and facilities it
        names (SANS: the phrase "small angle neutron scattering", a SANS technique or descendant)."""
        terms = synonyms.expand(request.q)
        if terms is None:
            return text
        occur = tantivy.Occur.Should if request.any_term else tantivy.Occur.Must
        groups = []
        for term in terms:
            options = [self._index.parse_query_lenient(f'"{phrase}"', ["all"])[0]
                       for phrase in (term.text, *term.phrases)]
            options += [tantivy.Query.term_query(self.schema, "technique_path", iri) for iri in term.techniques]
            options += [tantivy.Query.term_query(self.schema, "facility", f) for f in term.facilities]
            groups.append((occur, options[0] if len(options) == 1 else
                           tantivy.Query.boolean_query([(tantivy.Occur.Should, o) for o in options])))
        return tantivy.Query.boolean_query([(tantivy.Occur.Should, text),
                                            (tantivy.Occur.Should, tantivy.Query.boolean_query(groups))])

    def _any_of(self, field: str, values: tuple[str, ...]) -> tantivy.Query:
        """Documents with any of ``values`` in ``field``. Up to TERMS_AS_UNION values, a union of the terms'
        postings, which the other clauses can skip through; more, a term set, which gathers every match
        first. Measured at 1M with two facilities: beside one dataset's pid the union costs 0.1 ms and the
        set 3.4 ms (it gathers 500,000 documents); beside a broad text term the union is 5% cheaper."""
        if len(values) > TERMS_AS_UNION:
            return tantivy.Query.term_set_query(self.schema, field, list(values))
        terms = [tantivy.Query.term_query(self.schema, field, value) for value in values]
        return terms[0] if len(terms) == 1 else tantivy.Query.boolean_query([(tantivy.Occur.Should, t) for t in terms])

    def search(self, request: SearchRequest) -> SearchResult:
        check_window(request)  # also refuses limit < 1, which tantivy would panic on
        searcher = self._index.searcher()
        query = self._query(request)
        # with facets, the facility aggregation (every dataset has one facility) gives the total, so the
        # top-k search need not count every match (counting also defeats block-max WAND)
        facets_wanted = {name: FACETS[name] for name in request.facets}
        if facets_wanted:  # every bucket of the facility facet counted: it is the total as well
            facets_wanted[TOTAL] = {"terms": {"field": "facility", "size": 10_000}}
            facets_wanted.pop("facility", None)
        options: dict[str, Any] = {"limit": request.limit, "offset": request.offset, "count": not facets_wanted}
        if request.sort is Sort.NEWEST or (request.sort is Sort.RELEVANCE and not request.q.strip()):
            options.update(order_by_field="date", order=tantivy.Order.Desc)
        elif request.sort is Sort.OLDEST:
            options.update(order_by_field="date", order=tantivy.Order.Asc)
        elif request.sort is Sort.PID:
            options.update(order_by_field="pid", order=tantivy.Order.Asc)
        # tantivy releases the GIL: the aggregation runs on the other core while the top-k search runs here
        pending = self._pool.submit(searcher.aggregate, query, facets_wanted) if facets_wanted else None
        result = searcher.search(query, **options)
        items = [Dataset.from_dict(json.loads(bytes(searcher.doc(address)["doc"][0]))) for _, address in result.hits]
        if pending is None:
            return SearchResult(items, result.count)
        aggregations = pending.result()
        total = sum(b["doc_count"] for b in aggregations.get(TOTAL, {}).get("buckets", []))
        if "facility" in request.facets:
            size = FACETS["facility"]["terms"]["size"]
            aggregations["facility"] = {"buckets": aggregations.get(TOTAL, {}).get("buckets", [])[:size]}
        return SearchResult(items, total, {name: facet_buckets(name, aggregations.get(name, {}))
                                           for name in request.facets})

    def get(self, pid_or_doi: str) -> Dataset | None:
        searcher = self._index.searcher()
        result = searcher.search(tantivy.Query.term_query(self.schema, "ids", pid_or_doi.lower()), limit=1)
        if not result.hits:
            return None
        return Dataset.from_dict(json.loads(bytes(searcher.doc(result.hits[0][1])["doc"][0])))

    def pids(self, source: str) -> set[str]:
        searcher = self._index.searcher()
        query = tantivy.Query.term_query(self.schema, "source", source)
        found: set[str] = set()
        offset = 0
        while True:  # tantivy refuses limit=0 (it panics), so page until a short page
            page = searcher.search(query, limit=1000, offset=offset, count=False)
            found.update(json.loads(bytes(searcher.doc(a)["doc"][0]))["pid"] for _, a in page.hits)
            if len(page.hits) < 1000:
                return found
            offset += 1000

    def count(self) -> int:
        return self._index.searcher().num_docs

    def source_count(self, source: str) -> int:
        query = tantivy.Query.term_query(self.schema, "source", source)
        return self._index.searcher().search(query, limit=1, count=True).count

    def sources(self) -> set[str]:
        found = self._index.searcher().aggregate(tantivy.Query.all_query(),
                                                 {"s": {"terms": {"field": "source", "size": 100_000}}})
        return {b["key"] for b in found.get("s", {}).get("buckets", [])}

    def held_elsewhere(self, pids: list[str], source: str) -> dict[str, str]:
        if not pids:
            return {}
        searcher = self._index.searcher()
        query = tantivy.Query.boolean_query([
            (tantivy.Occur.Must, tantivy.Query.term_set_query(self.schema, "pid", list(pids))),
            (tantivy.Occur.MustNot, tantivy.Query.term_query(self.schema, "source", source))])
        result = searcher.search(query, limit=len(pids), count=False)
        held = (json.loads(bytes(searcher.doc(address)["doc"][0])) for _, address in result.hits)
        return {d["pid"]: d.get("source") or "" for d in held}


_JSON = msgspec.json.Encoder()  # bytes as base64 (what tantivy's JSON reader takes for a bytes field), dates in RFC 3339


def _fields(dataset: Dataset, doc: bytes) -> dict[str, list[Any]]:
    """The index document of ``dataset`` (``index.indexed``, laid out in this backend's fields): each field's
    values; ``doc`` is the dataset as msgspec encodes it (``to_dict``'s JSON, compact, without building the dict)."""
    common = indexed(dataset)
    fields: dict[str, list[Any]] = {
        "pid": [dataset.pid], "ids": common.ids, "facility": [dataset.facility], "source": [dataset.source or ""],
        "access": [common.access]}
    if common.documents:
        fields["documents"] = common.documents
    if dataset.instrument:
        fields["instrument"] = [dataset.instrument]
    if common.techniques:
        fields["technique"] = common.techniques
        fields["technique_path"] = list(panet().with_ancestors(common.techniques))
    texts = [*common.remembered, *(t for t in (*[dataset.title] * TITLE_WEIGHT, dataset.summary or "", *common.keywords,
                                               *(t.name for t in dataset.techniques), dataset.instrument or "") if t)]
    fields["all"] = texts + common.samples
    if common.moment:
        fields["date"], fields["year"] = [common.moment], [common.moment.year]
    if common.numbers:
        fields["params"] = [common.numbers]
    if common.values:
        fields["parameter_values"] = common.values
    fields["doc"] = [doc]
    return fields


def _bound(value: float | None, kind: type, default: float) -> Any:
    return kind(value) if value is not None else kind(default)


_UNSUPPORTED = re.compile(r"[:*?^~\\/\[\]{}()<>=!'`]")  # fields, wildcards, ranges, boosts, fuzziness, regexes
_LONE_OPERATOR = re.compile(r"(?<!\S)[+-]+(?!\S)|\b(?:IN|TO)\b")


def supported_syntax(q: str) -> str:
    """The text query with only what the search promises (words, "phrases", +must and -exclude, AND/OR/
    NOT): any other query syntax (``title:*``, ``x~2``, ``[a TO b]``) is read as the words it holds."""
    text = _LONE_OPERATOR.sub(" ", _UNSUPPORTED.sub(" ", q))
    if text.count('"') % 2:
        text = text.replace('"', " ")
    return text
