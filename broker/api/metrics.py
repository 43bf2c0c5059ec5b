"""Prometheus metrics at ``/metrics`` (prometheus_client): request latency by route and status, outbound
calls by facility and outcome, circuit breaker state, harvests, launches by state.

Counters and histograms live in the process that counts them. With several processes (``serve --workers``,
a worker beside the web processes) set ``PROMETHEUS_MULTIPROC_DIR`` to one empty folder for all of them
(prometheus_client's multiprocess mode): any process then answers for all. Harvest and launch figures
are read from the store at each scrape, so they are the same from any process.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterable

from anyio import to_thread
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from starlette.types import ASGIApp, Receive, Scope, Send

from broker.settings import prometheus_multiproc_dir
from connectors.http_breakers import origin_of  # the key the HTTP client gives its breakers
from registry.models import ComputeService, HarvestJob, Launch, SearchEndpoint
from registry.store import Store

log = logging.getLogger(__name__)
PATH = "/metrics"
OTHER = "other"  # the facility label of calls to no registered endpoint (login providers, the EOSC catalogue)
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}

REQUEST_SECONDS = Histogram("panbroker_http_request_duration_seconds", "Time to answer a request",
                            ["method", "route", "status"],
                            buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
OUTBOUND_CALLS = Counter("panbroker_outbound_calls", "Outbound calls by facility and how they ended",
                         ["facility", "outcome"])
BREAKER_STATE = Gauge("panbroker_circuit_breaker_state", "Circuit breaker per endpoint: 0 closed, 1 half-open, "
                      "2 open (the highest of the live processes)", ["facility", "endpoint"],
                      multiprocess_mode="livemax")


class Origins:
    """Which facility an endpoint (an origin, as the HTTP client keys its breakers) belongs to: read from
    the registry again when the registry stamp moves, looked at no more than every ``refresh`` seconds."""

    def __init__(self, store: Store, refresh: float = 5.0):
        self.store = store
        self.refresh = refresh
        self._map: dict[str, str] = {}
        self._stamp: int | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def facility(self, origin: str) -> str:
        now = time.monotonic()
        if now - self._checked > self.refresh:
            with self._lock:
                if now - self._checked > self.refresh:
                    self._checked = now
                    stamp = self.store.registry_stamp()
                    if stamp != self._stamp or stamp < 0:
                        self._map, self._stamp = self._read(), stamp
        return self._map.get(origin, OTHER)

    def _read(self) -> dict[str, str]:
        found: dict[str, str] = {}
        with self.store.session() as session:
            for model in (ComputeService, SearchEndpoint):
                for url, config, facility in session.execute(
                        select(model.base_url, model.connector_config, model.facility_id)):
                    for candidate in (url, (config or {}).get("health_url")):
                        if candidate:
                            found.setdefault(origin_of(candidate), facility)
        return found


def outbound_observer(http: Any, store: Store) -> Callable[[str, str], None]:
    """What the shared HTTP client tells after each call: counted, with the endpoint's breaker state."""
    origins = Origins(store)

    def observe(endpoint: str, outcome: str) -> None:
        try:
            facility = origins.facility(endpoint)
        except Exception:  # noqa: BLE001 - a store that cannot be read must not fail the call counted
            log.warning("metrics: cannot read which facility %s belongs to", endpoint, exc_info=True)
            facility = OTHER
        OUTBOUND_CALLS.labels(facility, outcome).inc()
        state = http.breakers.breaker(endpoint).current_state
        BREAKER_STATE.labels(facility, endpoint).set(BREAKER_STATES.get(state, 0))

    return observe


