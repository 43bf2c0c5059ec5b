"""The scale-out index: Elasticsearch through the official client, with explicit mappings, bulk
indexing, and an alias so that a full re-index swaps in atomically.

Reads and writes go through the alias ``<prefix>``; ``rebuild`` loads a new concrete index
``<prefix>-<n>`` and moves the alias in one ``_aliases`` call.
"""
from __future__ import annotations

import time
from typing import Any, Iterable

from elasticsearch import Elasticsearch, NotFoundError, helpers

from broker.search import synonyms
from broker.search.index import FACETS, DatasetIndex, check_window, facet_buckets, indexed
from panmodel.datasets import Dataset, SearchRequest, SearchResult, Sort, parameter_value_term
from panmodel.techniques import panet
from panmodel.units import parameter_key

TEXT_BOOSTS = {"title": 3, "keywords": 2, "techniques_text": 2, "instrument_text": 2, "summary": 1}

MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    # parameters in SI under params.<name>__<dimension> (units.parameter_key): any parameter name is searchable
    "dynamic_templates": [{"parameters": {"path_match": "params.*", "mapping": {"type": "double"}}}],
    "properties": {
        **{name: {"type": "keyword"} for name in ("pid", "ids", "facility", "source", "instrument", "technique",
                                                  "access", "documents", "parameter_values")},
        **{name: {"type": "text", "analyzer": "english"} for name in TEXT_BOOSTS},
        "year": {"type": "integer"},
        "date": {"type": "date"},
        "params": {"type": "object", "dynamic": True},
        "doc": {"type": "object", "enabled": False},  # the whole record, kept in _source, not indexed
    },
}


def to_source(dataset: Dataset) -> dict[str, Any]:
    """The indexed document of a dataset (``index.indexed``, laid out in this backend's fields)."""
    fields = indexed(dataset)
    source: dict[str, Any] = {
        "pid": dataset.pid, "ids": fields.ids, "facility": dataset.facility, "source": dataset.source or "",
        "documents": fields.documents, "access": fields.access,
        "instrument": dataset.instrument, "instrument_text": dataset.instrument,
        "technique": fields.techniques,
        "title": dataset.title,
        "summary": " ".join(filter(None, [dataset.summary, *fields.samples])) or None,
        "keywords": [*fields.keywords, *fields.remembered],
        "techniques_text": [t.name for t in dataset.techniques],
        "doc": dataset.to_dict(),
    }
    if fields.moment:
        source["date"] = fields.moment.isoformat()
        source["year"] = fields.moment.year
    if fields.numbers:
        source["params"] = fields.numbers
    if fields.values:
        source["parameter_values"] = fields.values
    return {k: v for k, v in source.items() if v is not None}


def to_query(request: SearchRequest) -> dict[str, Any]:
    """The Elasticsearch query DSL of a search (text must match; filters do not score)."""
    must: list[dict[str, Any]] = []
    if request.q.strip():
        # cross_fields: each word may match in any field; "and" makes every word required
        must.append(_with_synonyms({"multi_match": {"query": request.q, "type": "cross_fields",
                                                     "operator": "or" if request.any_term else "and",
                                                     "fields": [f"{f}^{b}" for f, b in TEXT_BOOSTS.items()]}},
                                    request))
    filters: list[dict[str, Any]] = []
    techniques = panet().with_descendants(list(request.techniques)) if request.techniques else []
    for field, values in (("facility", request.facilities), ("technique", techniques),
                          ("instrument", request.instruments), ("ids", [p.lower() for p in request.pids]),
                          ("documents", [d.lower() for d in request.documents])):
        if values:
            filters.append({"terms": {field: list(values)}})
    if request.is_public is not None:
        filters.append({"term": {"access": "public" if request.is_public else "embargoed"}})
    if request.years:
        filters.append({"range": {"year": _bounds(request.years.low, request.years.high)}})
    for name, bounds in request.parameters:
        key = parameter_key(name, bounds.dimension or "1")
        filters.append({"range": {f"params.{key}": _bounds(bounds.low, bounds.high)}})
    for name, value in request.parameter_values:
        filters.append({"term": {"parameter_values": parameter_value_term(name, value)}})
    excluded = [{"terms": {"source": list(request.exclude_sources)}}] if request.exclude_sources else []
    if not must and not filters and not excluded:
        return {"match_all": {}}
    return {"bool": {"must": must, "filter": filters, **({"must_not": excluded} if excluded else {})}}


def _with_synonyms(text: dict[str, Any], request: SearchRequest) -> dict[str, Any]:
    """The query as typed, or else its reading with the other names of the techniques and facilities it
    names (see broker.search.synonyms)."""
    terms = synonyms.expand(request.q)
    if terms is None:
        return text
    fields = [f"{f}^{b}" for f, b in TEXT_BOOSTS.items()]
    groups = []
    for term in terms:
        options: list[dict[str, Any]] = [{"multi_match": {"query": phrase, "type": "phrase", "operator": "and",
                                                          "fields": fields}} for phrase in (term.text, *term.phrases)]
        if term.techniques:
            options.append({"terms": {"technique": panet().with_descendants(list(term.techniques))}})
        if term.facilities:
            options.append({"terms": {"facility": list(term.facilities)}})
        groups.append({"bool": {"should": options, "minimum_should_match": 1}})
    reading = {"bool": {"should": groups, "minimum_should_match": 1}} if request.any_term else {"bool": {"must": groups}}
    return {"bool": {"should": [text, reading], "minimum_should_match": 1}}


