"""A simulated Elasticsearch (the REST calls the broker's backend makes, from the documented API), on
loopback, for the demo and the shared index suite where no Elasticsearch runs.

Covers: index create/delete with mappings and aliases, alias look-up and atomic ``_aliases`` swaps,
``_bulk`` (index/delete), ``_refresh`` (writes are invisible until then, as in Elasticsearch),
``_search`` with bool/must/filter/should (minimum_should_match), multi_match (most_fields, boosts),
term/terms/range/match_all, sort,
from/size, terms aggregations and scroll, ``_count`` and ``_delete_by_query``. Scoring is TF-IDF with
field boosts: close enough to rank like BM25 for the suite, not a reimplementation of Lucene.
"""
from __future__ import annotations

import copy
import fnmatch
import json
import math
import re
import threading
from typing import Any

from werkzeug.wrappers import Request, Response

HEADERS = {"X-Elastic-Product": "Elasticsearch"}
TOKEN = re.compile(r"\w+")
STOP = {"the", "of", "a", "an", "in", "on", "by", "and", "at", "to", "for", "with", "not", "all"}


def analyse(text: Any) -> list[str]:
    values = text if isinstance(text, list) else [text]
    tokens = []
    for value in values:
        for token in TOKEN.findall(str(value or "").lower()):
            if token in STOP:
                continue
            tokens.append(token[:-1] if len(token) > 3 and token.endswith("s") else token)
    return tokens


