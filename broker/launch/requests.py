"""Launch requests: what the API and the pages ask of launches — create (keyed per person by an
Idempotency-Key, routed at once), read, list, follow the events of, and cancel."""
from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from broker.authz import Principal
from panmodel.errors import Conflict, FieldError, InvalidInput, MalformedRequest, NotFound
from broker.launch.placement import Placement, wanted_of
from broker.launch.records import CLOSED, LaunchEventView, LaunchRecords, LaunchView, person_of
from broker.launch.schemas import LaunchRequestSchema
from broker.launch.targets import LaunchTargets
from broker.registry_kinds import load
from panmodel.datasets import Dataset
from broker.search.service import SearchService
from connectors.http import HttpClient
from panmodel.clock import as_utc
from panmodel.states import LaunchMode, LaunchState
from registry.models import ComputeService, Launch, LaunchEvent
from registry.store import Store


class LaunchRequests:
    def __init__(self, store: Store, http: HttpClient, search: SearchService, records: LaunchRecords,
                 placement: Placement, targets: LaunchTargets):
        self.store = store
        self.http = http
        self.search = search
        self.records = records
        self.placement = placement
        self.targets = targets

    def create(self, actor: Principal, key: str | None, payload: Any) -> tuple[LaunchView, bool]:
        """The launch for (caller, key): new (True) or the one a previous identical request made (False)."""
        person_id = person_of(actor)
        if not key or len(key) > 200:
            raise MalformedRequest("send an Idempotency-Key header (a UUID) so that a retry never starts a "
                                   "second session", errors=[FieldError("Idempotency-Key", "required, at most 200")])
        values = load(LaunchRequestSchema, payload)
        dataset, plan = self._check_request(actor, values)
        fingerprint = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()
        launch_id = str(uuid.uuid4())
        try:
            with self.store.session() as session:
                session.add(Launch(id=launch_id, person_id=person_id, idempotency_key=key, fingerprint=fingerprint,
                                   request=values, dataset_pid=values.get("dataset") or plan_first(plan, values),
                                   state=LaunchState.REQUESTED))
                session.add(LaunchEvent(launch_id=launch_id, state=LaunchState.REQUESTED, message="requested"))
        except IntegrityError:
            return self._replay(person_id, key, fingerprint), False
        if plan is not None:
            self.placement.baskets.route(launch_id, plan)
        else:
            self.placement.route(launch_id, dataset)
        return _refuse_if_unroutable(self.get(actor, launch_id)), True

    def _check_request(self, actor: Principal, values: dict[str, Any]) -> tuple[Any, Any]:
        """The dataset asked for, or the plan of the basket asked for (``broker.basket.BasketPlan``); an
        unknown dataset or service, or a basket naming one dataset twice, is a mistake in the request (422),
        not a launch that failed."""
        errors, dataset, plan = [], None, None
        if values.get("service_id"):
            with self.store.session() as session:
                if session.get(ComputeService, values["service_id"]) is None:
                    errors.append(FieldError("service_id", f"no service {values['service_id']!r} is registered"))
        try:
            if "basket" in values:
                plan = self._basket_plan(actor, values)
            else:
                dataset = self.search.get(values["dataset"])
        except NotFound as exc:
            errors.append(FieldError("dataset", exc.detail))
        except InvalidInput as exc:
            errors.extend(exc.errors)
        if errors:
            raise InvalidInput("the request names something that does not exist, or one dataset twice",
                               errors=errors)
        return dataset, plan

    def _basket_plan(self, actor: Principal, values: dict[str, Any]) -> Any:
        if self.placement.baskets is None:
            raise InvalidInput.from_fields([FieldError("basket", "this broker launches single datasets only")])
        return self.placement.baskets.plan(actor, values["basket"], wanted_of(values))

    def _replay(self, person_id: str, key: str, fingerprint: str) -> LaunchView:
        with self.store.session() as session:
            existing = session.scalar(select(Launch).where(Launch.person_id == person_id,
                                                           Launch.idempotency_key == key))
            if existing.fingerprint != fingerprint:
                raise InvalidInput("this Idempotency-Key was used with a different request; use a new key",
                                   errors=[FieldError("Idempotency-Key", "reused with a different body")])
            shown = self.records.view(existing)
        return _refuse_if_unroutable(shown)

    def get(self, actor: Principal, launch_id: str) -> LaunchView:
        with self.store.session() as session:
            return self.records.view(self.records.own(session, actor, launch_id))

    def list(self, actor: Principal) -> list[LaunchView]:
        person_id = person_of(actor)
        with self.store.session() as session:
            return [self.records.view(launch) for launch in session.scalars(
                select(Launch).where(Launch.person_id == person_id).order_by(Launch.created_at.desc()))]

    def by_key(self, actor: Principal, key: str) -> LaunchView | None:
        """The launch this person already made with this Idempotency-Key, if any (a form sent twice)."""
        with self.store.session() as session:
            found = session.scalar(select(Launch).where(Launch.person_id == person_of(actor),
                                                        Launch.idempotency_key == key))
            return self.records.view(found) if found is not None else None

    def events(self, actor: Principal, launch_id: str, after: int = 0) -> list[LaunchEventView]:
        with self.store.session() as session:
            self.records.own(session, actor, launch_id)
            return self.records.events(session, launch_id, after)

    def typical_start_seconds(self, service_id: str, last: int = 20) -> float | None:
        """The median time from request to ready of the service's last ``last`` launches that got
        ready (anyone's), or None before any did."""
        with self.store.session() as session:
            rows = session.execute(
                select(Launch.created_at, LaunchEvent.at).join(LaunchEvent, LaunchEvent.launch_id == Launch.id)
                .where(Launch.service_id == service_id, LaunchEvent.state == LaunchState.READY.value)
                .order_by(LaunchEvent.id.desc()).limit(last)).all()
        spans = sorted((as_utc(ready) - as_utc(created)).total_seconds() for created, ready in rows)
        return spans[len(spans) // 2] if spans else None

    def preview(self, actor: Principal | None, dataset: Dataset, wanted: dict[str, Any]) -> list[dict[str, Any]]:
        return self.placement.preview(actor, dataset, wanted)

    def cancel(self, actor: Principal, launch_id: str) -> LaunchView:
        """Stop a running session or cancel one that is starting. The cancel is recorded before the
        service is asked to stop, and is final: a "ready" the service reports afterwards (JupyterHub
        reports an interrupted spawn so) does not revive the launch. Asking again retries a stop
        that failed."""
        launch = self.get(actor, launch_id)
        retry_stop = launch.state in (LaunchState.CANCELLED, LaunchState.STOPPED) and self.records.stop_failed(launch_id)
        if launch.state in CLOSED and not retry_stop:
            return launch
        target, service = self.targets.build(launch_id, translate=False)
        sent = service is not None and service.launch_mode == LaunchMode.API and launch.state != LaunchState.ROUTED
        if not retry_stop:
            final = LaunchState.STOPPED if launch.state == LaunchState.READY else LaunchState.CANCELLED
            self.records.move(launch_id, final, "cancelled; asking the service to stop the session" if sent else
                              "nothing to stop at the service (it was opened through its own page)"
                              if service is not None and service.launch_mode == LaunchMode.DEEPLINK else "cancelled")
        if sent:
            self.targets.stop(self.http, launch_id, target, service)
        return self.get(actor, launch_id)


def plan_first(plan: Any, values: dict[str, Any]) -> str:
    """The dataset a basket launch is listed under: the first the session gets."""
    return plan.entries[0].pid if plan.entries else values["basket"][0]


def _refuse_if_unroutable(launch: LaunchView) -> LaunchView:
    if launch.state == LaunchState.FAILED and launch.service_id is None:
        raise Conflict(launch.error, errors=[FieldError(c["service_id"], c["reason"]) for c in launch.decision])
    return launch


__all__ = ["LaunchRequests"]
