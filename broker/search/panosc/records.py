"""Datasets, documents and their relations as the PaNOSC reference implementation shows them, and the
relevance scores and orders the broker gives them."""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Callable

from broker.search.matching import words
from panmodel.datasets import Dataset, DocumentRef
from broker.search.panosc.filters import (
    Filter,
    Include,
    matches,
)

#: the score of every record when no ``query`` is given: the PaNOSC aggregator drops scores <= 0 or >= 1
UNRANKED_SCORE = 0.01


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    text = moment.isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z") if moment.tzinfo else text + "Z"


def _present(record: dict[str, Any]) -> dict[str, Any]:
    """LoopBack leaves properties without a value out of its answers."""
    return {key: value for key, value in record.items() if value is not None}


def _id(value: str | None) -> int | str | None:
    return int(value) if value is not None and value.isdigit() else value


def _instrument_pid(dataset: Dataset) -> str | None:
    if dataset.instrument_pid:
        return dataset.instrument_pid
    return f"{dataset.facility}/{dataset.instrument}" if dataset.instrument else None


def instrument_record(dataset: Dataset) -> dict[str, Any] | None:
    if not dataset.instrument and not dataset.instrument_pid:
        return None
    return _present({"pid": _instrument_pid(dataset), "name": dataset.instrument or dataset.instrument_pid,
                     "facility": dataset.instrument_facility or dataset.facility})


def technique_records(dataset: Dataset) -> list[dict[str, Any]]:
    return [_present({"pid": t.pid or t.iri or t.name, "name": t.name, "panetId": t.iri}) for t in dataset.techniques]


def parameter_records(dataset: Dataset) -> list[dict[str, Any]]:
    return [_present({"id": _id(p.id), "name": p.name, "value": p.value, "unit": p.unit or "",
                      "datasetId": dataset.pid}) for p in dataset.parameters]


def file_records(dataset: Dataset) -> list[dict[str, Any]]:
    return [_present({"id": _id(f.id), "name": f.name, "path": f.path, "size": f.size, "datasetId": dataset.pid})
            for f in dataset.files]


def sample_records(dataset: Dataset) -> list[dict[str, Any]]:
    return [_present({"pid": s.pid, "name": s.name, "description": s.description}) for s in dataset.samples]


def document_record(document: DocumentRef) -> dict[str, Any]:
    return _present({"pid": document.pid, "isPublic": True if document.is_public is None else document.is_public,
                     "type": document.type or "proposal", "title": document.title or document.pid,
                     "summary": document.summary, "doi": document.doi, "startDate": document.start_date,
                     "endDate": document.end_date, "releaseDate": document.release_date, "license": document.license,
                     "keywords": list(document.keywords) or None})


def to_record(dataset: Dataset, includes: set[str], score: float | None = None) -> dict[str, Any]:
    """A dataset in the PaNOSC data model; relations only when included, as LoopBack does."""
    record = _present({"pid": dataset.pid, "title": dataset.title, "isPublic": dataset.is_public,
                       "size": dataset.size, "creationDate": _iso(dataset.creation_date), "score": score,
                       "instrumentId": _instrument_pid(dataset)})
    if "techniques" in includes:
        record["techniques"] = technique_records(dataset)
    if "instrument" in includes and (instrument := instrument_record(dataset)) is not None:
        record["instrument"] = instrument
    if "parameters" in includes:
        record["parameters"] = parameter_records(dataset)
    if "files" in includes:
        record["files"] = file_records(dataset)
    if "samples" in includes:
        record["samples"] = sample_records(dataset)
    if "documents" in includes:  # not a reference relation (its Datasets answer a 500): the broker's extra
        record["documents"] = [document_record(d) for d in dataset.documents]
    return record


class Scorer:
    """Relevance scores strictly inside (0, 1): the share of the query's words a dataset holds (a word matches
    a word of the dataset starting with it, as the index's stemming lets plurals match), title words counting
    double; ``UNRANKED_SCORE`` for every record without a query."""

    def __init__(self, query: str | None):
        terms = list(dict.fromkeys(words(query or "")))
        self.patterns = [re.compile(r"\b" + re.escape(term), re.IGNORECASE) for term in terms]

    def __call__(self, dataset: Dataset) -> float:
        if not self.patterns:
            return UNRANKED_SCORE
        points, missed = 0, []
        for pattern in self.patterns:
            if pattern.search(dataset.title):
                points += 2
            else:
                missed.append(pattern)
        if missed:
            rest = " ".join([dataset.summary or "", *dataset.keywords, dataset.instrument or "",
                             *(t.name for t in dataset.techniques),
                             *(x or "" for d in dataset.documents for x in (d.title, d.summary, *d.keywords)),
                             *(x or "" for s in dataset.samples for x in (s.name, s.description))])
            points += sum(1 for pattern in missed if pattern.search(rest))
        share = points / (2 * len(self.patterns))
        return round(UNRANKED_SCORE + (1 - 2 * UNRANKED_SCORE) * share, 4)


def _sort_key(name: str) -> Callable[[Dataset], Any]:
    def key(dataset: Dataset) -> Any:
        value = {"pid": dataset.pid, "title": dataset.title, "size": dataset.size,
                 "creationDate": dataset.creation_date}[name]
        return (value is not None, value if value is not None else 0)
    return key


def _ordered(datasets: list[Dataset], order: tuple[tuple[str, bool], ...]) -> list[Dataset]:
    result = sorted(datasets, key=lambda d: d.pid)
    for name, descending in reversed(order):
        result.sort(key=_sort_key(name), reverse=descending)
    return result


def _fields_keep(flt: Filter, *extra: str) -> tuple[str, ...]:
    return (*(i.relation for i in flt.include), *extra)



def member_records(document: DocumentRef, include: Include) -> list[dict[str, Any]]:
    """The document's members that match the include's scope (role; the person's or affiliation's where), with
    the person and affiliation when included. The harvest keeps a person's full name and ORCID and an
    affiliation's name, without LoopBack's ids."""
    nested = {i.relation: i for i in include.include}
    records = []
    for member in document.members:
        record = _present({"role": member.role, "documentId": document.pid})
        if include.where is not None and not matches(include.where, record, "members"):
            continue
        related = {"person": _present({"fullName": member.name, "orcid": member.orcid}),
                   "affiliation": _present({"name": member.affiliation}) if member.affiliation else None}
        kept = True
        for relation, scope in nested.items():
            value = related[relation]
            if scope.where is not None and (value is None or not matches(scope.where, value, relation)):
                kept = False  # as the reference's inner join drops a member whose person does not match
            elif value is not None:
                record[relation] = value
        if kept:
            records.append(record)
    return records



def _complete_files(dataset: Dataset) -> bool:
    return dataset.file_count is None or dataset.file_count <= len(dataset.files)

def dataset_view(dataset: Dataset) -> dict[str, Any]:
    """The Dataset properties a ``where`` reads, as the reference stores them."""
    return {"pid": dataset.pid, "title": dataset.title, "isPublic": dataset.is_public, "size": dataset.size,
            "creationDate": _iso(dataset.creation_date), "instrumentId": _instrument_pid(dataset)}
