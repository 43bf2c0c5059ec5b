"""The broker as a federated PaNOSC Search API: LoopBack filters translated into index searches, and
index records shown in the PaNOSC data model. Anything the broker cannot honour is refused with a
LoopBack error that says so, never silently ignored."""
from __future__ import annotations

from typing import Any

from broker.errors import NotFound
from broker.search.index import MAX_WINDOW
from broker.search.loopback import Filter, FilterError, Include, check_where, parse_filter, parse_json
from broker.search.model import Dataset, Range, SearchRequest, SearchResult, Sort
from broker.search.service import Mode, Query, SearchService, parameter_range
from broker.search.techniques import panet
from broker.search.units import canonical_name

DEFAULT_LIMIT = 100
DOCUMENT_WINDOW = 2000  # datasets grouped into documents per request
DATASET_PROPERTIES = {"pid", "isPublic", "creationDate", "title", "text"}


def to_request(flt: Filter, *, count_only: bool = False) -> SearchRequest:
    """The index search a PaNOSC filter asks for; ``FilterError`` for what cannot be honoured."""
    # PaNOSC `query` is relevance over any of its words (as the facilities' TF-IDF scoring does)
    values: dict[str, Any] = {"q": " ".join(filter(None, [flt.query])), "any_term": True}
    _where(flt.where, values)
    for include in flt.include:
        _include(include, values)
    limit = flt.limit or DEFAULT_LIMIT
    if flt.skip + limit > MAX_WINDOW and not count_only:
        raise FilterError(f"skip + limit may not exceed {MAX_WINDOW}")
    sort = Sort.RELEVANCE
    for name, descending in flt.order:
        if name == "pid" and not descending:
            sort = Sort.PID
        elif name == "creationDate":
            sort = Sort.NEWEST if descending else Sort.OLDEST
        else:
            raise FilterError(f"order by {name!r} {'DESC' if descending else 'ASC'} is not supported; "
                              "order by creationDate (ASC or DESC) or pid ASC")
    return SearchRequest(offset=0 if count_only else flt.skip, limit=1 if count_only else limit, sort=sort,
                         **{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _where(where: dict[str, Any], values: dict[str, Any]) -> None:
    for key, condition in where.items():
        if key == "and":
            for clause in condition:
                _where(clause, values)
        elif key == "or":
            raise FilterError("or is not supported at the dataset level; use inq")
        elif key not in DATASET_PROPERTIES:
            raise FilterError(f"where on {key!r} is not supported; use {', '.join(sorted(DATASET_PROPERTIES))}")
        elif key in ("text", "title"):
            text = condition if not isinstance(condition, dict) else next(iter(condition.values()))
            values["q"] = " ".join(filter(None, [values.get("q"), str(text).replace("%", " ")]))
        elif key == "pid":
            op, operand = _op(condition)
            if op not in ("eq", "inq"):
                raise FilterError("pid takes equality or inq")
            values.setdefault("pids", []).extend(operand if isinstance(operand, list) else [operand])
        elif key == "isPublic":
            op, operand = _op(condition)
            if op != "eq" or not isinstance(operand, bool):
                raise FilterError("isPublic takes true or false")
            values["is_public"] = operand
        elif key == "creationDate":
            values["years"] = _years(condition)


def _op(condition: Any) -> tuple[str, Any]:
    return next(iter(condition.items())) if isinstance(condition, dict) else ("eq", condition)


def _years(condition: Any) -> Range:
    op, operand = _op(condition)
    try:
        if op == "between":
            return Range(int(str(operand[0])[:4]), int(str(operand[1])[:4]))
        year = int(str(operand)[:4])
    except ValueError as exc:
        raise FilterError("creationDate takes ISO dates") from exc
    bounds = {"gt": Range(year, None), "gte": Range(year, None), "lt": Range(None, year), "lte": Range(None, year),
              "eq": Range(year, year)}
    if op not in bounds:
        raise FilterError(f"creationDate does not take {op}")
    return bounds[op]


def _include(include: Include, values: dict[str, Any]) -> None:
    where = include.where
    if where is None:
        return
    flat = _flatten(where)
    if include.relation == "techniques":
        names = []
        for key in ("pid", "name", "panetId"):
            if key in flat:
                op, operand = _op(flat[key])
                names.extend(operand if isinstance(operand, list) else [operand])
        iris = [iri for name in names for iri in panet().resolve(str(name))]
        if not iris:
            raise FilterError(f"no PaNET technique matches {names}")
        values.setdefault("techniques", []).extend(iris)
    elif include.relation == "instrument":
        op, operand = _op(flat.get("name", {}))
        if "name" not in flat or op not in ("eq", "inq"):
            raise FilterError("instrument scopes take name (equality or inq)")
        values.setdefault("instruments", []).extend(operand if isinstance(operand, list) else [operand])
    elif include.relation == "parameters":
        _parameter(flat, values)
    else:
        raise FilterError(f"filtering on {include.relation} is not supported; techniques, instrument and "
                          "parameters are")


def _flatten(where: dict[str, Any]) -> dict[str, Any]:
    check_where(where)
    flat: dict[str, Any] = {}
    for key, value in where.items():
        if key == "and":
            for clause in value:
                flat.update(_flatten(clause))
        elif key == "or":
            raise FilterError("or is not supported inside include scopes")
        else:
            flat[key] = value
    return flat


def _parameter(flat: dict[str, Any], values: dict[str, Any]) -> None:
    """A parameter scope (name, value, unit): a range or equality in any unit of the quantity, or a text value."""
    name = flat.get("name")
    if not isinstance(name, str) or not name.strip():
        raise FilterError("a parameters scope needs a name, e.g. {\"name\": \"sample_temperature\"}")
    name = canonical_name(name)
    op, operand = _op(flat.get("value", {"gt": None}))
    unit = flat.get("unit")
    unit = unit if isinstance(unit, str) and unit.strip() else None
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) or _is_number(v)
                  for v in (operand if isinstance(operand, list) else [operand]) if v is not None)
    if op == "eq" and isinstance(operand, str) and not _is_number(operand):
        values.setdefault("parameter_values", []).append((name, operand))
        return
    if op == "gt" and operand is None:
        raise FilterError(f"parameter {name}: give a value condition, e.g. {{\"value\": {{\"between\": [1, 2]}}}}")
    if not numeric:
        raise FilterError(f"parameter {name}: values to compare must be numbers")
    try:
        if op == "between":
            bounds = parameter_range(operand[0], operand[1], unit, name)
        elif op in ("gt", "gte"):
            bounds = parameter_range(operand, None, unit, name)
        elif op in ("lt", "lte"):
            bounds = parameter_range(None, operand, unit, name)
        elif op == "eq":
            bounds = parameter_range(operand, operand, unit, name)
        else:
            raise FilterError(f"parameter values take between, gt, gte, lt, lte or equality, not {op}")
    except ValueError as exc:
        raise FilterError(f"parameter {name}: {exc}") from exc
    values.setdefault("parameters", []).append((name, bounds))


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def to_record(dataset: Dataset, includes: set[str], score: float | None = None) -> dict[str, Any]:
    """A dataset in the PaNOSC data model; relations only when included, as LoopBack does."""
    record: dict[str, Any] = {"pid": dataset.pid, "title": dataset.title, "isPublic": dataset.is_public,
                              "creationDate": dataset.creation_date.isoformat().replace("+00:00", "Z")
                              if dataset.creation_date else None, "size": dataset.size,
                              "facility": dataset.facility}
    if score is not None:
        record["score"] = score
    if "documents" in includes:
        record["documents"] = [{"pid": d.pid, "title": d.title, "type": d.type, "doi": d.doi, "summary": d.summary,
                                "keywords": list(d.keywords), "isPublic": dataset.is_public}
                               for d in dataset.documents]
    if "techniques" in includes:
        record["techniques"] = [{"pid": t.iri or t.name, "name": t.name} for t in dataset.techniques]
    if "instrument" in includes and dataset.instrument:
        record["instrument"] = {"pid": f"{dataset.facility}/{dataset.instrument}", "name": dataset.instrument,
                                "facility": dataset.facility}
    if "parameters" in includes:
        record["parameters"] = [{"name": p.name, "value": p.value, "unit": p.unit} for p in dataset.parameters]
    return record


