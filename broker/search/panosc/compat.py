"""The PaNOSC Search API's calls answered from the index (or live): LoopBack filters translated into index searches, and
index records shown in the PaNOSC data model, in the reference implementation's shapes.

A filter becomes a ``Plan``: the search the index runs, and the checks the broker runs itself on what the
index preselects (``or`` at the dataset level, ``size``, ``title`` conditions, exact creation dates, file,
sample, local-technique-pid and instrument-pid scopes, ``or`` between parameter conditions) and the order the
index cannot give (``title``, ``size``, ``pid DESC``). The broker reads at most ``SCAN_CEILING`` preselected
datasets for such a filter and refuses (HTTP 400, saying how to narrow it) beyond: never a silently cut answer.
Anything the broker cannot honour is refused with a LoopBack error that says so, never silently ignored.

Where the broker deliberately differs from the reference (panosc-eu/search-api):
- parameter values are compared in SI units through pint, in any unit of the quantity, with name aliases
  (``temperature`` = ``sample_temperature``); the reference compares raw numbers in the stored unit only;
- a technique name or PaNET id also finds datasets of its PaNET descendants;
- ``query`` ranks by relevance and every record's ``score`` is in (0, 1) (the reference ignores ``query``
  and scores 0, which the PaNOSC federated aggregator drops: it keeps scores strictly inside (0, 1));
- a filter without ``limit`` returns every match up to ``NO_LIMIT_CEILING`` and is refused beyond (the
  reference returns everything);
- ``where.text`` on datasets matches words (every word, stemmed) in the title, summary, keywords, techniques,
  instrument and samples; the reference matches a substring of the title.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Iterator

from panmodel.errors import NotFound
from broker.search.index import FACETS, MAX_WINDOW
from panmodel.datasets import Dataset, DocumentRef, SearchRequest, SearchResult, Sort
from broker.search.panosc.filters import (
    Filter,
    FilterError,
    Include,
    check_where,
    matches,
    parse_filter,
    parse_json,
    project,
)
from broker.search.panosc.plan import Plan, plan_of
from broker.search.panosc.where import (
    DOCUMENT_PROPERTIES,
    FILE_PROPERTIES,
    INSTRUMENT_PROPERTIES,
    check_known,
    check_members,
    document_keys,
    include_json,
    is_scoped,
)
from broker.search.panosc.records import (
    UNRANKED_SCORE,
    Scorer,
    _complete_files,
    _fields_keep,
    _ordered,
    document_record,
    file_records,
    instrument_record,
    member_records,
    to_record,
)
from broker.search.service import Mode, Query, SearchService

#: a filter without ``limit`` returns every match up to this many, and is refused (400) beyond
NO_LIMIT_CEILING = 1000
#: datasets the broker reads from the index for a filter it applies itself (and for Documents)
SCAN_CEILING = MAX_WINDOW
SCAN_PAGE = 1000

# -- the API --------------------------------------------------------------------------------------

@dataclass
class Answer:
    records: list[dict[str, Any]]
    result: SearchResult  # sources and partial as the index (or the facilities, live) answered
    mode: Mode = Mode.INDEX


class PanoscCompat:
    """Answers the PaNOSC Search API's Datasets, Documents and Instruments calls from the index (Datasets
    also live from the facilities)."""

    def __init__(self, search: SearchService):
        self.search = search
        self.index = search.index
        self.instruments_complete = True

    # -- datasets --------------------------------------------------------------------------------
    def datasets(self, raw_filter: str | None, raw_query: str | None = None, mode: Mode = Mode.INDEX) -> Answer:
        flt = parse_filter(raw_filter, query=raw_query)
        plan = plan_of(flt)
        items, result = self._find(plan, flt, mode)
        includes = {i.relation for i in flt.include}
        score = Scorer(flt.query)
        records = [project(to_record(d, includes, score(d)), flt.fields, _fields_keep(flt, "score")) for d in items]
        return Answer(records, result, mode)

    def _find(self, plan: Plan, flt: Filter, mode: Mode) -> tuple[list[Dataset], SearchResult]:
        limit = flt.limit or NO_LIMIT_CEILING
        if mode is Mode.LIVE and not plan.live:
            raise FilterError("live answers do not take where.text or a title: send the words as query "
                              "(ranked, any word), or ask /panosc/api")
        if plan.exact:
            if flt.skip + limit > MAX_WINDOW:
                raise FilterError(f"skip + limit may not exceed {MAX_WINDOW}; narrow the filter instead")
            request = plan.request(flt.skip, limit)
            if mode is Mode.LIVE and request.sort is Sort.PID:
                request = replace(request, sort=Sort.NEWEST)  # facilities do not order by pid for the broker
            result = self.search.search(Query(request, mode, flt.skip // limit + 1, limit))
            self._within_ceiling(flt, result.total)
            return result.items, result
        if mode is Mode.LIVE:
            raise FilterError("live answers take only what facilities can be asked for (pid, isPublic, text, "
                              "creationDate, technique, instrument name and parameter conditions, order by "
                              "creationDate); ask /panosc/api for the rest")
        matched, result = self._scan(plan)
        self._within_ceiling(flt, len(matched))
        if not plan.order and plan.sort in (Sort.NEWEST, Sort.OLDEST):  # ties in pid order, as the reference
            plan.order = (("creationDate", plan.sort is Sort.NEWEST),)
        ordered = _ordered(matched, plan.order) if plan.order else matched
        return ordered[flt.skip:flt.skip + limit], replace(result, items=[], total=len(matched))

    @staticmethod
    def _within_ceiling(flt: Filter, total: int) -> None:
        if flt.limit is None and total - flt.skip > NO_LIMIT_CEILING:
            raise FilterError(f"{total} records match and the filter has no limit: answers without limit hold at "
                              f"most {NO_LIMIT_CEILING}; page with limit (up to {NO_LIMIT_CEILING}) and skip")

    def _scan(self, plan: Plan) -> tuple[list[Dataset], SearchResult]:
        """Every dataset the index preselects that the plan's checks keep, in the index's order."""
        matched: list[Dataset] = []
        first: SearchResult | None = None
        for page in self._pages(plan.request(0, SCAN_PAGE)):
            first = first or page
            matched.extend(d for d in page.items if plan.holds(d))
        assert first is not None
        return matched, first

    def _pages(self, request: SearchRequest, *, every: bool = True) -> Iterator[SearchResult]:
        """Pages of what the index preselects, in its order. ``every``: the caller needs them all, so more than
        ``SCAN_CEILING`` is refused at once; else only when the caller reads past the ceiling."""
        offset = 0
        while True:
            page = self.search.search(Query(replace(request, offset=offset, limit=SCAN_PAGE), Mode.INDEX,
                                            offset // SCAN_PAGE + 1, SCAN_PAGE))
            if page.total > SCAN_CEILING and (every or offset >= SCAN_CEILING):
                raise FilterError(f"this filter has conditions the broker checks itself (or, size, title, files, "
                                  f"samples, a facility's own technique pid, ordering by title or size, documents' "
                                  f"own conditions and counts): the index preselects {page.total} datasets for "
                                  f"them and the broker reads at most {SCAN_CEILING}; narrow it with text, pid, "
                                  "isPublic, creationDate, technique, instrument name or parameter conditions")
            yield page
            offset += SCAN_PAGE
            if offset >= page.total or not page.items:
                return

    def count(self, raw_where: str | None, mode: Mode = Mode.INDEX) -> tuple[int, SearchResult]:
        where = parse_json(raw_where, "where")
        check_where(where)
        plan = plan_of(Filter(where=where))
        if mode is Mode.LIVE and not plan.live:
            raise FilterError("live counts do not take where.text or a title; ask /panosc/api")
        if plan.exact:
            result = self.search.search(Query(plan.request(0, 1), mode, 1, 1))
            return result.total, result
        if mode is Mode.LIVE:
            raise FilterError("live counts take only what facilities can be asked for; ask /panosc/api")
        matched, result = self._scan(plan)
        return len(matched), result

    def dataset(self, pid: str, raw_filter: str | None, mode: Mode = Mode.INDEX) -> dict[str, Any] | None:
        flt = parse_filter(raw_filter)
        found = self._get(pid, mode)
        if found is None:
            return None
        return project(to_record(found, {i.relation for i in flt.include}), flt.fields, _fields_keep(flt))

    def _get(self, pid: str, mode: Mode) -> Dataset | None:
        if mode is Mode.LIVE:
            try:
                return self.search.get(pid)
            except NotFound:
                return None
        return self.index.get(pid)

    def files(self, pid: str, raw_filter: str | None) -> tuple[list[dict[str, Any]], bool] | None:
        """A dataset's files (and whether the harvest holds every one of them), or None for no dataset."""
        dataset = self.index.get(pid)
        if dataset is None:
            return None
        flt = parse_filter(raw_filter)
        check_known([flt.where], FILE_PROPERTIES, "Files")
        if flt.include:
            raise FilterError("files have no relations to include")
        records = [f for f in file_records(dataset) if matches(flt.where, f, "files")]
        for name, descending in reversed(flt.order):
            if name not in FILE_PROPERTIES:
                raise FilterError(f"order files by {', '.join(FILE_PROPERTIES[:-1])}, not {name!r}")
            records.sort(key=lambda f: (f.get(name) is not None, f.get(name) or 0), reverse=descending)
        page = records[flt.skip:flt.skip + flt.limit if flt.limit else None]
        return [project(f, flt.fields) for f in page], _complete_files(dataset)

    def count_files(self, pid: str, raw_where: str | None) -> tuple[int, bool] | None:
        dataset = self.index.get(pid)
        if dataset is None:
            return None
        where = parse_json(raw_where, "where")
        check_where(where)
        check_known([where], FILE_PROPERTIES, "Files")
        return sum(1 for f in file_records(dataset) if matches(where, f, "files")), _complete_files(dataset)

    # -- documents -------------------------------------------------------------------------------
    def documents(self, raw_filter: str | None, raw_query: str | None = None) -> tuple[list[dict[str, Any]], int]:
        """Documents (proposals, publications) of the datasets that match, each with the datasets of it that
        match when ``datasets`` is included. The dataset conditions come from ``include: [{relation: datasets,
        scope: {where, include}}]``, as the PaNOSC portal sends them; the document's own from ``where``."""
        flt = parse_filter(raw_filter, query=raw_query)
        # a page of documents needs only the datasets up to its last document's first one (documents come in
        # the order of their first matching dataset); an order of their own, or no limit, needs them all
        enough = flt.skip + flt.limit if flt.limit and not flt.order else None
        groups, plan = self._document_groups(flt, enough)
        self._within_ceiling(flt, len(groups))
        page = groups[flt.skip:flt.skip + (flt.limit or NO_LIMIT_CEILING)]
        includes = {i.relation: i for i in flt.include}
        nested = {i.relation for i in includes["datasets"].include} if "datasets" in includes else set()
        records = []
        score = Scorer(flt.query)
        for document, datasets in page:
            record = document_record(document)
            record["score"] = max((score(d) for d in datasets), default=UNRANKED_SCORE)
            if "datasets" in includes:
                every = datasets if enough is None else self._datasets_of(document, plan)
                record["datasets"] = [to_record(d, nested) for d in every]
            if "members" in includes:
                record["members"] = member_records(document, includes["members"])
            records.append(project(record, flt.fields, _fields_keep(flt, "score")))
        return records, len(groups)

    def _datasets_of(self, document: DocumentRef, plan: Plan) -> list[Dataset]:
        """Every dataset of ``document`` that the plan keeps."""
        request = replace(plan.request(0, SCAN_PAGE), documents=(document.pid,))
        return [d for page in self._pages(request) for d in page.items
                if plan.holds(d) and any(x.pid == document.pid for x in d.documents)]

    def _document_groups(self, flt: Filter, enough: int | None = None
                         ) -> tuple[list[tuple[DocumentRef, list[Dataset]]], Plan]:
        """Documents whose datasets match, with those datasets, in the order of their first matching dataset
        (its rank with ``query``, else its pid); with ``enough``, the first that many documents only."""
        dataset_filter = Filter(query=flt.query)
        members: Include | None = None
        for include in flt.include:
            if include.relation == "datasets":
                dataset_filter = Filter(where=include.where or {}, include=include.include, query=flt.query)
            elif include.relation == "members":
                check_members(include)
                if is_scoped(include):  # documents with no member that matches are left out
                    members = include
            elif include.relation == "parameters":
                raise FilterError("Documents' own parameters are not harvested; filter on their datasets' "
                                  'parameters: {"include": [{"relation": "datasets", "scope": {"include": '
                                  '[{"relation": "parameters", "scope": {"where": ...}}]}}]}')
            else:
                raise FilterError(f"Documents have no relation {include.relation!r}; use datasets or members")
        check_known([flt.where], DOCUMENT_PROPERTIES, "Documents")
        plan = plan_of(dataset_filter)
        keys = document_keys(flt.where)
        if keys:
            plan.values["documents"] = sorted(keys)
        groups: dict[str, tuple[DocumentRef, list[Dataset]]] = {}
        for page in self._pages(plan.request(0, SCAN_PAGE), every=enough is None):
            if enough is not None and len(groups) >= enough:
                break
            for dataset in page.items:
                if not plan.holds(dataset):
                    continue
                for document in dataset.documents:
                    if document.pid in groups or (matches(flt.where, document_record(document), "documents")
                                                  and (members is None or member_records(document, members))):
                        groups.setdefault(document.pid, (document, []))[1].append(dataset)
        ordered = list(groups.values())
        for name, descending in reversed(flt.order):
            if name not in DOCUMENT_PROPERTIES:
                raise FilterError(f"order documents by {', '.join(DOCUMENT_PROPERTIES[:-1])}, not {name!r}")
            ordered.sort(key=lambda g: (document_record(g[0]).get(name) is not None,
                                        str(document_record(g[0]).get(name) or "")), reverse=descending)
        return ordered, plan

    def count_documents(self, raw_where: str | None) -> int:
        where = parse_json(raw_where, "where")
        check_where(where)
        return len(self._document_groups(Filter(where=where))[0])

    def document(self, pid: str, raw_filter: str | None) -> dict[str, Any] | None:
        flt = parse_filter(raw_filter)
        found, _ = self.documents_for(Filter(where={"pid": pid}, include=flt.include, fields=flt.fields))
        if not found:  # the broker's extra: a document by its DOI
            found, _ = self.documents_for(Filter(where={"doi": pid}, include=flt.include, fields=flt.fields))
        if not found:
            return None
        found[0].pop("score", None)  # findById does not pass through the Score mixin
        return found[0]

    def documents_for(self, flt: Filter) -> tuple[list[dict[str, Any]], int]:
        raw = {"where": flt.where, "include": [include_json(i) for i in flt.include]}
        if flt.fields:
            raw["fields"] = {name: shown for name, shown in flt.fields}
        return self.documents(json.dumps(raw))

    # -- instruments -----------------------------------------------------------------------------
    def _instruments(self) -> list[dict[str, Any]]:
        """Every instrument the harvested datasets name, by pid (``complete`` False when the index's instrument
        facet may have left some out)."""
        result = self.search.search(Query(SearchRequest(limit=1, facets=("instrument",)), Mode.INDEX, 1, 1))
        buckets = result.facets.get("instrument", [])
        self.instruments_complete = len(buckets) < FACETS["instrument"]["terms"]["size"]
        found: dict[str, dict[str, Any]] = {}
        for bucket in buckets:
            datasets = self.search.search(Query(SearchRequest(instruments=(bucket.value,), limit=50, sort=Sort.PID),
                                                Mode.INDEX, 1, 50))
            for dataset in datasets.items:
                record = instrument_record(dataset)
                if record is not None:
                    found.setdefault(record["pid"], record)
        return [found[pid] for pid in sorted(found)]

    def instruments(self, raw_filter: str | None) -> list[dict[str, Any]]:
        flt = parse_filter(raw_filter)
        check_known([flt.where], INSTRUMENT_PROPERTIES, "Instruments")
        if flt.include:
            raise FilterError("Instruments are served without relations")
        items = [i for i in self._instruments() if matches(flt.where, i, "instrument")]
        for name, descending in reversed(flt.order):
            if name not in INSTRUMENT_PROPERTIES[:-1]:
                raise FilterError(f"order instruments by pid, name or facility, not {name!r}")
            items.sort(key=lambda i: str(i.get(name) or ""), reverse=descending)
        self._within_ceiling(flt, len(items))
        page = items[flt.skip:flt.skip + (flt.limit or NO_LIMIT_CEILING)]
        return [project({**i, "score": UNRANKED_SCORE}, flt.fields, ("score",)) for i in page]

    def count_instruments(self, raw_where: str | None) -> int:
        where = parse_json(raw_where, "where")
        check_where(where)
        check_known([where], INSTRUMENT_PROPERTIES, "Instruments")
        return sum(1 for i in self._instruments() if matches(where, i, "instrument"))

    def instrument(self, pid: str, raw_filter: str | None) -> dict[str, Any] | None:
        flt = parse_filter(raw_filter)
        found = next((i for i in self._instruments() if i["pid"] == pid), None)
        return project(found, flt.fields) if found else None