def to_sort(request: SearchRequest) -> list[Any]:
    """Ties broken by pid, so that page 2 continues page 1."""
    if request.sort is Sort.OLDEST:
        return [{"date": {"order": "asc"}}, {"pid": "asc"}]
    if request.sort is Sort.PID:
        return [{"pid": "asc"}]
    if request.sort is Sort.NEWEST or not request.q.strip():
        return [{"date": {"order": "desc"}}, {"pid": "asc"}]
    return ["_score", {"pid": "asc"}]


def _bounds(low: float | None, high: float | None) -> dict[str, float]:
    return {k: v for k, v in (("gte", low), ("lte", high)) if v is not None}


class ElasticsearchIndex(DatasetIndex):
    def __init__(self, url: str, prefix: str = "panbroker-datasets", client: Elasticsearch | None = None,
                 timeout: float = 10.0):
        self.es = client or Elasticsearch(url, request_timeout=timeout, retry_on_timeout=True, max_retries=2)
        self.alias = prefix
        if not self.es.indices.exists_alias(name=self.alias):
            self.es.indices.create(index=self._new_name(), mappings=MAPPINGS, aliases={self.alias: {}})

    def _new_name(self) -> str:
        return f"{self.alias}-{time.time_ns()}"

    def upsert(self, datasets: Iterable[Dataset]) -> int:
        actions = ({"_op_type": "index", "_index": self.alias, "_id": d.pid, "_source": to_source(d)}
                   for d in datasets)
        count, _ = helpers.bulk(self.es, actions, chunk_size=1000, raise_on_error=True)
        return count

    def delete(self, pids: Iterable[str]) -> None:
        actions = ({"_op_type": "delete", "_index": self.alias, "_id": pid} for pid in pids)
        helpers.bulk(self.es, actions, raise_on_error=False)  # a pid already gone is fine

    def delete_source(self, source: str) -> None:
        self.es.delete_by_query(index=self.alias, query={"term": {"source": source}}, refresh=True)

    def commit(self) -> None:
        self.es.indices.refresh(index=self.alias)

    def rebuild(self, datasets: Iterable[Dataset]) -> None:
        """Load everything into a new index and swap the alias to it atomically; drop the old one."""
        old = list(self.es.indices.get_alias(name=self.alias).body)
        new = self._new_name()
        self.es.indices.create(index=new, mappings=MAPPINGS)
        helpers.bulk(self.es, ({"_op_type": "index", "_index": new, "_id": d.pid, "_source": to_source(d)}
                               for d in datasets), chunk_size=1000)
        self.es.indices.refresh(index=new)
        self.es.indices.update_aliases(actions=[*({"remove": {"index": i, "alias": self.alias}} for i in old),
                                                {"add": {"index": new, "alias": self.alias}}])
        for index in old:
            self.es.indices.delete(index=index)

    def search(self, request: SearchRequest) -> SearchResult:
        check_window(request)
        aggregations = {name: FACETS[name] for name in request.facets}
        body = self.es.search(index=self.alias, query=to_query(request), sort=to_sort(request),
                              from_=request.offset, size=request.limit, track_total_hits=True,
                              aggs=aggregations or None, source=["doc"])
        hits = body["hits"]
        items = [Dataset.from_dict(h["_source"]["doc"]) for h in hits["hits"]]
        facets = {name: facet_buckets(name, body.get("aggregations", {}).get(name, {})) for name in request.facets}
        return SearchResult(items, hits["total"]["value"], facets)

    def get(self, pid_or_doi: str) -> Dataset | None:
        body = self.es.search(index=self.alias, query={"term": {"ids": pid_or_doi.lower()}}, size=1,
                              source=["doc"])
        hits = body["hits"]["hits"]
        return Dataset.from_dict(hits[0]["_source"]["doc"]) if hits else None

    def pids(self, source: str) -> set[str]:
        return {hit["_source"]["pid"] for hit in helpers.scan(self.es, index=self.alias, size=1000,
                                                              query={"query": {"term": {"source": source}}},
                                                              _source=["pid"])}

    def sources(self) -> set[str]:
        body = self.es.search(index=self.alias, size=0, aggs={"s": {"terms": {"field": "source", "size": 100_000}}})
        return {b["key"] for b in body.get("aggregations", {}).get("s", {}).get("buckets", [])}

    def held_elsewhere(self, pids: list[str], source: str) -> dict[str, str]:
        if not pids:
            return {}
        body = self.es.search(index=self.alias, size=len(pids), source=["pid", "source"],
                              query={"bool": {"filter": [{"terms": {"pid": list(pids)}}],
                                              "must_not": [{"term": {"source": source}}]}})
        return {h["_source"]["pid"]: h["_source"].get("source", "") for h in body["hits"]["hits"]}

    def count(self) -> int:
        try:
            return int(self.es.count(index=self.alias)["count"])
        except NotFoundError:
            return 0

    def close(self) -> None:
        self.es.close()


__all__ = ["ElasticsearchIndex", "MAPPINGS", "to_query", "to_source", "to_sort"]
