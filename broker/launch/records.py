"""Launch records: the persisted state machine (requested -> routed -> submitted -> starting | waiting ->
ready | failed | cancelled | stopped), its events, the views its owner reads, and the lease a worker holds
on a launch it steps or follows.

Nothing about a launch lives only in memory: after a restart (even kill -9) any worker reads every
unfinished launch and carries on from its state.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Callable
from urllib.parse import urlencode

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from broker.authz import Principal
from panmodel.errors import NotFound
from broker.registry_kinds import iso
from broker.secretbox import SecretBox
from panmodel.clock import as_utc, utcnow
from panmodel.states import FINAL_LAUNCH_STATES, LaunchMode, LaunchState
from registry.models import ComputeService, Launch, LaunchEvent
from registry.store import Store

DEFAULT_START_TIMEOUT = 300
TROUBLE = "trouble reaching the service, trying again: "
STOP_FAILED = "the service did not stop the session: "
ALIVE = frozenset({LaunchState.READY, LaunchState.STARTING, LaunchState.WAITING})
CLOSED = frozenset({LaunchState.FAILED, LaunchState.CANCELLED, LaunchState.STOPPED})
ACTIVE = frozenset(LaunchState) - CLOSED
"""Starting or ready: a session of the same dataset at the same service is offered instead of a second one."""


class ReadsAsJson:
    """Fields read by name too (``launch["state"]``), as the JSON the view is served as is read: the
    templates and scripts that read the API's answers read the service's the same way."""

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, default)


@dataclass(frozen=True)
class LaunchView(ReadsAsJson):
    """A launch as its owner sees it (the URL carries the token it needs, decrypted)."""

    id: str
    state: LaunchState
    dataset: str
    facility_id: str | None
    service_id: str | None
    url: str | None
    error: str | None
    request: dict[str, Any]
    decision: list[Any]
    created_at: str | None
    updated_at: str | None
    progress: str | None  # the latest word about it (its place in the queue, the service's last message)
    basket: dict[str, Any] | None = None  # a basket's launch: the manifest its session is handed

    @property
    def final(self) -> bool:
        return self.state in FINAL_LAUNCH_STATES

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "state": self.state.value}


@dataclass(frozen=True)
class LaunchEventView(ReadsAsJson):
    id: int
    at: str | None
    state: LaunchState
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "state": self.state.value}


def start_timeout(service: ComputeService) -> int:
    return int((service.connector_config or {}).get("start_timeout_seconds", DEFAULT_START_TIMEOUT))


class LaunchRecords:
    """Reads and moves launches. ``on_settled`` is told once a launch is ready or failed; ``on_final`` once
    it is final; ``on_start_done(service, strained)`` when a start at an API-mode service ended."""

    def __init__(self, store: Store, box: SecretBox):
        self.store = store
        self.box = box
        self.on_settled: Callable[[str, LaunchState], None] | None = None
        self.on_final: Callable[[str], None] | None = None
        self.on_start_done: Callable[[ComputeService, bool], None] | None = None

    # -- reading -------------------------------------------------------------------------------
    def state(self, launch_id: str) -> LaunchState:
        with self.store.session() as session:
            return LaunchState(session.get(Launch, launch_id).state)

    def view(self, launch: Launch) -> LaunchView:
        url = launch.url
        if url and launch.url_token_encrypted:
            url += ("&" if "?" in url else "?") + urlencode({"token": self.box.decrypt(launch.url_token_encrypted)})
        return LaunchView(launch.id, LaunchState(launch.state), launch.dataset_pid, launch.facility_id,
                          launch.service_id, url, launch.error, launch.request, launch.decision,
                          iso(launch.created_at), iso(launch.updated_at), self.last_message(launch.id), launch.basket)

    def events(self, session: Session, launch_id: str, after: int = 0) -> list[LaunchEventView]:
        return [LaunchEventView(e.id, iso(e.at), LaunchState(e.state), e.message)
                for e in session.scalars(select(LaunchEvent).where(LaunchEvent.launch_id == launch_id,
                                                                   LaunchEvent.id > after).order_by(LaunchEvent.id))]

    def last_message(self, launch_id: str, starting: str | None = None) -> str | None:
        """The latest event's message (of those beginning with ``starting``, if given)."""
        query = select(LaunchEvent.message).where(LaunchEvent.launch_id == launch_id)
        if starting:
            query = query.where(LaunchEvent.message.startswith(starting))
        with self.store.session() as session:
            return session.scalar(query.order_by(LaunchEvent.id.desc()).limit(1))

    def last_trouble(self, launch_id: str) -> str | None:
        message = self.last_message(launch_id, TROUBLE)
        return message.removeprefix(TROUBLE) if message else None

    def stop_failed(self, launch_id: str) -> bool:
        last = self.last_message(launch_id)
        return bool(last and last.startswith(STOP_FAILED))

    @staticmethod
    def own(session: Session, actor: Principal, launch_id: str) -> Launch:
        launch = session.get(Launch, launch_id)
        if launch is None or not actor.may_act_for(launch.person_id):
            raise NotFound(f"no launch {launch_id!r} of yours")
        return launch

    # -- moving --------------------------------------------------------------------------------
    def move(self, launch_id: str, state: LaunchState, message: str, *, url: str | None = None,
             deadline: datetime | None = None, secret: str | None = None, overloaded: bool = False) -> bool:
        """Record a change of state; False when refused: a finished launch never moves again (a follower
        and a cancel may race), except a ready one to stopped. Only overload (``overloaded``: a start
        timeout) and slow starts count as strain on the service; a refused request does not."""
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
            if state in FINAL_LAUNCH_STATES:  # nobody needs to step or follow it any more
                launch.lease_holder, launch.lease_expires_at = None, None
            session.add(LaunchEvent(launch_id=launch_id, state=state.value, message=message))
            self._observe_start(session, launch, state, overloaded)
        if state in FINAL_LAUNCH_STATES and self.on_final is not None:
            self.on_final(launch_id)
        if self.on_settled is not None and state in (LaunchState.READY, LaunchState.FAILED):
            self.on_settled(launch_id, state)
        return True

    def _observe_start(self, session: Session, launch: Launch, state: LaunchState, overloaded: bool) -> None:
        started = launch.deadline_at is not None and (state == LaunchState.READY
                                                       or (state == LaunchState.FAILED and overloaded))
        service = session.get(ComputeService, launch.service_id) if started and launch.service_id else None
        if service is None or service.launch_mode != LaunchMode.API or self.on_start_done is None:
            return
        timeout = start_timeout(service)
        took = (utcnow() - (as_utc(launch.deadline_at) - timedelta(seconds=timeout))).total_seconds()
        self.on_start_done(service, overloaded or took > timeout / 2)

    def note(self, launch_id: str, message: str, *, once: bool = False) -> None:
        """An event that does not change the state; with ``once``, not when it is the latest word already."""
        if once and self.last_message(launch_id) == message:
            return
        with self.store.session() as session:
            launch = session.get(Launch, launch_id)
            session.add(LaunchEvent(launch_id=launch_id, state=launch.state, message=message))

    # -- leases: which worker steps and follows a launch ----------------------------------------
    def claim(self, launch_id: str, holder: str, seconds: float, *, force: bool = False) -> bool:
        """Hold the launch for ``seconds`` (True), unless another holder's lease is still running (with
        ``force``, whatever another holder had: the only process running jobs)."""
        now = utcnow()
        free = or_(Launch.lease_holder.is_(None), Launch.lease_holder == holder, Launch.lease_expires_at < now)
        with self.store.session() as session:
            taken = session.execute(update(Launch).where(
                Launch.id == launch_id, Launch.state.not_in([s.value for s in FINAL_LAUNCH_STATES]),
                *(() if force else (free,)))
                .values(lease_holder=holder, lease_expires_at=now + timedelta(seconds=seconds))
                .execution_options(synchronize_session=False))
            return taken.rowcount == 1

    def renew(self, launch_ids: set[str], holder: str, seconds: float) -> set[str]:
        """Extend this holder's leases on ``launch_ids``; returns those it still holds."""
        if not launch_ids:
            return set()
        with self.store.session() as session:
            session.execute(update(Launch).where(Launch.id.in_(launch_ids), Launch.lease_holder == holder)
                            .values(lease_expires_at=utcnow() + timedelta(seconds=seconds))
                            .execution_options(synchronize_session=False))
            return set(session.scalars(select(Launch.id).where(Launch.id.in_(launch_ids),
                                                                Launch.lease_holder == holder)))

    def release(self, launch_id: str, holder: str) -> None:
        with self.store.session() as session:
            session.execute(update(Launch).where(Launch.id == launch_id, Launch.lease_holder == holder)
                            .values(lease_holder=None, lease_expires_at=None)
                            .execution_options(synchronize_session=False))


def person_of(actor: Principal) -> str:
    return actor.require_person("launches are made by people: sign in, or use a personal API token")


__all__ = ["ACTIVE", "ALIVE", "CLOSED", "DEFAULT_START_TIMEOUT", "LaunchEventView", "LaunchRecords", "LaunchView",
           "STOP_FAILED", "TROUBLE", "person_of", "start_timeout"]
