"""A PaNOSC Search API Dataset page decoded straight from its JSON into typed records (msgspec), for the
harvest's hot path: decoding and checking a page this way costs a fraction of ``json.loads`` followed by
the tolerant reader, which a harvest of millions pays per record.

The types are strict where the tolerant reader is tolerant (a title that is a number, a technique that is
not an object): such a page is not decoded here (``decode_page`` returns None) and the caller reads it the
tolerant way, so both ways map any record they both accept to the same ``Dataset``. Unknown keys are
ignored, as LoopBack implementations add their own (``score``, ``datasetId``, through-model ids).
"""
from __future__ import annotations

from typing import Any

import msgspec


class RawInstrument(msgspec.Struct):
    name: str
    pid: str | None = None
    facility: str | None = None


class RawTechnique(msgspec.Struct):
    name: str
    pid: str | None = None
    panetId: str | None = None  # noqa: N815 - the API's own key


class RawParameter(msgspec.Struct):
    name: str
    value: Any = None
    unit: str | None = None
    id: Any = None


class RawFile(msgspec.Struct):
    name: str
    path: str | None = None
    size: Any = None
    id: Any = None


class RawSample(msgspec.Struct):
    pid: str
    name: str
    description: str | None = None


class RawDocument(msgspec.Struct):
    pid: str
    title: str | None = None
    type: str | None = None
    doi: str | None = None
    summary: str | None = None
    keywords: list[str] | None = None
    isPublic: bool | None = None  # noqa: N815
    startDate: str | None = None  # noqa: N815
    endDate: str | None = None  # noqa: N815
    releaseDate: str | None = None  # noqa: N815
    license: str | None = None
    members: list[Any] | None = None  # read member by member: a malformed one is left out, not refused


class RawDataset(msgspec.Struct):
    pid: str
    title: str
    isPublic: Any = None  # noqa: N815 - a value that is not a boolean is read as public, as the tolerant reader does
    creationDate: str | None = None  # noqa: N815
    size: Any = None
    instrumentId: str | None = None  # noqa: N815
    instrument: RawInstrument | None = None
    techniques: list[RawTechnique] | None = None
    parameters: list[RawParameter] | None = None
    files: list[RawFile] | None = None
    samples: list[RawSample] | None = None
    documents: list[RawDocument] | None = None
    document: RawDocument | None = None


_PAGE = msgspec.json.Decoder(list[RawDataset])


def decode_page(body: bytes) -> list[RawDataset] | None:
    """The page's records, or None when some record is not of these types (read it the tolerant way)."""
    try:
        return _PAGE.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


_LISTING = msgspec.json.Decoder(list[msgspec.Raw])


def count_records(body: bytes) -> int | None:
    """How many items the JSON list ``body`` holds (read without decoding them), or None if not a list."""
    listing = split_records(body)
    return None if listing is None else len(listing)


def split_records(body: bytes) -> list[msgspec.Raw] | None:
    """The JSON list ``body``'s items, each still encoded (``decode_record`` reads one), or None if not a list."""
    try:
        return _LISTING.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


class _Scored(msgspec.Struct):
    score: Any = None


_RECORD = msgspec.json.Decoder(RawDataset)
_SCORE = msgspec.json.Decoder(_Scored)


def decode_record(raw: msgspec.Raw) -> RawDataset | Any:
    """One item of ``split_records``: typed where it fits the types, else as plain JSON (the tolerant reader's)."""
    try:
        return _RECORD.decode(raw)
    except msgspec.ValidationError:
        return msgspec.json.decode(raw)


def score_of(raw: msgspec.Raw) -> Any:
    """The ``score`` an item of ``split_records`` carries (None when it has none, or is not an object)."""
    try:
        return _SCORE.decode(raw).score
    except msgspec.ValidationError:
        return None


def with_documents(record: RawDataset, documents: list[dict[str, Any]]) -> RawDataset | None:
    """``record`` with ``documents`` (raw, from the Documents model) attached; None if they do not fit."""
    try:
        typed = msgspec.convert(documents, list[RawDocument])
    except msgspec.ValidationError:
        return None
    return msgspec.structs.replace(record, documents=typed)


def as_plain(record: RawDataset) -> dict[str, Any]:
    """The record as the JSON object it was read from (keys the types ignore are gone: they are unused)."""
    return msgspec.to_builtins(record)
