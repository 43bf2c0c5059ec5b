"""A facility's PaNOSC Dataset record (a JSON object, or a ``RawDataset`` typed when decoded) as the broker's
``Dataset``: the mapping harvest, live search and the SciCat connector share."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from panmodel.datasets import Dataset, DocumentRef, FileRef, Member, Parameter, SampleRef, TechniqueRef
from panmodel.techniques import panet
from panmodel.units import UnknownUnit, to_si
from connectors.errors import UpstreamBadResponse
from connectors.panosc_records import RawDataset


class _Unusable(ValueError):
    """A record the broker cannot use, with what is wrong in it."""


# The Dataset record is read by hand rather than with marshmallow: a live answer maps every record a facility
# sends, and marshmallow's load was 85% of the broker's own time per record (0.19 of 0.23 ms). It is as
# tolerant: unknown keys are ignored, optional values of the wrong type are dropped, required ones are refused.
def _text(item: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = item.get(key)
    if isinstance(value, str):
        return value
    if value is None and not required:
        return None
    if required:
        raise _Unusable(f"{key}: {'missing' if value is None else 'not a string'}")
    return None


def _integer(item: dict[str, Any], key: str) -> int | None:
    return _whole(item.get(key))


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _objects(item: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = item.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _Unusable(f"{key}: not a list of objects")
    return value


def _id(item: dict[str, Any]) -> str | None:
    return _id_text(item.get("id"))


def _id_text(value: Any) -> str | None:
    return None if value is None or isinstance(value, (dict, list)) else str(value)


def _date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def technique_ref(name: str, pid: str | None = None, panet_id: str | None = None) -> TechniqueRef:
    for candidate in (panet_id, pid, name):
        resolved = panet().resolve(candidate) if candidate else []
        if resolved:
            return TechniqueRef(name, resolved[0], pid)
    return TechniqueRef(name, None, pid)


def parameter(name: str, value: Any, unit: str | None, id: Any = None) -> Parameter:  # noqa: A002 - the model's
    numeric = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if numeric is None and isinstance(value, str):
        try:
            numeric = float(value)
        except ValueError:
            numeric = None
    si = dimension = None
    if numeric is not None and numeric == numeric and abs(numeric) != float("inf"):
        try:
            quantity = to_si(numeric, unit)
            si, dimension = quantity.value, quantity.dimension
        except (UnknownUnit, OverflowError):  # an integer of hundreds of digits is no float: kept, not compared
            pass
    return Parameter(name, numeric if numeric is not None else value, unit or None, si, dimension,
                     None if id is None else str(id))


def _document_ref(d: dict[str, Any]) -> DocumentRef:
    keywords = d.get("keywords")
    public = d.get("isPublic")
    return DocumentRef(_text(d, "pid", True), _text(d, "title"), _text(d, "type"), _text(d, "doi"), _text(d, "summary"),
                       tuple(k for k in keywords if isinstance(k, str)) if isinstance(keywords, list) else (),
                       public if isinstance(public, bool) else None, _text(d, "startDate"), _text(d, "endDate"),
                       _text(d, "releaseDate"), _text(d, "license"),
                       tuple(m for m in map(_member, d.get("members") or []) if m is not None)
                       if isinstance(d.get("members"), list) else ())


def _member(item: Any) -> Member | None:
    """A document member with a person; members without one (or malformed) are left out."""
    person = item.get("person") if isinstance(item, dict) else None
    if not isinstance(person, dict) or not isinstance(person.get("fullName"), str):
        return None
    affiliation = item.get("affiliation") if isinstance(item.get("affiliation"), dict) else {}
    return Member(_text(item, "role"), person["fullName"], _text(person, "orcid"), _text(affiliation, "name"))


def to_dataset(record: Any, facility: str, source: str | None) -> Dataset:
    """A facility's Dataset record (a JSON object, or a ``RawDataset`` decoded from one) as the broker's
    ``Dataset``; ``UpstreamBadResponse`` when unusable."""
    if isinstance(record, RawDataset):
        return _typed_dataset(record, facility, source)
    if not isinstance(record, dict):
        raise UpstreamBadResponse("unusable dataset record: not an object")
    try:
        _valid_unicode(record)
        return _dataset(record, facility, source)
    except _Unusable as exc:
        raise UpstreamBadResponse(f"unusable dataset record {str(record.get('pid'))[:100]!r}: {exc}") from None


def _valid_unicode(record: dict[str, Any]) -> None:
    """A record read the tolerant way (``json``) may hold a lone surrogate (an escaped ``\\ud800``): text that
    is no Unicode, which nothing downstream (the index, the OAI feed, a JSON answer) can encode."""
    try:
        json.dumps(record, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise _Unusable("text that is not valid Unicode (a lone surrogate escape)") from None
    except (TypeError, ValueError):  # not JSON's own types or nesting: left to the reader's own checks
        pass


def _dataset(record: dict[str, Any], facility: str, source: str | None) -> Dataset:
    pid, title = _text(record, "pid", True), _text(record, "title", True)
    documents = _objects(record, "documents")
    single = record.get("document")
    if isinstance(single, dict):
        documents = [*documents, single]
    instrument = record.get("instrument") if isinstance(record.get("instrument"), dict) else None
    if instrument is not None:
        _text(instrument, "name", True)
    files = None if record.get("files") is None else _objects(record, "files")
    public = record.get("isPublic")
    return Dataset(
        pid=pid, facility=facility, title=title, is_public=public if isinstance(public, bool) else True,
        creation_date=_date(_text(record, "creationDate")), size=_integer(record, "size"),
        doi=pid if pid.startswith("10.") else None,
        instrument=instrument["name"] if instrument else None,
        instrument_pid=_text(instrument, "pid") if instrument else _text(record, "instrumentId"),
        instrument_facility=_text(instrument, "facility") if instrument else None,
        techniques=tuple(technique_ref(_text(t, "name", True), _text(t, "pid"), _text(t, "panetId"))
                         for t in _objects(record, "techniques")),
        parameters=tuple(parameter(_text(p, "name", True), p.get("value"), _text(p, "unit"), _id(p))
                         for p in _objects(record, "parameters")),
        documents=tuple(_document_ref(d) for d in documents),
        samples=tuple(SampleRef(_text(x, "pid", True), _text(x, "name", True), _text(x, "description"))
                      for x in _objects(record, "samples")),
        files=tuple(FileRef(_text(f, "name", True), _text(f, "path"), _integer(f, "size"), _id(f)) for f in files or []),
        file_count=len(files) if files is not None else None,
        source=source)


def _typed_dataset(r: RawDataset, facility: str, source: str | None) -> Dataset:
    """``_dataset`` for a record whose types were checked when it was decoded: the same ``Dataset``."""
    documents = [*(r.documents or ()), *([r.document] if r.document is not None else [])]
    instrument = r.instrument
    return Dataset(
        pid=r.pid, facility=facility, title=r.title, is_public=r.isPublic if isinstance(r.isPublic, bool) else True,
        creation_date=_date(r.creationDate), size=_whole(r.size), doi=r.pid if r.pid.startswith("10.") else None,
        instrument=instrument.name if instrument else None,
        instrument_pid=instrument.pid if instrument else r.instrumentId,
        instrument_facility=instrument.facility if instrument else None,
        techniques=tuple(technique_ref(t.name, t.pid, t.panetId) for t in r.techniques or ()),
        parameters=tuple(parameter(p.name, p.value, p.unit, _id_text(p.id)) for p in r.parameters or ()),
        documents=tuple(DocumentRef(d.pid, d.title, d.type, d.doi, d.summary, tuple(d.keywords or ()), d.isPublic,
                                    d.startDate, d.endDate, d.releaseDate, d.license,
                                    tuple(m for m in map(_member, d.members) if m is not None) if d.members else ())
                        for d in documents),
        samples=tuple(SampleRef(x.pid, x.name, x.description) for x in r.samples or ()),
        files=tuple(FileRef(f.name, f.path, _whole(f.size), _id_text(f.id)) for f in r.files or ()),
        file_count=len(r.files) if r.files is not None else None,
        source=source)
