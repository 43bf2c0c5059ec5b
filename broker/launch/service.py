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
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from broker.authz import Principal
from panmodel.errors import BrokerError, Conflict, FieldError, Forbidden, InvalidInput, MalformedRequest, NotFound
from broker.launch.admission import AdmissionBounds, configured_bound
from broker.launch.routing import Candidate, LinkedIdentity, hub_username, judge, rank
from broker.launch.schemas import LaunchRequestSchema
from broker.registry_kinds import iso, load
from panmodel.datasets import Dataset
from broker.search.service import SearchService
from broker.secretbox import SecretBox
from connectors import connector_for
from connectors.base import LaunchProgress, LaunchTarget, RequestRefused
from connectors.capabilities import SessionLauncher
from connectors.errors import UpstreamError
from connectors.http import HttpClient
from panmodel.clock import as_utc, utcnow
from panmodel.states import FINAL_LAUNCH_STATES, LaunchMode, LaunchState
from registry.models import ComputeService, Facility, Launch, LaunchEvent, Person
from registry.store import Store

log = logging.getLogger(__name__)

DEFAULT_START_TIMEOUT = 300
IN_FLIGHT = (LaunchState.SUBMITTED.value, LaunchState.STARTING.value, LaunchState.WAITING.value)
TROUBLE = "trouble reaching the service, trying again: "
STOP_FAILED = "the service did not stop the session: "
FOLLOWERS = 32  # event streams followed at once by one process
STARTERS = 16  # steps (a start may be held by the service for its slow-spawn timeout) run at once
# a hub holds a start's POST for its slow-spawn timeout (configurable up to 300 s): the read timeout of
# starts is above it; the connector bounds each call by the service's own setting
START_READ_SECONDS = 320.0


