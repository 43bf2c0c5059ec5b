"""Handlers of the dataset search API."""
from __future__ import annotations

from typing import Any

from broker.api.context import broker
from broker.api.registry import JSON
from panmodel.datasets import SearchResult
from broker.search.service import parse_query


def search(**params: Any) -> tuple:
    query = parse_query(params)
    return serialise(broker().search.search(query), query.page, query.size, query.mode.value), 200, JSON


def get_dataset(pid: str) -> tuple:
    return broker().search.get(pid).to_dict(), 200, JSON


def serialise(result: SearchResult, page: int, size: int, mode: str) -> dict[str, Any]:
    return {
        "items": [d.to_dict() for d in result.items],
        "total": result.total,
        "total_exact": result.total_exact,
        "facets_exact": result.facets_exact,
        "page": page,
        "size": size,
        "mode": mode,
        "partial": result.partial,
        "facets": {name: [{"value": b.value, "count": b.count, **({"label": b.label} if b.label else {})}
                          for b in buckets] for name, buckets in result.facets.items()},
        "sources": [{"facility": s.facility, "status": s.status.value, "latency_ms": s.latency_ms,
                     "count": s.count, "error": s.error} for s in result.sources],
    }


def get_document(pid: str) -> tuple:
    return broker().search.document(pid), 200, JSON


def list_instruments(facility: list[str] | None = None) -> tuple:
    items = broker().search.instruments(tuple(facility or ()))
    return {"items": items, "total": len(items)}, 200, JSON
