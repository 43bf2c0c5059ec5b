"""Launches: a persisted state machine (requested -> routed -> submitted -> starting -> ready | failed |
cancelled | stopped), keyed per person by an Idempotency-Key, advanced by the worker.

Nothing about a launch lives only in memory: after a restart (even kill -9) the worker reads every
unfinished launch and carries on from its state; a start that may have been sent is followed by
reading the service's state (the connector's ``launch`` tolerates "already running").
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from broker.authz import Principal
from broker.errors import BrokerError, Conflict, FieldError, Forbidden, InvalidInput, MalformedRequest, NotFound
from broker.launch.admission import AdmissionBounds, configured_bound
from broker.launch.routing import Candidate, judge, rank
from broker.launch.schemas import LaunchRequestSchema
from broker.registry_kinds import iso, load
from broker.search.model import Dataset
from broker.search.service import SearchService
from broker.secretbox import SecretBox
from connectors import connector_for
from connectors.base import LaunchProgress, LaunchTarget, ServiceConnector
from connectors.errors import UpstreamError
from connectors.http import HttpClient
from registry.models import (
    FINAL_LAUNCH_STATES,
    ComputeService,
    Facility,
    Launch,
    LaunchEvent,
    LaunchMode,
    LaunchState,
    Person,
    as_utc,
    utcnow,
)
from registry.store import Store

log = logging.getLogger(__name__)

DEFAULT_START_TIMEOUT = 300
IN_FLIGHT = (LaunchState.SUBMITTED.value, LaunchState.STARTING.value)
TROUBLE = "trouble reaching the service, trying again: "
FOLLOWERS = 32  # event streams followed at once by one process


class LaunchService:
    def __init__(self, store: Store, http: HttpClient, search: SearchService, box: SecretBox,
                 federation_wide: tuple[str, ...] = ("egi",), auth: Any = None):
        self.store = store
        self.http = http
        self.search = search
        self.box = box
        self.federation_wide = federation_wide
        self.auth = auth  # broker.auth.AuthService: the user's own tokens for services that need them
        self.bounds = AdmissionBounds()
        self.on_settled: Any = None  # broker.notify.Notifier.launch_settled: told once a launch is ready or failed
        self._followers = ThreadPoolExecutor(max_workers=FOLLOWERS, thread_name_prefix="launch-follow")
        self._following: set[str] = set()
        self._polling_only: set[str] = set()  # launches whose service offered no stream to follow
        self._retry_at: dict[str, float] = {}  # launches told to wait (429 Retry-After), by monotonic time
        self._lock = threading.Lock()

    # -- requests -------------------------------------------------------------------------------
    def create(self, actor: Principal, key: str | None, payload: Any) -> tuple[dict[str, Any], bool]:
        """The launch for (caller, key): new (True) or the one a previous identical request made (False)."""
        person_id = _person(actor)
        if not key or len(key) > 200:
            raise MalformedRequest("send an Idempotency-Key header (a UUID) so that a retry never starts a "
                                   "second session", errors=[FieldError("Idempotency-Key", "required, at most 200")])
        values = load(LaunchRequestSchema, payload)
        dataset = self._check_request(values)
        fingerprint = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()
        launch_id = str(uuid.uuid4())
        try:
            with self.store.session() as session:
                session.add(Launch(id=launch_id, person_id=person_id, idempotency_key=key, fingerprint=fingerprint,
                                   request=values, dataset_pid=values["dataset"], state=LaunchState.REQUESTED))
                session.add(LaunchEvent(launch_id=launch_id, state=LaunchState.REQUESTED, message="requested"))
        except IntegrityError:
            return self._replay(person_id, key, fingerprint), False
        self._route(launch_id, dataset)
        return self._refuse_if_unroutable(self.get(actor, launch_id)), True

    def _check_request(self, values: dict[str, Any]) -> Dataset | None:
        """The dataset asked for; an unknown dataset or service is a mistake in the request (422), not a
        launch that failed."""
        errors, dataset = [], None
        if values.get("service_id"):
            with self.store.session() as session:
                if session.get(ComputeService, values["service_id"]) is None:
                    errors.append(FieldError("service_id", f"no service {values['service_id']!r} is registered"))
        try:
            dataset = self.search.get(values["dataset"])
        except NotFound as exc:
            errors.append(FieldError("dataset", exc.detail))
        if errors:
            raise InvalidInput("the request names something that does not exist", errors=errors)
        return dataset

    def _replay(self, person_id: str, key: str, fingerprint: str) -> dict[str, Any]:
        with self.store.session() as session:
            existing = session.scalar(select(Launch).where(Launch.person_id == person_id,
                                                           Launch.idempotency_key == key))
            if existing.fingerprint != fingerprint:
                raise InvalidInput("this Idempotency-Key was used with a different request; use a new key",
                                   errors=[FieldError("Idempotency-Key", "reused with a different body")])
            shown = self._show(existing)
        return self._refuse_if_unroutable(shown)

    @staticmethod
    def _refuse_if_unroutable(launch: dict[str, Any]) -> dict[str, Any]:
        if launch["state"] == LaunchState.FAILED and launch["service_id"] is None:
            raise Conflict(launch["error"], errors=[FieldError(c["service_id"], c["reason"])
                                                    for c in launch["decision"]])
        return launch

    def get(self, actor: Principal, launch_id: str) -> dict[str, Any]:
        with self.store.session() as session:
            return self._show(self._own(session, actor, launch_id))

    def list(self, actor: Principal) -> list[dict[str, Any]]:
        person_id = _person(actor)
        with self.store.session() as session:
            return [self._show(launch) for launch in session.scalars(
                select(Launch).where(Launch.person_id == person_id).order_by(Launch.created_at.desc()))]

    def events(self, actor: Principal, launch_id: str, after: int = 0) -> list[dict[str, Any]]:
        with self.store.session() as session:
            self._own(session, actor, launch_id)
            return [{"id": e.id, "at": iso(e.at), "state": e.state, "message": e.message}
                    for e in session.scalars(select(LaunchEvent).where(LaunchEvent.launch_id == launch_id,
                                                                        LaunchEvent.id > after)
                                             .order_by(LaunchEvent.id))]

    def cancel(self, actor: Principal, launch_id: str) -> dict[str, Any]:
        """Stop a running session or cancel one that is starting."""
        with self.store.session() as session:
            launch = self._own(session, actor, launch_id)
            state = LaunchState(launch.state)
        if state in (LaunchState.FAILED, LaunchState.CANCELLED, LaunchState.STOPPED):
            return self.get(actor, launch_id)
        final = LaunchState.STOPPED if state == LaunchState.READY else LaunchState.CANCELLED
        target, service = self._target(launch_id)
        message = "nothing to stop at the service (it was opened through its own page)"
        if service is not None and service.launch_mode == LaunchMode.API and state != LaunchState.ROUTED:
            try:
                message = connector_for(service.kind).stop(self.http, target).message
            except UpstreamError as exc:
                raise Conflict(f"the service did not stop the session: {exc.detail}") from exc
        self._move(launch_id, final, message)
        return self.get(actor, launch_id)

    def preview(self, actor: Principal | None, dataset: Dataset, wanted: dict[str, Any]) -> list[dict[str, Any]]:
        """The routing decision a launch of ``dataset`` would get now: every candidate with its reason
        (no launch is recorded). Without a signed-in person, no identity is accepted anywhere."""
        issuers: set[str] = set()
        with self.store.session() as session:
            if actor is not None and actor.subject.startswith("person:"):
                person = session.get(Person, actor.subject.removeprefix("person:"))
                issuers = {i.issuer for i in person.identities} if person else set()
            return [c.as_dict() for c in self._candidates(session, dataset, issuers, wanted)]

    # -- routing ------------------------------------------------------------------------------
    def _route(self, launch_id: str, dataset: Dataset | None = None) -> None:
        """Choose the service; ``dataset`` when the caller already has it (a restart looks it up)."""
        with self.store.session() as session:
            launch = session.get(Launch, launch_id)
            request, person = launch.request, session.get(Person, launch.person_id)
            issuers = {i.issuer for i in person.identities}
        try:
            dataset = dataset or self.search.get(request["dataset"])
        except NotFound as exc:
            self._move(launch_id, LaunchState.FAILED, exc.detail)
            return
        wanted = {**request.get("resources", {}), **{k: request.get(k) for k in ("service_id", "kind", "interface")}}
        with self.store.session() as session:
            candidates = self._candidates(session, dataset, issuers, wanted)
            chosen = rank(candidates, request.get("kind"))
            launch = session.get(Launch, launch_id)
            launch.decision = [c.as_dict() for c in candidates]
            launch.facility_id = dataset.facility
            if chosen is None:
                launch.error = (f"no service fits this dataset of {dataset.facility}: "
                                + "; ".join(f"{c.service_id}: {c.reason}" for c in candidates) if candidates else
                                f"{dataset.facility} has no compute service registered")
                new_state, message = LaunchState.FAILED, launch.error
            else:
                service = session.get(ComputeService, chosen.service_id)
                facility = session.get(Facility, service.facility_id)
                identity = next(i for i in person.identities if i.issuer in (facility.accepted_issuers or []))
                launch.service_id, launch.facility_id = service.id, service.facility_id
                launch.username = identity.subject.lower()  # JupyterHub lower-cases user names
                launch.server_name = "pb-" + hashlib.sha256(dataset.pid.encode()).hexdigest()[:12]
                new_state, message = LaunchState.ROUTED, f"routed to {service.title} ({chosen.reason})"
        self._move(launch_id, new_state, message)

    def _candidates(self, session, dataset: Dataset, issuers: set[str], wanted: dict) -> list[Candidate]:  # noqa: ANN001
        home = session.get(Facility, dataset.facility)
        services = list(home.services) if home else []
        found = [judge(s, home, dataset, issuers, wanted, home=True) for s in sorted(services, key=lambda s: s.id)]
        if dataset.is_public and not any(c.fits for c in found):
            for facility_id in self.federation_wide:
                facility = session.get(Facility, facility_id)
                if facility is not None and facility is not home:
                    found += [judge(s, facility, dataset, issuers, wanted, home=False)
                              for s in sorted(facility.services, key=lambda s: s.id)]
        return found

    # -- the worker's part ---------------------------------------------------------------------
    def advance(self) -> int:
        """Move every unfinished launch one step, oldest first; returns how many were looked at.

        Admission control: at most ``max_concurrent_spawns`` (connector config, default 4) starts are in
        flight per API-mode service; the others wait their turn and are told their queue position."""
        with self.store.session() as session:
            pending = session.execute(select(Launch.id, Launch.state, Launch.service_id).where(Launch.state.not_in(
                [s.value for s in FINAL_LAUNCH_STATES])).order_by(Launch.created_at, Launch.id)).all()
            bounds = {s.id: self.bounds.bound(s.id, configured_bound(s))
                      for s in session.scalars(select(ComputeService).where(
                          ComputeService.launch_mode == LaunchMode.API))}
        in_flight: dict[str, int] = {}
        for _, state, service_id in pending:
            if state in IN_FLIGHT:
                in_flight[service_id] = in_flight.get(service_id, 0) + 1
        queued: dict[str, int] = {}
        for launch_id, state, service_id in pending:
            if state == LaunchState.ROUTED and service_id in bounds:
                if in_flight.get(service_id, 0) >= bounds[service_id]:
                    queued[service_id] = queued.get(service_id, 0) + 1
                    self._queue_note(launch_id, queued[service_id])
                    continue
                in_flight[service_id] = in_flight.get(service_id, 0) + 1
            try:
                self._step(launch_id)
            except UpstreamError as exc:
                self._note(launch_id, f"{TROUBLE}{exc.detail}")
            except BrokerError as exc:  # e.g. the user's token cannot be had: nothing will change by retrying
                self._move(launch_id, LaunchState.FAILED, exc.detail)
        return len(pending)

    def _queue_note(self, launch_id: str, position: int) -> None:
        """Tell the user their place in the queue, once per change of place."""
        message = f"queued: {position} ahead of you" if position > 1 else "queued: next to start"
        with self.store.session() as session:
            last = session.scalar(select(LaunchEvent.message).where(LaunchEvent.launch_id == launch_id)
                                  .order_by(LaunchEvent.id.desc()).limit(1))
            if last != message:
                session.add(LaunchEvent(launch_id=launch_id, state=LaunchState.ROUTED.value, message=message))

    def _step(self, launch_id: str) -> None:
        with self.store.session() as session:
            launch = session.get(Launch, launch_id)
            state = LaunchState(launch.state)
            deadline = as_utc(launch.deadline_at) if launch.deadline_at else None
        if state == LaunchState.REQUESTED:
            self._route(launch_id)
            return
        target, service = self._target(launch_id)
        connector = connector_for(service.kind)
        if state == LaunchState.ROUTED and service.launch_mode == LaunchMode.DEEPLINK:
            url = connector.deep_link(target)
            if url is None:
                self._move(launch_id, LaunchState.FAILED, f"{service.title} has no launch page configured")
            else:
                self._move(launch_id, LaunchState.READY, f"open {service.title}'s own launch page", url=url)
            return
        if deadline is not None and utcnow() > deadline:
            last = self._last_trouble(launch_id)
            self._move(launch_id, LaunchState.FAILED, f"{service.title} did not start the session in time "
                       f"(start timeout)" + (f"; last trouble: {last}" if last else ""))
            try:  # recorded first: a stream that answers the stop with "ready" must not revive the launch
                connector.stop(self.http, target)
            except UpstreamError as exc:
                self._note(launch_id, f"the service did not stop the late session: {exc.detail}")
            return
        if state == LaunchState.STARTING and self._follow_if_possible(launch_id, connector, target, deadline):
            return
        if state == LaunchState.ROUTED:
            timeout = int(service.connector_config.get("start_timeout_seconds", DEFAULT_START_TIMEOUT))
            self._move(launch_id, LaunchState.SUBMITTED, f"asking {service.title} to start a session",
                       deadline=utcnow() + timedelta(seconds=timeout))
            progress = connector.launch(self.http, target)
        elif state == LaunchState.SUBMITTED:
            if time.monotonic() < self._retry_at.get(launch_id, 0.0):
                return
            progress = connector.launch(self.http, target)  # tolerates "already running": never a second one
        else:
            progress = connector.poll(self.http, target)
        if progress.retry_after:  # the service is busy (429): wait as long as it asks, and let fewer in
            self.bounds.observe(service.id, configured_bound(service), strained=True)
            self._retry_at[launch_id] = time.monotonic() + progress.retry_after
            # nothing started at the service: the start timeout counts from the next attempt
            timeout = int(service.connector_config.get("start_timeout_seconds", DEFAULT_START_TIMEOUT))
            self._move(launch_id, LaunchState.SUBMITTED, f"{progress.message} in {progress.retry_after:g} s",
                       deadline=utcnow() + timedelta(seconds=timeout + progress.retry_after))
            return
        if progress.state != state.value or progress.url:
            self._move(launch_id, LaunchState(progress.state), progress.message, url=progress.url,
                       secret=progress.secret)

    def _follow_if_possible(self, launch_id: str, connector: ServiceConnector, target: LaunchTarget,
                            deadline: datetime | None) -> bool:
        """Hand a starting launch to a follower thread that reads the service's event stream; False when
        the launch is to be polled (the service has no stream, or it failed for this launch)."""
        if type(connector).follow is ServiceConnector.follow or launch_id in self._polling_only:
            return False
        with self._lock:
            if launch_id in self._following:
                return True
            self._following.add(launch_id)
        remaining = (deadline - utcnow()).total_seconds() if deadline else DEFAULT_START_TIMEOUT
        self._followers.submit(self._follow, launch_id, connector, target, time.monotonic() + max(1.0, remaining))
        return True

    def _follow(self, launch_id: str, connector: ServiceConnector, target: LaunchTarget, until: float) -> None:
        try:
            progress = connector.follow(self.http, target, lambda message: self._note(launch_id, message), until)
            if progress is None:
                self._polling_only.add(launch_id)
            elif progress.state != LaunchState.STARTING.value:
                self._move(launch_id, LaunchState(progress.state), progress.message, url=progress.url,
                           secret=progress.secret)
        except Exception:  # noqa: BLE001 - a follower must never die silently; polling takes over
            log.exception("following launch %s failed; polling it instead", launch_id)
            self._polling_only.add(launch_id)
        finally:
            with self._lock:
                self._following.discard(launch_id)

    def _last_trouble(self, launch_id: str) -> str | None:
        with self.store.session() as session:
            message = session.scalar(select(LaunchEvent.message).where(
                LaunchEvent.launch_id == launch_id, LaunchEvent.message.startswith(TROUBLE))
                .order_by(LaunchEvent.id.desc()).limit(1))
        return message.removeprefix(TROUBLE) if message else None

    def _target(self, launch_id: str) -> tuple[LaunchTarget, ComputeService | None]:
        with self.store.session() as session:
            launch = session.get(Launch, launch_id)
            service = session.get(ComputeService, launch.service_id) if launch.service_id else None
            if service is None:
                return LaunchTarget("", {}, None, None, "", {}), None
            request = launch.request
        try:
            dataset = self.search.get(launch.dataset_pid)
        except NotFound:
            dataset = Dataset(pid=launch.dataset_pid, facility=launch.facility_id or "", title=launch.dataset_pid)
        proposals = tuple(d.pid for d in dataset.documents if (d.type or "proposal") == "proposal")
        dois = tuple(dict.fromkeys([*( [dataset.doi] if dataset.doi else []), *(d.doi for d in dataset.documents if d.doi)]))
        resources = request.get("resources", {})
        options = {"dataset_pid": dataset.pid, "doi": ",".join(dois), "proposal": ",".join(proposals),
                   "partition": resources.get("partition"), "profile": resources.get("profile"),
                   "nprocs": resources.get("cpus"), "memory": f"{resources['memory_gb']:g}G"
                   if resources.get("memory_gb") else None, "gpu": 1 if resources.get("gpu") else None,
                   "interface": request.get("interface")}
        credential = self.box.decrypt(service.credential_encrypted) if service.credential_encrypted else None
        config = dict(service.connector_config or {})
        user_token = None
        if service.launch_mode == LaunchMode.API and config.get("user_token_issuer") and self.auth is not None:
            user_token = self.auth.downstream_token(launch.person_id, config["user_token_issuer"],
                                                    config.get("token_exchange_audience"))
        return LaunchTarget(service.base_url or "", config, credential, launch.username,
                            launch.server_name or "", {k: v for k, v in options.items() if v not in (None, "")},
                            proposals, dois, dataset.pid, user_token), service

    def _move(self, launch_id: str, state: LaunchState, message: str, *, url: str | None = None,
              deadline: datetime | None = None, secret: str | None = None) -> None:
        """Record a change of state; a finished launch never moves again (a follower and a cancel may race)."""
        with self.store.session() as session:
            launch = session.get(Launch, launch_id, with_for_update=True)
            if LaunchState(launch.state) in FINAL_LAUNCH_STATES and state not in (LaunchState.STOPPED,):
                return
            launch.state, launch.updated_at = state.value, utcnow()
            if url:
                launch.url = url
            if secret:
                launch.url_token_encrypted = self.box.encrypt(secret)
            if deadline:
                launch.deadline_at = deadline
            if state == LaunchState.FAILED:
                launch.error = message
            session.add(LaunchEvent(launch_id=launch_id, state=state.value, message=message))
            if state in FINAL_LAUNCH_STATES:  # what this process kept about the launch is no longer needed
                self._polling_only.discard(launch_id)
                self._retry_at.pop(launch_id, None)
            started = launch.deadline_at is not None and state in (LaunchState.READY, LaunchState.FAILED)
            service = session.get(ComputeService, launch.service_id) if started and launch.service_id else None
            if service is not None and service.launch_mode == LaunchMode.API:
                timeout = int(service.connector_config.get("start_timeout_seconds", DEFAULT_START_TIMEOUT))
                took = (utcnow() - (as_utc(launch.deadline_at) - timedelta(seconds=timeout))).total_seconds()
                self.bounds.observe(service.id, configured_bound(service),
                                    strained=state == LaunchState.FAILED or took > timeout / 2)
        if self.on_settled is not None and state in (LaunchState.READY, LaunchState.FAILED):
            self.on_settled(launch_id, state)

    def _note(self, launch_id: str, message: str) -> None:
        with self.store.session() as session:
            launch = session.get(Launch, launch_id)
            session.add(LaunchEvent(launch_id=launch_id, state=launch.state, message=message))

    @staticmethod
    def _own(session, actor: Principal, launch_id: str) -> Launch:  # noqa: ANN001
        launch = session.get(Launch, launch_id)
        if launch is None or (not actor.admin and actor.subject != f"person:{launch.person_id}"):
            raise NotFound(f"no launch {launch_id!r} of yours")
        return launch

    def _show(self, launch: Launch) -> dict[str, Any]:
        """A launch as its owner sees it: the URL carries the token it needs (Binder's), decrypted here."""
        url = launch.url
        if url and launch.url_token_encrypted:
            url += ("&" if "?" in url else "?") + urlencode({"token": self.box.decrypt(launch.url_token_encrypted)})
        return {"id": launch.id, "state": launch.state, "dataset": launch.dataset_pid, "facility_id": launch.facility_id,
                "service_id": launch.service_id, "url": url, "error": launch.error, "request": launch.request,
                "decision": launch.decision, "created_at": iso(launch.created_at), "updated_at": iso(launch.updated_at)}


def _person(actor: Principal) -> str:
    if not actor.subject.startswith("person:"):
        raise Forbidden("launches are made by people: sign in, or use a personal API token")
    return actor.subject.removeprefix("person:")


__all__ = ["LaunchService", "LaunchProgress"]
