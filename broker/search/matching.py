"""Whether a dataset a facility sent back really matches a search.

Live search asks facilities to filter, but facilities differ in what they apply: the PaNOSC reference
ignores ``query`` (every score is 0), compares parameter values only in the unit they were stored in,
and matches techniques by its own local pids. So the broker checks every record it is sent against the
whole request, the way the index would judge it, and drops what does not match.
"""
from __future__ import annotations

import re
from functools import lru_cache
from datetime import datetime, timezone

from panmodel.datasets import Dataset, SearchRequest
from panmodel.techniques import panet
from panmodel.units import canonical_name

_WORD = re.compile(r"\w+")
_SUFFIXES = ("ing", "ed", "es", "s")  # a light stemmer, close to the index's English stemming for plurals


def words(text: str) -> list[str]:
    return list(map(_stem, _WORD.findall(text.lower())))


@lru_cache(maxsize=65_536)  # records repeat their words: a live answer of a few thousand stemmed each anew
def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def text_of(dataset: Dataset) -> tuple[set[str], set[str]]:
    """(title words, every searchable word) of a dataset: title, summary, keywords, documents, samples,
    techniques and instrument, as the index's catch-all field holds them."""
    title = set(words(dataset.title))
    rest = [dataset.summary or "", *dataset.keywords, dataset.instrument or "",
            *(t.name for t in dataset.techniques),
            *(x for d in dataset.documents for x in (d.title or "", d.summary or "", *d.keywords)),
            *(x for s in dataset.samples for x in (s.name, s.description or ""))]
    return title, title | set(words(" ".join(rest)))


def query_words(q: str) -> list[str]:
    return list(dict.fromkeys(words(q)))


def might_match(terms: list[str], any_term: bool, text: str) -> bool:
    """False only when ``text`` (every string of a record, a superset of what ``text_score`` reads) cannot
    hold the words: a record that fails this fails ``text_score`` too."""
    found = set(words(text))
    return any(t in found for t in terms) if any_term else all(t in found for t in terms)


def text_score(request: SearchRequest, dataset: Dataset) -> float:
    """0 when the words of ``request.q`` do not match (every word, or any with ``any_term``), else a score
    in (0, 1] favouring title matches."""
    terms = list(dict.fromkeys(words(request.q)))
    if not terms:
        return 1.0
    title, everything = text_of(dataset)
    hits = [t for t in terms if t in everything]
    if not hits or (not request.any_term and len(hits) < len(terms)):
        return 0.0
    return (len(hits) + sum(1 for t in hits if t in title)) / (2 * len(terms))


def matches_filters(request: SearchRequest, dataset: Dataset) -> bool:
    """Everything but the words: access, years, pids, documents, instruments, techniques (with their
    descendants) and parameters (in SI units)."""
    if request.is_public is not None and dataset.is_public != request.is_public:
        return False
    if request.years and not _in(dataset.year, request.years.low, request.years.high):
        return False
    if request.pids and not {dataset.pid.lower(), (dataset.doi or "").lower()} & {p.lower() for p in request.pids}:
        return False
    if request.documents:
        keys = {k.lower() for d in dataset.documents for k in (d.pid, d.doi) if k}
        if not keys & {d.lower() for d in request.documents}:
            return False
    if request.instruments and dataset.instrument not in request.instruments:
        return False
    if request.techniques:
        wanted = set(panet().with_descendants(list(request.techniques)))
        if not any(t.iri in wanted for t in dataset.techniques):
            return False
    for name, bounds in request.parameters:
        if not any(canonical_name(p.name) == name and p.dimension == bounds.dimension
                   and _in(p.si_value, bounds.low, bounds.high) for p in dataset.parameters):
            return False
    for name, value in request.parameter_values:
        if not any(canonical_name(p.name) == name and str(p.value).strip().lower() == value.strip().lower()
                   for p in dataset.parameters):
            return False
    return True


def needs_checking(request: SearchRequest) -> bool:
    """True when a facility's own count of ``where`` may include datasets the request does not want."""
    return bool(request.q.strip() or request.techniques or request.instruments or request.parameters
                or request.parameter_values or request.documents)


def _in(value: float | int | None, low: float | None, high: float | None) -> bool:
    if value is None:
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def year_bounds(low: float | None, high: float | None) -> tuple[str | None, str | None]:
    """ISO instants (UTC, with zone) of the first and last moment of a year range."""
    start = datetime(int(low), 1, 1, tzinfo=timezone.utc) if low is not None else None
    end = datetime(int(high), 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc) if high is not None else None
    return (start.isoformat().replace("+00:00", "Z") if start else None,
            end.isoformat(timespec="milliseconds").replace("+00:00", "Z") if end else None)
