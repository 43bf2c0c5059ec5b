"""The PaNET technique ontology (PaNET — ExPaNDS and PaNOSC projects, CC BY 4.0).

Resolves technique names harvested from facilities to PaNET IRIs, and expands a technique to its
ancestors so that a search for a technique also finds datasets of its descendants.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA = Path(__file__).parent / "data" / "panet-techniques.json"
CREDIT = "PaNET — ExPaNDS and PaNOSC projects, CC BY 4.0"
PANET_PREFIX = "http://purl.org/pan-science/PaNET/"


@dataclass(frozen=True)
class Technique:
    iri: str
    label: str
    alt_labels: tuple[str, ...]
    ancestors: tuple[str, ...]  # every superclass IRI (the file lists inferred parents)


class Ontology:
    def __init__(self, techniques: list[Technique]):
        self.by_iri = {t.iri: t for t in techniques}
        self._expanded: dict[tuple[str, ...], list[str]] = {}
        self._resolved: dict[str, list[str]] = {}
        self._by_name: dict[str, list[str]] = {}
        for t in techniques:
            for name in (t.label, *t.alt_labels):
                self._by_name.setdefault(_norm(name), []).append(t.iri)

    def resolve(self, name_or_iri: str) -> list[str]:
        """The IRIs a technique name (label or alternative label, any case) or IRI stands for."""
        if name_or_iri not in self._resolved:
            self._resolved[name_or_iri] = self._resolve(name_or_iri)
        return self._resolved[name_or_iri]

    def _resolve(self, name_or_iri: str) -> list[str]:
        text = name_or_iri.strip()
        if text in self.by_iri:
            return [text]
        if text.startswith("PaNET") and PANET_PREFIX + text in self.by_iri:
            return [PANET_PREFIX + text]
        return list(dict.fromkeys(self._by_name.get(_norm(text), [])))

    def with_ancestors(self, iris: list[str]) -> list[str]:
        """``iris`` and all their ancestors, for indexing: a filter on an ancestor then matches."""
        key = tuple(iris)
        if key not in self._expanded:
            self._expanded[key] = self._with_ancestors(iris)
        return self._expanded[key]

    def _with_ancestors(self, iris: list[str]) -> list[str]:
        out: dict[str, None] = {}
        for iri in iris:
            out[iri] = None
            technique = self.by_iri.get(iri)
            if technique:
                out.update(dict.fromkeys(technique.ancestors))
        return list(out)

    def with_descendants(self, iris: list[str]) -> list[str]:
        """``iris`` and every technique below them: a filter on a technique matches its descendants."""
        key = ("descendants", *iris)
        if key not in self._expanded:
            wanted = set(iris)
            self._expanded[key] = list(dict.fromkeys(
                [*iris, *(t.iri for t in self.by_iri.values() if wanted & set(t.ancestors))]))
        return self._expanded[key]

    def label(self, iri: str) -> str:
        technique = self.by_iri.get(iri)
        return technique.label if technique else iri


def _norm(name: str) -> str:
    return " ".join(name.lower().replace("-", " ").split())


@cache
def panet() -> Ontology:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    return Ontology([Technique(t["iri"], t["label"].strip(), tuple(a.strip() for a in t.get("alt_labels", [])),
                               tuple(t.get("parents", []))) for t in data["techniques"]])
