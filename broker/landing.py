"""The portal's front door, as the search and catalogue services answer it: the landing page (example
searches that find datasets now, every facility) and the facilities page. Both are public; their counts
are re-read at most once a minute, since every visit would otherwise run a dozen searches."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from broker.catalogue import CatalogueService, FacilityCard
from broker.search.service import SearchService, parse_query
from panmodel.datasets import SearchRequest

# searches the landing page suggests; only those that find datasets in this index are shown
EXAMPLES = ("SANS", "lysozyme", "tomography ESRF", "powder diffraction", "SAXS", "perovskite", "battery cathode",
            "magnetite nanoparticles", "XAS")
EXAMPLES_SHOWN = 5
TTL_SECONDS = 60.0  # the counts are re-read at most this often (a harvest changes them)


@dataclass(frozen=True)
class ExampleSearch:
    """A search the landing page suggests, with how many datasets it finds."""

    words: str
    count: int


@dataclass(frozen=True)
class HomeView:
    """The landing page: the example searches that find something, and every facility."""

    examples: tuple[ExampleSearch, ...]
    facilities: tuple[FacilityCard, ...]


class LandingPages:
    def __init__(self, search: SearchService, catalogue: CatalogueService,
                 clock: Callable[[], float] = time.monotonic):
        self.search = search
        self.catalogue = catalogue
        self.clock = clock
        self._kept: dict[str, tuple[float, Any]] = {}

    def home(self) -> HomeView:
        return HomeView(self._recent("examples", self._examples), self.facilities())

    def facilities(self) -> tuple[FacilityCard, ...]:
        """Every facility by name, with its analysis services and how many of its datasets the index holds."""
        return tuple(self.catalogue.facility_cards(self._recent("counts", self._dataset_counts)))

    def _examples(self) -> tuple[ExampleSearch, ...]:
        """Up to ``EXAMPLES_SHOWN`` of EXAMPLES with how many datasets each finds (none that finds nothing)."""
        found = []
        for words in EXAMPLES:
            total = self.search.search(parse_query({"q": words, "size": 1, "facet": "facility"})).total
            if total:
                found.append(ExampleSearch(words, total))
            if len(found) == EXAMPLES_SHOWN:
                break
        return tuple(found)

    def _dataset_counts(self) -> dict[str, int]:
        result = self.search.index.search(SearchRequest(limit=1, facets=("facility",)))
        return {bucket.value: bucket.count for bucket in result.facets.get("facility", [])}

    def _recent(self, key: str, read: Callable[[], Any]) -> Any:
        """``read()``, or its value from the last ``TTL_SECONDS``."""
        now = self.clock()
        kept = self._kept.get(key)
        if kept is None or now - kept[0] > TTL_SECONDS:
            kept = self._kept[key] = (now, read())
        return kept[1]


__all__ = ["ExampleSearch", "HomeView", "LandingPages"]
