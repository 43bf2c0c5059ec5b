"""The broker's own dataset record and search types. Facility payloads are mapped into these once,
at the connector edge; the index, the API and the PaNOSC endpoint speak only these."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Parameter:
    name: str
    value: float | str
    unit: str | None = None
    si_value: float | None = None  # set for the parameters the index compares in SI


@dataclass(frozen=True)
class TechniqueRef:
    name: str
    iri: str | None = None  # PaNET IRI when known or resolved


@dataclass(frozen=True)
class DocumentRef:
    """A proposal or publication the dataset belongs to."""

    pid: str
    title: str | None = None
    type: str | None = None
    doi: str | None = None
    summary: str | None = None
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dataset:
    pid: str
    facility: str
    title: str
    is_public: bool = True
    creation_date: datetime | None = None
    summary: str | None = None
    doi: str | None = None
    keywords: tuple[str, ...] = ()
    instrument: str | None = None
    techniques: tuple[TechniqueRef, ...] = ()
    parameters: tuple[Parameter, ...] = ()
    documents: tuple[DocumentRef, ...] = ()
    file_count: int | None = None
    size: int | None = None
    source: str | None = None  # the search endpoint it came from

    def to_dict(self) -> dict[str, Any]:
        # written out rather than dataclasses.asdict, which deep-copies and was the indexing bottleneck
        return {
            "pid": self.pid, "facility": self.facility, "title": self.title, "is_public": self.is_public,
            "creation_date": self.creation_date.isoformat() if self.creation_date else None,
            "summary": self.summary, "doi": self.doi, "keywords": list(self.keywords), "instrument": self.instrument,
            "techniques": [{"name": t.name, "iri": t.iri} for t in self.techniques],
            "parameters": [{"name": p.name, "value": p.value, "unit": p.unit, "si_value": p.si_value}
                           for p in self.parameters],
            "documents": [{"pid": d.pid, "title": d.title, "type": d.type, "doi": d.doi, "summary": d.summary,
                           "keywords": list(d.keywords)} for d in self.documents],
            "file_count": self.file_count, "size": self.size, "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Dataset":
        values = dict(data)
        if values.get("creation_date"):
            values["creation_date"] = datetime.fromisoformat(values["creation_date"])
        values["keywords"] = tuple(values.get("keywords") or ())
        values["techniques"] = tuple(TechniqueRef(**t) for t in values.get("techniques") or ())
        values["parameters"] = tuple(Parameter(**p) for p in values.get("parameters") or ())
        values["documents"] = tuple(DocumentRef(**{**d, "keywords": tuple(d.get("keywords") or ())})
                                    for d in values.get("documents") or ())
        return cls(**values)

    @property
    def year(self) -> int | None:
        return self.creation_date.year if self.creation_date else None


class Sort(enum.StrEnum):
    RELEVANCE = "relevance"
    NEWEST = "newest"
    OLDEST = "oldest"
    PID = "pid"  # a stable order for harvesters paging through everything


class SourceState(enum.StrEnum):
    OK = "ok"
    TIMEOUT = "timeout"
    ERROR = "error"
    SKIPPED = "skipped"  # circuit open, or not selected
    INDEX = "index"  # answered from harvested data


@dataclass(frozen=True)
class Range:
    """Inclusive bounds in SI units; None is open."""

    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class SearchRequest:
    q: str = ""
    any_term: bool = False  # False: every word of q must match (narrowing); True: any word (PaNOSC `query`)
    facilities: tuple[str, ...] = ()
    techniques: tuple[str, ...] = ()  # PaNET IRIs; a dataset of a descendant technique matches
    instruments: tuple[str, ...] = ()
    years: Range | None = None
    is_public: bool | None = None
    parameters: tuple[tuple[str, Range], ...] = ()  # (indexed parameter name, SI range)
    pids: tuple[str, ...] = ()  # pid or DOI
    documents: tuple[str, ...] = ()  # datasets of these proposals/publications (pid or DOI)
    sort: Sort = Sort.RELEVANCE
    offset: int = 0
    limit: int = 20
    facets: tuple[str, ...] = ()


@dataclass(frozen=True)
class FacetBucket:
    value: str
    count: int
    label: str | None = None


@dataclass(frozen=True)
class SourceStatus:
    facility: str
    status: SourceState
    latency_ms: float | None = None
    count: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class SearchResult:
    items: list[Dataset]
    total: int
    facets: dict[str, list[FacetBucket]] = field(default_factory=dict)
    sources: list[SourceStatus] = field(default_factory=list)
    total_exact: bool = True
    facets_exact: bool = True  # live facets count only what the facilities sent, not every match

    @property
    def partial(self) -> bool:
        return any(s.status in (SourceState.TIMEOUT, SourceState.ERROR) for s in self.sources)


def document_keys(dataset: Dataset) -> list[str]:
    """Look-up keys of the dataset's documents: their pids and DOIs, lower-cased."""
    return sorted({k.lower() for d in dataset.documents for k in (d.pid, d.doi) if k})
