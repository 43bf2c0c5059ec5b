"""What people type for what the index holds under another name: a PaNET abbreviation or alternative
label (SANS, SAXS, MX, XAS, …) for a technique, a facility's name or acronym for its id.

The index stores none of these names; its backends ask :func:`expand` for a query's other readings when
they build the text query, and match each reading beside the words as typed. Technique names:
PaNET — ExPaNDS and PaNOSC projects, CC BY 4.0.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import cache
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from panmodel.techniques import panet
from registry.models import Facility

MAX_SPAN = 6  # words in the longest name looked for
MAX_PHRASES = 6  # other names matched per span (a query stays cheap)
WORD = re.compile(r"[^\W_](?:[\w.+/']*[^\W_])?")
NEGATION = re.compile(r"(?:^|\s)-\w|\bNOT\b")  # "lysozyme -spectroscopy", "lysozyme NOT spectroscopy"


@dataclass(frozen=True)
class Term:
    """One word or name of a query, and what else it may be written as in the index."""

    text: str  # as typed (one word or a name of several)
    phrases: tuple[str, ...] = ()  # other names of the same thing, matched as phrases in the text
    techniques: tuple[str, ...] = ()  # PaNET IRIs: a dataset of the technique or a descendant matches
    facilities: tuple[str, ...] = ()  # facility ids

    @property
    def expanded(self) -> bool:
        return bool(self.phrases or self.techniques or self.facilities)


def _norm(text: str) -> str:
    return " ".join(w.lower() for w in WORD.findall(text.replace("-", " ")))


@cache
def _technique_names() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Normalised name -> (IRIs, every name of those techniques)."""
    ontology = panet()
    iris: dict[str, list[str]] = {}
    for technique in ontology.by_iri.values():
        for name in (technique.label, *technique.alt_labels):
            if _norm(name):
                iris.setdefault(_norm(name), []).append(technique.iri)
    out = {}
    for key, found in iris.items():
        names = [n for iri in found for n in (ontology.by_iri[iri].label, *ontology.by_iri[iri].alt_labels)]
        out[key] = (tuple(dict.fromkeys(found)), tuple(dict.fromkeys(n.replace('"', "") for n in names)))
    return out


class FacilityNames:
    """The registered facilities' names by normalised name: its id, its full name, the name without a
    bracketed part and the bracketed part itself ("European Synchrotron Radiation Facility (ESRF)")."""

    def __init__(self) -> None:
        self._by_name: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def know(self, facilities: Iterable[tuple[str, str]]) -> None:
        by_name: dict[str, list[str]] = {}
        for facility_id, name in facilities:
            inner = re.findall(r"\(([^)]*)\)", name)
            outer = re.sub(r"\([^)]*\)", " ", name)
            for variant in (facility_id, name, outer, *inner):
                key = _norm(variant)
                if key and facility_id not in by_name.get(key, []):
                    by_name.setdefault(key, []).append(facility_id)
        with self._lock:
            self._by_name = {k: tuple(v) for k, v in by_name.items()}

    def read(self, session: Session) -> None:
        """Know the facilities registered in the store now."""
        self.know(session.execute(select(Facility.id, Facility.name)).all())

    def get(self, key: str) -> tuple[str, ...]:
        return self._by_name.get(key, ())


FACILITIES = FacilityNames()  # filled by the search service from the registry


def expand(q: str) -> list[Term] | None:
    """The words of ``q`` with the other names of the techniques and facilities they name (longest
    name first), or None when no word of ``q`` has another name."""
    if NEGATION.search(q):  # another reading would not carry the exclusion: keep the words as typed
        return None
    words = WORD.findall(q.replace("-", " "))
    if not words or len(words) > 32:
        return None
    techniques = _technique_names()
    terms: list[Term] = []
    i = 0
    while i < len(words):
        for span in range(min(MAX_SPAN, len(words) - i), 0, -1):
            text = " ".join(words[i:i + span])
            key = text.lower()
            iris, names = techniques.get(key, ((), ()))
            facilities = FACILITIES.get(key)
            if iris or facilities:
                phrases = tuple(n for n in names if _norm(n) != key)[:MAX_PHRASES]
                terms.append(Term(text, phrases, iris, facilities))
                i += span
                break
        else:
            terms.append(Term(words[i]))
            i += 1
    return terms if any(t.expanded for t in terms) else None


__all__ = ["FACILITIES", "FacilityNames", "Term", "expand"]
