"""Health checks of every registered endpoint: probe concurrently with timeouts, record the result on
the endpoint and in a bounded history."""
from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update

from broker.authz import Principal
from panmodel.errors import NotFound
from broker.registry_kinds import iso
from connectors import connector_for
from connectors.base import ProbeResult
from connectors.http import HttpClient
from panmodel.clock import utcnow
from panmodel.states import HealthStatus, TargetType
from registry.models import ComputeService, HealthCheck, SearchEndpoint
from registry.store import Store

log = logging.getLogger(__name__)
MODELS = {TargetType.SERVICE: ComputeService, TargetType.SEARCH_ENDPOINT: SearchEndpoint}


@dataclass(frozen=True, eq=False)  # hashed by identity: one probe per target
class Target:
    target_type: TargetType
    id: str
    facility_id: str
    kind: str
    base_url: str | None
    config: dict[str, Any]


@dataclass(frozen=True)
class CheckOutcome:
    target_type: str
    id: str
    facility_id: str
    kind: str
    status: str
    latency_ms: float | None
    error: str | None
    checked_at: str


class HealthService:
    def __init__(self, store: Store, client: HttpClient, *, timeout: float, concurrency: int, history: int):
        self.store = store
        self.client = client
        self.timeout = timeout
        self.concurrency = concurrency
        self.history_size = history

    def targets(self) -> list[Target]:
        with self.store.session() as session:
            found = []
            for target_type, model in MODELS.items():
                for row in session.scalars(select(model).order_by(model.id)):
                    found.append(Target(target_type, row.id, row.facility_id, row.kind, row.base_url,
                                        dict(row.connector_config or {})))
            return found

    def check_all_as(self, actor: Principal) -> list[CheckOutcome]:
        """A health round asked for by a caller (not the scheduler): admins only."""
        actor.require_admin()
        return self.check_all()

    def check_all(self) -> list[CheckOutcome]:
        """Probe every endpoint once, at most ``concurrency`` at a time, and record the results.
        A probe that outlives its deadline is recorded as down; no facility can stall the round."""
        targets = self.targets()
        if not targets:
            return []
        results: dict[Target, ProbeResult] = {}
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(targets)), thread_name_prefix="health")
        try:
            futures = {pool.submit(self._probe, t): t for t in targets}
            rounds = -(-len(targets) // self.concurrency)
            done, _ = wait(futures, timeout=rounds * (self.timeout + 2) + 5)
            for future, target in futures.items():
                if future in done:
                    results[target] = future.result()
                else:
                    results[target] = ProbeResult(HealthStatus.DOWN, None, f"no answer within {self.timeout:g} s")
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        checked_at = utcnow()
        self._record(results, checked_at)
        return [CheckOutcome(t.target_type.value, t.id, t.facility_id, t.kind, r.status.value, r.latency_ms,
                             r.error, checked_at.isoformat()) for t, r in results.items()]

    def _probe(self, target: Target) -> ProbeResult:
        try:
            return connector_for(target.kind).probe(self.client, target.base_url, target.config, self.timeout)
        except KeyError:
            return ProbeResult(HealthStatus.UNKNOWN, error=f"no connector installed for kind {target.kind!r}")
        except Exception as exc:  # a connector bug must not abort the whole round
            log.exception("health probe of %s %s failed", target.target_type, target.id)
            return ProbeResult(HealthStatus.DOWN, error=f"probe failed: {type(exc).__name__}")

    def _record(self, results: dict[Target, ProbeResult], checked_at: datetime) -> None:
        with self.store.session() as session:
            for target, result in results.items():
                model = MODELS[target.target_type]
                # a Core UPDATE: health is not an operator's edit, so it must not bump the version
                session.execute(
                    update(model).where(model.id == target.id).values(
                        health_status=result.status.value, health_latency_ms=result.latency_ms,
                        health_checked_at=checked_at, health_error=result.error)
                    .execution_options(synchronize_session=False))
                session.add(HealthCheck(target_type=target.target_type.value, target_id=target.id,
                                        status=result.status.value, latency_ms=result.latency_ms,
                                        checked_at=checked_at, error=result.error))
            session.flush()
            for target in results:
                keep = (select(HealthCheck.id)
                        .where(HealthCheck.target_type == target.target_type.value, HealthCheck.target_id == target.id)
                        .order_by(HealthCheck.checked_at.desc(), HealthCheck.id.desc()).limit(self.history_size))
                session.execute(delete(HealthCheck).where(
                    HealthCheck.target_type == target.target_type.value, HealthCheck.target_id == target.id,
                    HealthCheck.id.not_in(keep.scalar_subquery())))
        counts = Counter(r.status.value for r in results.values())
        log.info("health round: %s", ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))

    def history(self, target_type: TargetType, target_id: str, limit: int = 50) -> list[dict[str, Any]]:
        with self.store.session() as session:
            if session.get(MODELS[target_type], target_id) is None:
                raise NotFound(f"no {target_type.value} {target_id!r}")
        return self.histories(target_type, [target_id], limit)[target_id]

    def histories(self, target_type: TargetType, target_ids: list[str], limit: int = 50) -> dict[str, list[dict[str, Any]]]:
        """The newest checks of each target, newest first, in one query (the catalogue draws a chart per
        service); rows are few: the health round keeps ``history`` per target."""
        out: dict[str, list[dict[str, Any]]] = {target_id: [] for target_id in target_ids}
        with self.store.session() as session:
            rows = session.scalars(
                select(HealthCheck).where(HealthCheck.target_type == target_type.value,
                                          HealthCheck.target_id.in_(target_ids))
                .order_by(HealthCheck.checked_at.desc(), HealthCheck.id.desc()))
            for r in rows:
                if len(out[r.target_id]) < limit:
                    out[r.target_id].append({"status": r.status, "latency_ms": r.latency_ms,
                                             "checked_at": iso(r.checked_at), "error": r.error})
        return out

    def summary(self) -> dict[str, Any]:
        with self.store.session() as session:
            items = []
            for target_type, model in MODELS.items():
                for row in session.scalars(select(model).order_by(model.id)):
                    items.append({"target_type": target_type.value, "id": row.id, "facility_id": row.facility_id,
                                  "kind": row.kind, "status": row.health_status,
                                  "latency_ms": row.health_latency_ms, "checked_at": iso(row.health_checked_at),
                                  "error": row.health_error})
        return {"counts": dict(Counter(i["status"] for i in items)), "items": items}