class LaunchService:
    def __init__(self, store: Store, http: HttpClient, search: SearchService, box: SecretBox,
                 federation_wide: tuple[str, ...] = ("egi",), auth: Any = None):
        self.store = store
        self.http = http
        self.start_http = HttpClient(http.policy, replace(http.limits, read_timeout=START_READ_SECONDS,
                                                          total_timeout=START_READ_SECONDS + 10))
        self.search = search
        self.box = box
        self.federation_wide = federation_wide
        self.auth = auth  # broker.auth.AuthService: the user's own tokens for services that need them
        self.bounds = AdmissionBounds()
        self.on_settled: Any = None  # broker.notify.Notifier.launch_settled: told once a launch is ready or failed
        self._followers = ThreadPoolExecutor(max_workers=FOLLOWERS, thread_name_prefix="launch-follow")
        self._starters = ThreadPoolExecutor(max_workers=STARTERS, thread_name_prefix="launch-step")
        self._following: set[str] = set()
        self._stepping: set[str] = set()  # launches whose step runs now (at most one step per launch)
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

    def by_key(self, actor: Principal, key: str) -> dict[str, Any] | None:
        """The launch this person already made with this Idempotency-Key, if any (a form sent twice)."""
        with self.store.session() as session:
            found = session.scalar(select(Launch).where(Launch.person_id == _person(actor),
                                                        Launch.idempotency_key == key))
            return self._show(found) if found is not None else None

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

    def events(self, actor: Principal, launch_id: str, after: int = 0) -> list[dict[str, Any]]:
        with self.store.session() as session:
            self._own(session, actor, launch_id)
            return [{"id": e.id, "at": iso(e.at), "state": e.state, "message": e.message}
                    for e in session.scalars(select(LaunchEvent).where(LaunchEvent.launch_id == launch_id,
                                                                        LaunchEvent.id > after)
                                             .order_by(LaunchEvent.id))]

    def cancel(self, actor: Principal, launch_id: str) -> dict[str, Any]:
        """Stop a running session or cancel one that is starting. The cancel is recorded before the
        service is asked to stop, and is final: a "ready" the service reports afterwards (JupyterHub
        reports an interrupted spawn so) does not revive the launch. Asking again retries a stop
        that failed."""
        with self.store.session() as session:
            launch = self._own(session, actor, launch_id)
            state = LaunchState(launch.state)
            retry_stop = state in (LaunchState.CANCELLED, LaunchState.STOPPED) and self._stop_failed(session, launch_id)
        if state in (LaunchState.FAILED, LaunchState.CANCELLED, LaunchState.STOPPED) and not retry_stop:
            return self.get(actor, launch_id)
        final = LaunchState.STOPPED if state == LaunchState.READY else LaunchState.CANCELLED
        target, service = self._target(launch_id, translate=False)
        sent = service is not None and service.launch_mode == LaunchMode.API and state != LaunchState.ROUTED
        if not retry_stop:
            self._move(launch_id, final, "cancelled; asking the service to stop the session" if sent else
                       "nothing to stop at the service (it was opened through its own page)"
                       if service is not None and service.launch_mode == LaunchMode.DEEPLINK else "cancelled")
        if sent:
            self._stop(launch_id, target, service)
        return self.get(actor, launch_id)

    def _stop(self, launch_id: str, target: LaunchTarget, service: ComputeService) -> None:
        try:
            self._note(launch_id, connector_for(service.kind).stop(self.http, target).message)
        except UpstreamError as exc:
            self._note(launch_id, f"{STOP_FAILED}{exc.detail}")
            raise Conflict(f"cancelled, but the service did not stop the session yet ({exc.detail}); "
                           "cancel again to retry") from exc

    @staticmethod
    def _stop_failed(session, launch_id: str) -> bool:  # noqa: ANN001
        last = session.scalar(select(LaunchEvent.message).where(LaunchEvent.launch_id == launch_id)
                              .order_by(LaunchEvent.id.desc()).limit(1))
        return bool(last and last.startswith(STOP_FAILED))

    def preview(self, actor: Principal | None, dataset: Dataset, wanted: dict[str, Any]) -> list[dict[str, Any]]:
        """The routing decision a launch of ``dataset`` would get now: every candidate with its reason
        (no launch is recorded). Without a signed-in person, no identity is accepted anywhere."""
        identities: tuple[LinkedIdentity, ...] = ()
        with self.store.session() as session:
            if actor is not None and actor.subject.startswith("person:"):
                person = session.get(Person, actor.subject.removeprefix("person:"))
                identities = _identities(person) if person else ()
            return [c.as_dict() for c in self._candidates(session, dataset, identities, wanted)]

    # -- routing ------------------------------------------------------------------------------
    def _route(self, launch_id: str, dataset: Dataset | None = None) -> None:
        """Choose the service; ``dataset`` when the caller already has it (a restart looks it up)."""
        with self.store.session() as session:
            launch = session.get(Launch, launch_id)
            request, person = launch.request, session.get(Person, launch.person_id)
            identities = _identities(person)
        try:
            dataset = dataset or self.search.get(request["dataset"])
        except NotFound as exc:
            self._move(launch_id, LaunchState.FAILED, exc.detail)
            return
        wanted = {**request.get("resources", {}), **{k: request.get(k) for k in ("service_id", "kind", "interface")}}
        with self.store.session() as session:
            candidates = self._candidates(session, dataset, identities, wanted)
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
                identity = next(i for i in identities if i.issuer in (facility.accepted_issuers or []))
                launch.service_id, launch.facility_id = service.id, service.facility_id
                # JupyterHub lower-cases user names; a hub may name people by another claim (username_claim)
                launch.username = (hub_username(service, facility, identities)[0]
                                   if connector_for(service.kind).username_from_claims
                                   else None) or identity.subject.lower()
                launch.server_name = "pb-" + hashlib.sha256(dataset.pid.encode()).hexdigest()[:12]
                new_state, message = LaunchState.ROUTED, f"routed to {service.title} ({chosen.reason})"
        self._move(launch_id, new_state, message)

    def _candidates(self, session, dataset: Dataset, identities: tuple[LinkedIdentity, ...],  # noqa: ANN001
                    wanted: dict) -> list[Candidate]:
        issuers = {i.issuer for i in identities}
        home = session.get(Facility, dataset.facility)
        services = list(home.services) if home else []
        found = [judge(s, home, dataset, issuers, wanted, home=True, identities=identities)
                 for s in sorted(services, key=lambda s: s.id)]
        if dataset.is_public and not any(c.fits for c in found):
            for facility in self._federation_wide(session):
                if facility is not home:
                    found += [judge(s, facility, dataset, issuers, wanted, home=False, identities=identities)
                              for s in sorted(facility.services, key=lambda s: s.id)]
        return found

    def _federation_wide(self, session) -> list[Facility]:  # noqa: ANN001
        """The facilities whose services may analyse any facility's public data: marked so in the registry,
        or named in the ``federation_wide_facilities`` setting."""
        marked = session.scalars(select(Facility).where(Facility.federation_wide.is_(True)).order_by(Facility.id))
        named = [f for f in (session.get(Facility, i) for i in self.federation_wide) if f is not None]
        return list({f.id: f for f in (*marked, *named)}.values())

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
            with self._lock:
                if launch_id in self._stepping:
                    continue
                self._stepping.add(launch_id)
            self._starters.submit(self._step_safely, launch_id)
        return len(pending)

    def _step_safely(self, launch_id: str) -> None:
        """One step of one launch, on a starter thread: a start the service holds for its slow-spawn
        timeout delays only this launch."""
        try:
            self._step(launch_id)
        except UpstreamError as exc:
            self._note(launch_id, f"{TROUBLE}{exc.detail}")
        except RequestRefused as exc:  # the service cannot take the request as asked: this launch alone fails
            self._move(launch_id, LaunchState.FAILED, str(exc))
        except BrokerError as exc:  # e.g. the user's token cannot be had: nothing will change by retrying
            self._move(launch_id, LaunchState.FAILED, exc.detail)
        except Exception:  # noqa: BLE001 - a starter must never die silently; the next round tries again
            log.exception("a step of launch %s failed", launch_id)
        finally:
            with self._lock:
                self._stepping.discard(launch_id)

    def wait_for_steps(self, timeout: float = 60) -> None:
        """Until no step is running (tests and benchmarks that advance by hand)."""
        deadline = time.monotonic() + timeout
        while self._stepping and time.monotonic() < deadline:
            time.sleep(0.02)

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
            queued = "; the batch job was still waiting in the facility's queue" if state == LaunchState.WAITING else ""
            self._move(launch_id, LaunchState.FAILED, f"{service.title} did not start the session in time "
                       f"(start timeout){queued}" + (f"; last trouble: {last}" if last else ""), overloaded=True)
            try:  # recorded first: a stream that answers the stop with "ready" must not revive the launch
                connector.stop(self.http, target)
            except UpstreamError as exc:
                self._note(launch_id, f"the service did not stop the late session: {exc.detail}")
            return
        if state in (LaunchState.STARTING, LaunchState.WAITING) and self._follow_if_possible(
                launch_id, connector, target, deadline):
            return
        if state == LaunchState.ROUTED:
            timeout = int(service.connector_config.get("start_timeout_seconds", DEFAULT_START_TIMEOUT))
            if not self._move(launch_id, LaunchState.SUBMITTED, f"asking {service.title} to start a session",
                              deadline=utcnow() + timedelta(seconds=timeout)):
                return  # cancelled meanwhile: nothing is sent
            progress = connector.start(self.start_http, target)
        elif state == LaunchState.SUBMITTED:
            if time.monotonic() < self._retry_at.get(launch_id, 0.0):
                return
            progress = connector.start(self.start_http, target)  # tolerates "already running": never a second one
        else:
            progress = connector.poll(self.http, target)
        if progress.overloaded and not progress.retry_after:
            self.bounds.observe(service.id, configured_bound(service), strained=True)
        if progress.retry_after:  # the service is busy (429): wait as long as it asks, and let fewer in
            self.bounds.observe(service.id, configured_bound(service), strained=True)
            self._retry_at[launch_id] = time.monotonic() + progress.retry_after
            # nothing started at the service: the start timeout counts from the next attempt
            timeout = int(service.connector_config.get("start_timeout_seconds", DEFAULT_START_TIMEOUT))
            self._move(launch_id, LaunchState.SUBMITTED, f"{progress.message} in {progress.retry_after:g} s",
                       deadline=utcnow() + timedelta(seconds=timeout + progress.retry_after))
            return
        if progress.state != state.value or progress.url:
            self._settle(launch_id, progress, target, service)

    def _settle(self, launch_id: str, progress: LaunchProgress, target: LaunchTarget, service: ComputeService) -> None:
        """Record what the service reported; a session that started or came up after the launch was
        cancelled is stopped (the cancel wins)."""
        moved = self._move(launch_id, LaunchState(progress.state), progress.message, url=progress.url,
                           secret=progress.secret)
        alive = (LaunchState.READY.value, LaunchState.STARTING.value, LaunchState.WAITING.value)
        if not moved and progress.state in alive and self._state(launch_id) == LaunchState.CANCELLED:
            # a start that was on its way when the cancel was recorded: stop what it started
            self._note(launch_id, f"the service reported the session {progress.state} after the cancel: stopping it")
            try:
                self._stop(launch_id, target, service)
            except Conflict:
                pass  # noted; cancelling again retries

    def _state(self, launch_id: str) -> LaunchState:
        with self.store.session() as session:
            return LaunchState(session.get(Launch, launch_id).state)

    def _follow_if_possible(self, launch_id: str, connector: SessionLauncher, target: LaunchTarget,
                            deadline: datetime | None) -> bool:
        """Hand a starting launch to a follower thread that reads the service's event stream; False when
        the launch is to be polled (the service has no stream, or it failed for this launch)."""
        if type(connector).follow is SessionLauncher.follow or launch_id in self._polling_only:
            return False
        with self._lock:
            if launch_id in self._following:
                return True
            self._following.add(launch_id)
        remaining = (deadline - utcnow()).total_seconds() if deadline else DEFAULT_START_TIMEOUT
        service = self._target(launch_id, translate=False)[1]
        self._followers.submit(self._follow, launch_id, connector, target, service,
                               time.monotonic() + max(1.0, remaining))
        return True

    def _follow(self, launch_id: str, connector: SessionLauncher, target: LaunchTarget, service: ComputeService,
                until: float) -> None:
        def report(message: str, state: str | None = None) -> None:
            if state and state != self._state(launch_id).value:
                self._move(launch_id, LaunchState(state), message)
            else:
                self._note(launch_id, message)

        try:
            progress = connector.follow(self.http, target, report, until)
            if progress is None:
                self._polling_only.add(launch_id)
            elif progress.state not in (LaunchState.STARTING.value, LaunchState.WAITING.value):
                self._settle(launch_id, progress, target, service)
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

    def _target(self, launch_id: str, translate: bool = True) -> tuple[LaunchTarget, ComputeService | None]:
        """What the connector needs for this launch; with ``translate``, the request in the service's
        vocabulary (raises ``RequestRefused`` when the service cannot take it)."""
        with self.store.session() as session:
            launch = session.get(Launch, launch_id)
            service = session.get(ComputeService, launch.service_id) if launch.service_id else None
            if service is None:
                return LaunchTarget("", {}, None, None, "", {}), None
            request = launch.request
            chosen = next((c for c in launch.decision or [] if c.get("service_id") == service.id and c.get("fits")), {})
        try:
            dataset = self.search.get(launch.dataset_pid)
        except NotFound:
            dataset = Dataset(pid=launch.dataset_pid, facility=launch.facility_id or "", title=launch.dataset_pid)
        proposals = tuple(d.pid for d in dataset.documents if (d.type or "proposal") == "proposal")
        dois = tuple(dict.fromkeys([*( [dataset.doi] if dataset.doi else []), *(d.doi for d in dataset.documents if d.doi)]))
        resources = dict(request.get("resources", {}))
        partitions = {p["id"]: p for p in (service.capabilities or {}).get("partitions", [])}
        if chosen.get("partition"):
            resources["partition"] = chosen["partition"]
        facts = {"pid": dataset.pid, "facility": dataset.facility, "proposal": proposals[0] if proposals else "",
                 "instrument": dataset.instrument or "", "doi": dois[0] if dois else "",
                 "year": str(dataset.creation_date.year) if dataset.creation_date else "",
                 "landing_url": f"https://doi.org/{dois[0]}" if dois else ""}
        credential = self.box.decrypt(service.credential_encrypted) if service.credential_encrypted else None
        config = dict(service.connector_config or {})
        user_token = None
        if service.launch_mode == LaunchMode.API and config.get("user_token_issuer") and self.auth is not None:
            user_token = self.auth.downstream_token(launch.person_id, config["user_token_issuer"],
                                                    config.get("token_exchange_audience"))
        target = LaunchTarget(service.base_url or "", config, credential, launch.username, launch.server_name or "", {},
                              proposals, dois, dataset.pid, user_token, resources=resources,
                              interface=request.get("interface"), partition=partitions.get(resources.get("partition")),
                              facts={k: v for k, v in facts.items() if v})
        if translate:
            target = replace(target, user_options=connector_for(service.kind).user_options(target))
        return target, service

    def _move(self, launch_id: str, state: LaunchState, message: str, *, url: str | None = None,
              deadline: datetime | None = None, secret: str | None = None, overloaded: bool = False) -> bool:
        """Record a change of state; False when refused: a finished launch never moves again (a follower
        and a cancel may race), except a ready one to stopped. Only overload (``overloaded``: a start
        timeout) and slow starts lower the service's admission bound; a refused request does not."""
        with self.store.session() as session:
            launch = session.get(Launch, launch_id, with_for_update=True)
            current = LaunchState(launch.state)
            if current in FINAL_LAUNCH_STATES and not (current == LaunchState.READY and state == LaunchState.STOPPED):
                return False
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
            started = launch.deadline_at is not None and (state == LaunchState.READY
                                                           or (state == LaunchState.FAILED and overloaded))
            service = session.get(ComputeService, launch.service_id) if started and launch.service_id else None
            if service is not None and service.launch_mode == LaunchMode.API:
                timeout = int(service.connector_config.get("start_timeout_seconds", DEFAULT_START_TIMEOUT))
                took = (utcnow() - (as_utc(launch.deadline_at) - timedelta(seconds=timeout))).total_seconds()
                self.bounds.observe(service.id, configured_bound(service),
                                    strained=overloaded or took > timeout / 2)
        if self.on_settled is not None and state in (LaunchState.READY, LaunchState.FAILED):
            self.on_settled(launch_id, state)
        return True

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
                "decision": launch.decision, "created_at": iso(launch.created_at), "updated_at": iso(launch.updated_at),
                "progress": self._last_message(launch.id)}

    def _last_message(self, launch_id: str) -> str | None:
        """The latest word about the launch (its place in the queue, the service's last message)."""
        with self.store.session() as session:
            return session.scalar(select(LaunchEvent.message).where(LaunchEvent.launch_id == launch_id)
                                  .order_by(LaunchEvent.id.desc()).limit(1))


def _person(actor: Principal) -> str:
    if not actor.subject.startswith("person:"):
        raise Forbidden("launches are made by people: sign in, or use a personal API token")
    return actor.subject.removeprefix("person:")


__all__ = ["LaunchService", "LaunchProgress"]


def _identities(person: Person) -> tuple[LinkedIdentity, ...]:
    return tuple(LinkedIdentity(i.issuer, i.subject, dict(i.claims or {})) for i in person.identities)