class PanoscCompat:
    """Answers the PaNOSC Search API's Datasets and Instruments calls from the index."""

    def __init__(self, search: SearchService):
        self.search = search
        self.index = search.index

    def datasets(self, raw_filter: str | None, raw_query: str | None = None) -> tuple[list[dict[str, Any]], SearchResult]:
        """Records and the search result (whose ``sources`` say which facilities the index holds)."""
        flt = parse_filter(raw_filter, query=raw_query)
        request = to_request(flt)
        result = self.search.search(Query(request, Mode.INDEX, 1, request.limit))
        includes = {i.relation for i in flt.include}
        ranked = bool(flt.query)
        records = [to_record(d, includes, round(1.0 - i / max(len(result.items), 1), 4) if ranked else None)
                   for i, d in enumerate(result.items)]
        return records, result

    def count(self, raw_where: str | None) -> int:
        where = parse_json(raw_where, "where")
        check_where(where)
        return self.index.search(to_request(Filter(where=where), count_only=True)).total

    def dataset(self, pid: str, raw_filter: str | None) -> dict[str, Any] | None:
        flt = parse_filter(raw_filter)
        found = self.index.get(pid)
        return to_record(found, {i.relation for i in flt.include}) if found else None

    def document(self, pid: str) -> dict[str, Any] | None:
        """A Document (proposal or publication) in the PaNOSC model, with its datasets' pids."""
        try:
            found = self.search.document(pid)
        except NotFound:
            return None
        return {"pid": found["pid"], "isPublic": True, "type": found["type"] or "proposal", "title": found["title"],
                "summary": found["summary"], "doi": found["doi"], "keywords": found["keywords"],
                "datasets": [{"pid": d["pid"], "title": d["title"]} for d in found["datasets"]]}

    def documents(self, raw_filter: str | None, raw_query: str | None = None) -> tuple[list[dict[str, Any]], int]:
        """Documents (proposals, publications) whose datasets match, ranked by their best dataset.

        The dataset conditions come from ``include: [{relation: datasets, scope: {where, include}}]``, as
        the PaNOSC portal sends them; document conditions (pid, doi, type, title/text) from ``where``.
        Returns one page and the number of matching documents.
        """
        flt = parse_filter(raw_filter, query=raw_query)
        groups = self._document_groups(flt)
        limit = flt.limit or DEFAULT_LIMIT
        page = groups[flt.skip:flt.skip + limit]
        includes = {i.relation: i for i in flt.include}
        dataset_includes = {i.relation for i in includes["datasets"].include} if "datasets" in includes else set()
        records = []
        for document, datasets in page:
            record = {"pid": document.pid, "isPublic": True, "type": document.type or "proposal",
                      "title": document.title or document.pid, "summary": document.summary, "doi": document.doi,
                      "keywords": list(document.keywords)}
            if "datasets" in includes:
                record["datasets"] = [to_record(d, dataset_includes) for d in datasets]
            if "members" in includes:
                record["members"] = []  # not harvested yet
            records.append(record)
        return records, len(groups)

    def _document_groups(self, flt: Filter) -> list[tuple[Any, list[Dataset]]]:
        dataset_where: dict[str, Any] = {}
        dataset_includes: tuple[Include, ...] = ()
        for include in flt.include:
            if include.relation == "datasets":
                dataset_where, dataset_includes = include.where or {}, include.include
            elif include.relation != "members" and (include.where or include.include):
                raise FilterError(f"filtering Documents on {include.relation} is not supported; filter on datasets")
            elif include.relation == "members" and _scoped(include):
                raise FilterError("filtering Documents on members is not supported (members are not harvested)")
        wanted = _document_conditions(flt.where)
        text = " ".join(filter(None, [flt.query, wanted.pop("text", None)]))
        request = to_request(Filter(where=dataset_where, include=dataset_includes, query=text or None,
                                    limit=DOCUMENT_WINDOW), count_only=False)
        request = SearchRequest(**{**request.__dict__, "documents": tuple(wanted.get("keys", ()))})
        result = self.search.search(Query(request, Mode.INDEX, 1, request.limit))
        groups: dict[str, tuple[Any, list[Dataset]]] = {}
        for dataset in result.items:
            for document in dataset.documents:
                if wanted.get("type") and (document.type or "proposal") != wanted["type"]:
                    continue
                if wanted.get("keys") and not {document.pid.lower(), (document.doi or "").lower()} & wanted["keys"]:
                    continue
                groups.setdefault(document.pid, (document, []))[1].append(dataset)
        return list(groups.values())

    def count_documents(self, raw_where: str | None) -> int:
        where = parse_json(raw_where, "where")
        check_where(where)
        return len(self._document_groups(Filter(where=where)))

    def instruments(self, raw_filter: str | None) -> list[dict[str, Any]]:
        flt = parse_filter(raw_filter)
        result = self.index.search(SearchRequest(limit=1, facets=("instrument",)))
        items = [{"pid": b.value, "name": b.value} for b in result.facets.get("instrument", [])]
        limit = flt.limit or len(items)
        return items[flt.skip:flt.skip + limit]