class StoreCollector:
    """Harvest and launch figures, read from the store when scraped."""

    def __init__(self, store: Store):
        self.store = store

    def collect(self) -> Iterable[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("panbroker_harvest_jobs", "Harvest jobs kept, by facility and state",
                                 labels=["facility", "state"])
        items = GaugeMetricFamily("panbroker_harvest_datasets", "Datasets the kept harvest jobs imported, "
                                  "deleted or failed, by facility", labels=["facility", "outcome"])
        launches = GaugeMetricFamily("panbroker_launches", "Launches by facility and state",
                                     labels=["facility", "state"])
        with self.store.session() as session:
            for facility, state, count, imported, deleted, failed in session.execute(
                    select(SearchEndpoint.facility_id, HarvestJob.state, func.count(), func.sum(HarvestJob.imported),
                           func.sum(HarvestJob.deleted), func.sum(HarvestJob.failed))
                    .join(SearchEndpoint, SearchEndpoint.id == HarvestJob.endpoint_id)
                    .group_by(SearchEndpoint.facility_id, HarvestJob.state)):
                jobs.add_metric([facility, state], count)
                for outcome, value in (("imported", imported), ("deleted", deleted), ("failed", failed)):
                    items.add_metric([facility, outcome], value or 0)
            for facility, state, count in session.execute(
                    select(Launch.facility_id, Launch.state, func.count()).group_by(Launch.facility_id, Launch.state)):
                launches.add_metric([facility or "none", state], count)
        return [jobs, _summed(items), launches]


def _summed(family: GaugeMetricFamily) -> GaugeMetricFamily:
    """One sample per label set (a facility's jobs in several states give several rows per outcome)."""
    totals: dict[tuple, float] = {}
    for sample in family.samples:
        key = tuple(sorted(sample.labels.items()))
        totals[key] = totals.get(key, 0) + sample.value
    summed = GaugeMetricFamily(family.name, family.documentation, labels=["facility", "outcome"])
    for key, value in totals.items():
        labels = dict(key)
        summed.add_metric([labels["facility"], labels["outcome"]], value)
    return summed


def exposition(store: Store) -> bytes:
    """The text a scrape gets: this process's (or, in multiprocess mode, every process's) metrics and
    the store's figures."""
    if prometheus_multiproc_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    figures = CollectorRegistry()
    figures.register(StoreCollector(store))
    return generate_latest(registry) + generate_latest(figures)


def prune_dead_processes(folder: str | None = None) -> int:
    """Remove the multiprocess files of processes that are gone (a restart's old workers); returns how many."""
    folder = folder or prometheus_multiproc_dir()
    removed = 0
    for path in Path(folder).glob("*.db") if folder else ():
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), folder)
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class MetricsMiddleware:
    """Times every request under its route template, and answers ``GET /metrics`` to the networks and
    the bearer token the settings allow (403 to anyone else)."""

    def __init__(self, app: ASGIApp, store: Store, route_of: Callable[[str, str], str],
                 networks: tuple, token: str = ""):
        self.app = app
        self.store = store
        self.route_of = _remembered(route_of)
        self.networks = networks
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("path") == PATH and scope.get("method") in ("GET", "HEAD"):
            await self._scrape(scope, send)
            return
        started, status = time.perf_counter(), [500]

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            REQUEST_SECONDS.labels(scope.get("method", ""), self.route_of(scope.get("method", ""), scope.get("path", "")),
                                   str(status[0])).observe(time.perf_counter() - started)

    async def _scrape(self, scope: Scope, send: Send) -> None:
        if not self._allowed(scope):
            from broker.api.serving import problem

            await problem(send, 403, "forbidden", "Metrics are not public",
                          "/metrics answers the networks in PANBROKER_METRICS_NETWORKS, or a request with "
                          "Authorization: Bearer <PANBROKER_METRICS_TOKEN>")
            return
        body = await to_thread.run_sync(exposition, self.store)
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", CONTENT_TYPE_LATEST.encode()), (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": body if scope["method"] == "GET" else b""})

    def _allowed(self, scope: Scope) -> bool:
        headers = dict(scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        if self.token and authorization[:7].lower() == "bearer " and hmac.compare_digest(
                authorization[7:].strip().encode(), self.token.encode()):
            return True
        try:
            address = ipaddress.ip_address((scope.get("client") or ("", 0))[0])
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def _remembered(route_of: Callable[[str, str], str], size: int = 4096) -> Callable[[str, str], str]:
    """``route_of`` with its latest answers kept (one route matching per distinct path, mostly)."""
    known: OrderedDict[tuple[str, str], str] = OrderedDict()
    lock = threading.Lock()

    def lookup(method: str, path: str) -> str:
        with lock:
            route = known.get((method, path))
        if route is None:
            route = route_of(method, path)
            with lock:
                known[(method, path)] = route
                if len(known) > size:
                    known.popitem(last=False)
        return route

    return lookup