class SimulatedElasticsearch:
    def __init__(self) -> None:
        self.indices: dict[str, dict[str, Any]] = {}  # name -> {"mappings", "pending", "visible"}
        self.aliases: dict[str, set[str]] = {}
        self.lock = threading.Lock()

    # -- routing ---------------------------------------------------------------------------------
    def __call__(self, request: Request) -> Response:
        with self.lock:
            try:
                return self._route(request)
            except KeyError as exc:
                return _json({"error": {"type": "index_not_found_exception", "reason": str(exc)}, "status": 404},
                             404)

    def _route(self, request: Request) -> Response:  # noqa: C901 - a router
        parts = [p for p in request.path.split("/") if p]
        method = request.method
        body = request.get_data(as_text=True)
        if not parts:
            return _json({"version": {"number": "9.0.0-simulated"}, "tagline": "You Know, for Search"})
        if parts == ["_bulk"] or parts[-1:] == ["_bulk"]:
            return self._bulk(body)
        if parts == ["_aliases"]:
            for action in json.loads(body)["actions"]:
                (kind, spec), = action.items()
                members = self.aliases.setdefault(spec["alias"], set())
                (members.discard if kind == "remove" else members.add)(spec["index"])
            return _json({"acknowledged": True})
        if parts[0] == "_alias":
            found = {i: {"aliases": {parts[1]: {}}} for i in self.aliases.get(parts[1], set())}
            return _json(found, 200 if found else 404) if method != "HEAD" else Response(
                status=200 if found else 404, headers=HEADERS)
        if parts[:2] == ["_search", "scroll"]:
            return _json({"_scroll_id": "done", "hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}}
                         if method != "DELETE" else {"succeeded": True})
        name = parts[0]
        if len(parts) == 1:
            if method == "PUT":
                spec = json.loads(body or "{}")
                self.indices[name] = {"mappings": spec.get("mappings", {}), "pending": {}, "visible": {}}
                for alias in spec.get("aliases", {}):
                    self.aliases.setdefault(alias, set()).add(name)
                return _json({"acknowledged": True, "index": name})
            if method == "DELETE":
                doomed = [i for i in self.indices if fnmatch.fnmatchcase(i, name)]
                if not doomed:
                    raise KeyError(name)
                for index in doomed:
                    self.indices.pop(index)
                    for members in self.aliases.values():
                        members.discard(index)
                return _json({"acknowledged": True})
            if method == "HEAD":
                return Response(status=200 if self._resolve(name, strict=False) else 404, headers=HEADERS)
        action = parts[1]
        targets = self._resolve(name)
        if action == "_refresh":
            for index in targets:
                self.indices[index]["visible"] = copy.deepcopy(self.indices[index]["pending"])
            return _json({"_shards": {"total": 1, "successful": 1, "failed": 0}})
        docs = {doc_id: doc for index in targets for doc_id, doc in self.indices[index]["visible"].items()}
        spec = json.loads(body) if body else {}
        if action == "_count":
            return _json({"count": len([d for d in docs.values() if _matches(spec.get("query"), d)])})
        if action == "_delete_by_query":
            gone = [i for i, d in docs.items() if _matches(spec.get("query"), d)]
            for index in targets:
                for doc_id in gone:
                    self.indices[index]["pending"].pop(doc_id, None)
                self.indices[index]["visible"] = copy.deepcopy(self.indices[index]["pending"])
            return _json({"deleted": len(gone)})
        if action == "_search":
            return _json(self._search(docs, spec, scroll="scroll" in request.args))
        return _json({"error": {"type": "unsupported", "reason": request.path}}, 400)

    def _resolve(self, name: str, strict: bool = True) -> list[str]:
        if name in self.indices:
            return [name]
        if name in self.aliases and self.aliases[name]:
            return sorted(self.aliases[name])
        if strict:
            raise KeyError(name)
        return []

    # -- operations ------------------------------------------------------------------------------
    def _bulk(self, body: str) -> Response:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        items, i = [], 0
        while i < len(lines):
            (op, meta), = lines[i].items()
            index = self._resolve(meta["_index"])[0]
            pending = self.indices[index]["pending"]
            if op == "index":
                created = meta["_id"] not in pending
                pending[meta["_id"]] = lines[i + 1]
                items.append({op: {"_index": index, "_id": meta["_id"], "status": 201 if created else 200,
                                   "result": "created" if created else "updated"}})
                i += 2
            else:
                found = pending.pop(meta["_id"], None) is not None
                items.append({op: {"_index": index, "_id": meta["_id"], "status": 200 if found else 404,
                                   "result": "deleted" if found else "not_found"}})
                i += 1
        errors = any(not 200 <= list(item.values())[0]["status"] < 300 for item in items)
        return _json({"took": 1, "errors": errors, "items": items})

    def _search(self, docs: dict[str, dict], spec: dict[str, Any], scroll: bool) -> dict[str, Any]:
        query = spec.get("query")
        stats = _stats(docs)
        hits = []
        for doc_id, doc in docs.items():
            if _matches(query, doc):
                hits.append({"_id": doc_id, "_score": _score(query, doc, stats), "_source": doc})
        hits.sort(key=_sort_key(spec.get("sort")))
        start, size = int(spec.get("from", 0)), int(spec.get("size", 10))
        page = hits[start:start + size] if not scroll else hits
        fields = spec.get("_source")
        shown = [{**h, "_source": {k: v for k, v in h["_source"].items() if not fields or k in fields}} for h in page]
        result: dict[str, Any] = {"took": 1, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                                  "hits": {"total": {"value": len(hits), "relation": "eq"}, "hits": shown}}
        if spec.get("aggs"):
            result["aggregations"] = {name: _terms(agg["terms"], [h["_source"] for h in hits])
                                      for name, agg in spec["aggs"].items()}
        if scroll:
            result["_scroll_id"] = "all-at-once"
        return result


def _values(doc: dict[str, Any], field: str) -> list[Any]:
    value: Any = doc
    for part in field.split("."):  # Elasticsearch reads a dotted field name as a path into objects
        value = value.get(part) if isinstance(value, dict) else None
    return value if isinstance(value, list) else ([] if value is None else [value])


def _matches(query: dict[str, Any] | None, doc: dict[str, Any]) -> bool:
    if not query or "match_all" in query:
        return True
    (kind, spec), = query.items()
    if kind == "bool":  # should: optional beside must/filter unless minimum_should_match says otherwise
        should = spec.get("should", [])
        least = spec.get("minimum_should_match", 0 if spec.get("must") or spec.get("filter") else 1)
        return (all(_matches(q, doc) for q in spec.get("must", []) + spec.get("filter", []))
                and not any(_matches(q, doc) for q in spec.get("must_not", []))
                and (not should or sum(_matches(q, doc) for q in should) >= least))
    if kind == "term":
        (field, value), = spec.items()
        return value in _values(doc, field)
    if kind == "terms":
        (field, values), = spec.items()
        return bool(set(values) & set(_values(doc, field)))
    if kind == "range":
        (field, bounds), = spec.items()
        return any(("gte" not in bounds or v >= bounds["gte"]) and ("lte" not in bounds or v <= bounds["lte"])
                   for v in _values(doc, field))
    if kind == "multi_match":
        terms = set(analyse(spec["query"]))
        present = {t for f in spec["fields"] for t in terms & set(analyse(doc.get(f.split("^")[0])))}
        return present == terms if spec.get("operator") == "and" else bool(present)
    raise ValueError(f"query {kind!r} is not simulated")


def _stats(docs: dict[str, dict]) -> dict[str, Any]:
    df: dict[tuple[str, str], int] = {}
    for doc in docs.values():
        for field, value in doc.items():
            if isinstance(value, (str, list)):
                for token in set(analyse(value)):
                    df[(field, token)] = df.get((field, token), 0) + 1
    return {"n": max(len(docs), 1), "df": df}


def _score(query: dict[str, Any] | None, doc: dict[str, Any], stats: dict[str, Any]) -> float:
    if not query:
        return 1.0
    (kind, spec), = query.items()
    if kind == "bool":
        return sum(_score(q, doc, stats) for q in spec.get("must", []) + [q for q in spec.get("should", [])
                                                                          if _matches(q, doc)]) or 0.0
    if kind != "multi_match":
        return 0.0
    terms = analyse(spec["query"])
    total = 0.0
    for entry in spec["fields"]:
        field, _, boost = entry.partition("^")
        tokens = analyse(doc.get(field))
        for term in terms:
            tf = tokens.count(term)
            if tf:
                idf = math.log(1 + stats["n"] / stats["df"].get((field, term), 1))
                total += float(boost or 1) * idf * tf / (tf + 1.2 * (0.25 + 0.75 * len(tokens) / 8))
    return round(total, 6)


def _sort_key(sort: list[Any] | None):  # noqa: ANN202
    def key(hit: dict[str, Any]) -> tuple:
        parts = []
        for item in sort or ["_score"]:
            if item == "_score":
                parts.append(-hit["_score"])
                continue
            (field, order), = item.items() if isinstance(item, dict) else ((item, "asc"),)
            order = order["order"] if isinstance(order, dict) else order
            value = hit["_source"].get(field)
            if isinstance(value, str) and order == "desc":
                parts.append(tuple(-ord(c) for c in value))
            elif isinstance(value, (int, float)):
                parts.append(-value if order == "desc" else value)
            else:
                parts.append(value or "")
        return tuple(parts)

    return key


def _terms(spec: dict[str, Any], sources: list[dict[str, Any]]) -> dict[str, Any]:
    counts: dict[Any, int] = {}
    for source in sources:
        for value in set(_values(source, spec["field"])):
            counts[value] = counts.get(value, 0) + 1
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[: spec.get("size", 10)]
    return {"buckets": [{"key": k, "doc_count": c} for k, c in ordered]}


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json", headers=HEADERS)