def _scoped(include: Include) -> bool:
    return include.where is not None or any(_scoped(i) for i in include.include)


def _document_conditions(where: dict[str, Any]) -> dict[str, Any]:
    """Document-level conditions: pid/doi (equality or inq), type (equality), title/summary/text (words)."""
    wanted: dict[str, Any] = {}
    for key, condition in where.items():
        if key == "and":
            for clause in condition:
                for k, v in _document_conditions(clause).items():
                    wanted[k] = (wanted[k] | v) if k == "keys" and k in wanted else v
            continue
        op, operand = _op(condition)
        if key in ("pid", "doi"):
            if op not in ("eq", "inq"):
                raise FilterError(f"{key} takes equality or inq")
            values = operand if isinstance(operand, list) else [operand]
            wanted["keys"] = wanted.get("keys", set()) | {str(v).lower() for v in values}
        elif key == "type":
            if op != "eq":
                raise FilterError("type takes equality")
            wanted["type"] = operand
        elif key in ("title", "summary", "text"):
            wanted["text"] = " ".join(filter(None, [wanted.get("text"), str(operand).replace("%", " ")]))
        elif key == "isPublic":
            continue  # every document the broker serves is public
        else:
            raise FilterError(f"where on Documents' {key!r} is not supported; use pid, doi, type, title, text")
    return wanted
