"""The portal's search page as the search service answers it: a DOI, pid or proposal number typed alone
in the box goes to its dataset (or the datasets of that proposal); facet counts beside a chosen value are
counted without that facet's own filter, so a second value can be added; a search that finds nothing
comes with the nearest searches that do. Facilities are shown by name."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from panmodel.errors import InvalidInput
from panmodel.datasets import SearchResult
from broker.search.service import Mode, Query, SearchService, parse_query

IDENTIFIER = re.compile(r"^(?:doi:|https?://(?:dx\.)?doi\.org/)?(?P<id>\S*\d\S*)$", re.IGNORECASE)
FILTERS = ("facility", "technique", "instrument", "parameter", "year_from", "year_to", "public")
BESIDE_CHOICE = (("facility", "facilities"), ("instrument", "instruments"), ("technique", "techniques"))
MAX_SUGGESTIONS = 3


@dataclass(frozen=True)
class Suggestion:
    """A nearby search that finds something: its label, its parameters and how many it finds."""

    label: str
    params: dict[str, Any]
    count: int


@dataclass(frozen=True)
class SearchPage:
    """The search page: the dataset a typed identifier names (``dataset``: go there), or the results."""

    query: Query | None = None
    result: SearchResult | None = None
    dataset: str | None = None  # the pid of the one dataset the typed DOI / pid / proposal names
    document: str | None = None  # the proposal or publication whose datasets these are
    suggestions: list[Suggestion] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # facility id -> name, for the results and facets


class SearchPages:
    def __init__(self, search: SearchService, facility_names: Callable[[], dict[str, str]]):
        self.search = search
        self.facility_names = facility_names

    def view(self, params: dict[str, Any]) -> SearchPage:
        """The page for the URL's search parameters; ``InvalidInput`` names each bad one."""
        search = self.search
        query = parse_query(params)
        direct = _identifier(search, params)
        if isinstance(direct, str):
            return SearchPage(dataset=direct)
        document = None
        if direct is not None:
            query, document = direct, direct.request.documents[0]
        result = search.search(query)
        if query.mode is not Mode.LIVE and result.total:
            result = replace(result, facets=_facets_beside_choice(search, query, result))
        suggestions = _suggestions(search, params) if not result.total and query.mode is not Mode.LIVE else []
        return SearchPage(query, result, None, document, suggestions, self.facility_names())


def _identifier(search: SearchService, params: dict[str, Any]) -> str | Query | None:
    """For a DOI, pid or proposal number typed alone in the box: the pid of its one dataset, or the search
    of the proposal's datasets (None when it is not one)."""
    match = IDENTIFIER.match((params.get("q") or "").strip())
    if not match or any(params.get(f) for f in FILTERS) or params.get("mode") == "live":
        return None
    found = search.index.get(match["id"])
    if found is not None:
        return found.pid
    query = parse_query({**params, "q": ""})
    request = replace(query.request, documents=(match["id"],))
    probe = search.index.search(replace(request, limit=1, facets=()))
    if probe.total == 1:
        return probe.items[0].pid
    return Query(request, query.mode, query.page, query.size) if probe.total else None


def _facets_beside_choice(search: SearchService, query: Query, result: SearchResult) -> dict[str, Any]:
    facets = dict(result.facets)
    request = query.request
    for name, chosen in BESIDE_CHOICE:
        if getattr(request, chosen) and name in request.facets:
            other = search.index.search(replace(request, **{chosen: ()}, offset=0, limit=1, facets=(name,)))
            facets[name] = other.facets.get(name, facets.get(name, []))
    return facets


def _suggestions(search: SearchService, params: dict[str, Any]) -> list[Suggestion]:
    """The nearest searches that find something: a word left out, the filters left out."""
    words = (params.get("q") or "").split()
    tried: list[tuple[str, dict[str, Any]]] = []
    if len(words) > 1:
        tried += [(" ".join(words[:i] + words[i + 1:]), {**params, "q": " ".join(words[:i] + words[i + 1:])})
                  for i in range(min(len(words), 6))]
    if any(params.get(f) for f in FILTERS):
        tried.append((f"“{params.get('q')}” without filters" if params.get("q") else "all datasets",
                      {k: v for k, v in params.items() if k not in FILTERS}))
    out = []
    for label, changed in tried:
        try:
            request = parse_query({**changed, "page": None}).request
        except InvalidInput:
            continue
        total = search.index.search(replace(request, limit=1, facets=())).total
        if total:
            out.append(Suggestion(label, changed, total))
    return sorted(out, key=lambda s: -s.count)[:MAX_SUGGESTIONS]


__all__ = ["SearchPage", "SearchPages", "Suggestion"]
