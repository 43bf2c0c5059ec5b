"""The dataset index: one interface, two backends (embedded Tantivy, Elasticsearch).

Both take the same ``SearchRequest`` and the same facet (aggregation) requests, written as
Elasticsearch aggregation JSON, and both return aggregation results in Elasticsearch's shape, which
``facet_buckets`` reads once for both.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Container, Iterable

from panmodel.clock import as_utc
from panmodel.errors import FieldError, InvalidInput
from panmodel.datasets import Dataset, FacetBucket, SearchRequest, SearchResult, document_keys, parameter_fields
from panmodel.techniques import panet

#: deepest result a page may reach (offset + limit); deeper paging is refused with a clear error
MAX_WINDOW = 10_000

#: facet name -> (index field, aggregation request in Elasticsearch JSON)
FACETS: dict[str, dict[str, Any]] = {
    "facility": {"terms": {"field": "facility", "size": 50}},
    "technique": {"terms": {"field": "technique", "size": 50}},
    "instrument": {"terms": {"field": "instrument", "size": 50}},
    "year": {"terms": {"field": "year", "size": 100}},
    "access": {"terms": {"field": "access", "size": 2}},
}


@dataclass(frozen=True, slots=True)
class Indexed:
    """What both backends index of one dataset, worked out once for both; each lays it out in fields of its own."""

    ids: list[str]  # the pid and the DOI, lower-cased: what ``get`` finds it by
    access: str  # "public" or "embargoed"
    documents: list[str]  # ``document_keys``
    techniques: list[str]  # PaNET IRIs
    remembered: list[str]  # its proposals' and publications' titles and summaries: what people remember of them
    keywords: list[str]  # its own and its documents'
    samples: list[str]  # its samples' names and descriptions
    moment: datetime | None  # its creation, in UTC
    numbers: dict[str, float]  # parameters in SI by ``parameter_key``
    values: list[str]  # text-valued parameters as ``parameter_value_term``s


def indexed(dataset: Dataset) -> Indexed:
    numbers, values = parameter_fields(dataset)
    return Indexed(
        ids=sorted({dataset.pid.lower(), *([dataset.doi.lower()] if dataset.doi else [])}),
        access="public" if dataset.is_public else "embargoed",
        documents=document_keys(dataset),
        techniques=[t.iri for t in dataset.techniques if t.iri],
        remembered=[t for d in dataset.documents for t in (d.title, d.summary) if t],
        keywords=[*dataset.keywords, *(k for d in dataset.documents for k in d.keywords)],
        samples=[x for s in dataset.samples for x in (s.name, s.description) if x],
        moment=as_utc(dataset.creation_date) if dataset.creation_date else None,
        numbers=numbers, values=values)


def check_window(request: SearchRequest) -> None:
    if request.limit < 1 or request.offset < 0:
        raise InvalidInput.from_fields([FieldError("size", "must be at least 1, and the page at least 1")])
    if request.offset + request.limit > MAX_WINDOW:
        raise InvalidInput.from_fields([FieldError(
            "page", f"results deeper than {MAX_WINDOW} are not served; narrow the search or use filters")])


def facet_buckets(name: str, aggregation: dict[str, Any]) -> list[FacetBucket]:
    """Buckets of one facet from an Elasticsearch-shaped aggregation result."""
    buckets = []
    for bucket in aggregation.get("buckets", []):
        key = bucket.get("key_as_string", bucket["key"])
        if isinstance(key, float) and key.is_integer():
            key = int(key)
        value = str(key)
        label = panet().label(value) if name == "technique" else None
        buckets.append(FacetBucket(value, int(bucket["doc_count"]), label))
    if name == "year":
        buckets.sort(key=lambda b: b.value, reverse=True)
    return buckets


class DatasetIndex(abc.ABC):
    """The harvested datasets of every facility, searchable with one ranking."""

    one_writer = False  # True: only the process writing now can change it (it runs one harvest at a time)

    @abc.abstractmethod
    def upsert(self, datasets: Iterable[Dataset]) -> int:
        """Add or replace datasets (by pid); visible to searches after ``commit``."""

    @staticmethod
    def prepare(datasets: list[Dataset], encoded: list[bytes] | None = None) -> list[Any]:
        """``datasets`` in the form ``upsert_prepared`` takes, one item per dataset, in order: work done
        wherever the caller likes (a harvest's mapping processes), so picklable and needing no index.
        ``encoded``: each dataset's ``msgspec.json.encode``, when the caller has made it already."""
        return datasets

    def upsert_prepared(self, prepared: list[Any], absent: Container[str] = frozenset()) -> int:
        """``upsert`` of what ``prepare`` made. ``absent``: pids the caller knows the index does not hold,
        committed or not (a backend may then add them without looking for an older version)."""
        return self.upsert(prepared)

    @abc.abstractmethod
    def delete(self, pids: Iterable[str]) -> None:
        """Remove datasets by pid; visible after ``commit``."""

    @abc.abstractmethod
    def delete_source(self, source: str) -> None:
        """Remove every dataset harvested from one search endpoint."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Make writes visible to readers (atomically)."""

    @abc.abstractmethod
    def search(self, request: SearchRequest) -> SearchResult:
        """One page of matches, the total and the requested facets."""

    @abc.abstractmethod
    def get(self, pid_or_doi: str) -> Dataset | None:
        """The dataset with this pid or DOI (DOIs match in any case)."""

    @abc.abstractmethod
    def pids(self, source: str) -> set[str]:
        """Pids of every dataset harvested from ``source`` (to detect deletions)."""

    @abc.abstractmethod
    def count(self) -> int:
        """Number of datasets."""

    def source_count(self, source: str) -> int:
        """Number of datasets harvested from ``source`` (a backend may count without listing them)."""
        return len(self.pids(source))

    @abc.abstractmethod
    def sources(self) -> set[str]:
        """The search endpoints whose datasets the index holds."""

    @abc.abstractmethod
    def held_elsewhere(self, pids: list[str], source: str) -> dict[str, str]:
        """Of ``pids``, those the index holds from another search endpoint than ``source``, with that endpoint."""

    def close(self) -> None:
        """Release writers and readers."""
