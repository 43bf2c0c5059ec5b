"""The broker's own dataset record and search types. Facility payloads are mapped into these once,
at the connector edge; the index, the API and the PaNOSC endpoint speak only these."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from panmodel.units import canonical_name, parameter_key


class Parameter(msgspec.Struct, frozen=True):
    name: str  # as the facility wrote it
    value: float | str
    unit: str | None = None
    si_value: float | None = None  # the value in SI base units, when the unit is known
    dimension: str | None = None  # of si_value (units.Quantity.dimension)
    id: str | None = None  # the facility's own id


class TechniqueRef(msgspec.Struct, frozen=True):
    name: str
    iri: str | None = None  # PaNET IRI when known or resolved
    pid: str | None = None  # the facility's own technique pid (the reference's are local ids)


class Member(msgspec.Struct, frozen=True):
    """A person on a document (a proposal's principal investigator, a publication's author)."""

    role: str | None
    name: str  # the person's full name
    orcid: str | None = None
    affiliation: str | None = None


class DocumentRef(msgspec.Struct, frozen=True):
    """A proposal or publication the dataset belongs to."""

    pid: str
    title: str | None = None
    type: str | None = None
    doi: str | None = None
    summary: str | None = None
    keywords: tuple[str, ...] = ()
    is_public: bool | None = None
    start_date: str | None = None  # ISO dates as the facility sent them
    end_date: str | None = None
    release_date: str | None = None  # when the document (and its data) becomes open
    license: str | None = None
    members: tuple[Member, ...] = ()


class SampleRef(msgspec.Struct, frozen=True):
    pid: str
    name: str
    description: str | None = None


class FileRef(msgspec.Struct, frozen=True):
    name: str
    path: str | None = None
    size: int | None = None
    id: str | None = None


class Dataset(msgspec.Struct, frozen=True):
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
    instrument_pid: str | None = None
    instrument_facility: str | None = None  # as the facility names itself on the instrument
    samples: tuple[SampleRef, ...] = ()
    files: tuple[FileRef, ...] = ()  # as harvested; file_count may be larger when a listing was cut

    def to_dict(self) -> dict[str, Any]:
        # written out rather than dataclasses.asdict, which deep-copies and was the indexing bottleneck
        return {
            "pid": self.pid, "facility": self.facility, "title": self.title, "is_public": self.is_public,
            "creation_date": self.creation_date.isoformat() if self.creation_date else None,
            "summary": self.summary, "doi": self.doi, "keywords": list(self.keywords), "instrument": self.instrument,
            "techniques": [{"name": t.name, "iri": t.iri, "pid": t.pid} for t in self.techniques],
            "parameters": [{"name": p.name, "value": p.value, "unit": p.unit, "si_value": p.si_value,
                            "dimension": p.dimension, "id": p.id} for p in self.parameters],
            "documents": [{"pid": d.pid, "title": d.title, "type": d.type, "doi": d.doi, "summary": d.summary,
                           "keywords": list(d.keywords), "is_public": d.is_public, "start_date": d.start_date,
                           "end_date": d.end_date, "release_date": d.release_date, "license": d.license,
                           "members": [{"role": m.role, "name": m.name, "orcid": m.orcid,
                                        "affiliation": m.affiliation} for m in d.members]}
                          for d in self.documents],
            "file_count": self.file_count, "size": self.size, "source": self.source,
            "instrument_pid": self.instrument_pid, "instrument_facility": self.instrument_facility,
            "samples": [{"pid": s.pid, "name": s.name, "description": s.description} for s in self.samples],
            "files": [{"name": f.name, "path": f.path, "size": f.size, "id": f.id} for f in self.files],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Dataset":
        values = dict(data)
        if values.get("creation_date"):
            values["creation_date"] = datetime.fromisoformat(values["creation_date"])
        values["keywords"] = tuple(values.get("keywords") or ())
        values["techniques"] = tuple(TechniqueRef(**t) for t in values.get("techniques") or ())
        values["parameters"] = tuple(Parameter(**p) for p in values.get("parameters") or ())
        values["documents"] = tuple(DocumentRef(**{**d, "keywords": tuple(d.get("keywords") or ()),
                                                   "members": tuple(Member(**m) for m in d.get("members") or ())})
                                    for d in values.get("documents") or ())
        values["samples"] = tuple(SampleRef(**s) for s in values.get("samples") or ())
        values["files"] = tuple(FileRef(**f) for f in values.get("files") or ())
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
    """Inclusive bounds (in SI base units for parameters); None is open."""

    low: float | None = None
    high: float | None = None
    dimension: str | None = None  # of a parameter's bounds (units.Quantity.dimension)


@dataclass(frozen=True)
class SearchRequest:
    q: str = ""
    any_term: bool = False  # False: every word of q must match (narrowing); True: any word (PaNOSC `query`)
    facilities: tuple[str, ...] = ()
    techniques: tuple[str, ...] = ()  # PaNET IRIs; a dataset of a descendant technique matches
    instruments: tuple[str, ...] = ()
    years: Range | None = None
    is_public: bool | None = None
    parameters: tuple[tuple[str, Range], ...] = ()  # (canonical parameter name, SI range)
    parameter_values: tuple[tuple[str, str], ...] = ()  # (canonical parameter name, text value): equality
    pids: tuple[str, ...] = ()  # pid or DOI
    documents: tuple[str, ...] = ()  # datasets of these proposals/publications (pid or DOI)
    exclude_sources: tuple[str, ...] = ()  # search endpoints deleted but not yet purged from the index
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
    complete: bool = True  # False: the facility has matches this answer lacks (its reason is in ``error``)


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
        """True whenever some facility's matching datasets are missing from the answer, for any reason."""
        return any(s.status in (SourceState.TIMEOUT, SourceState.ERROR, SourceState.SKIPPED) or not s.complete
                   for s in self.sources)

    @property
    def unanswered(self) -> list[SourceStatus]:
        """The facilities asked that did not answer (timed out or failed)."""
        return [s for s in self.sources if s.status in (SourceState.TIMEOUT, SourceState.ERROR)]


def parameter_value_term(name: str, value: str) -> str:
    """The index term of a text-valued parameter (canonical name, value in lower case)."""
    return f"{name}={value.strip().lower()}"


def parameter_fields(dataset: Dataset) -> tuple[dict[str, float], list[str]]:
    """What the index keeps of a dataset's parameters: SI values by ``parameter_key``, text-value terms."""
    numbers: dict[str, float] = {}
    texts: list[str] = []
    for p in dataset.parameters:
        if p.si_value is not None and p.dimension is not None:
            numbers.setdefault(parameter_key(p.name, p.dimension), p.si_value)
        elif isinstance(p.value, str) and p.value.strip():
            texts.append(parameter_value_term(canonical_name(p.name), p.value))
    return numbers, texts


def document_keys(dataset: Dataset) -> list[str]:
    """Look-up keys of the dataset's documents: their pids and DOIs, lower-cased."""
    return sorted({k.lower() for d in dataset.documents for k in (d.pid, d.doi) if k})
