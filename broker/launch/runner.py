"""The launch runner: the worker's part of launches. Each round it moves every unfinished launch one step
(oldest first, within each service's admission bound) on starter threads, and hands starting launches to
follower threads that read the service's event stream.

Several workers may run at once (PostgreSQL): a worker steps and follows only the launches it holds the
lease of, renews its leases every round, and takes over the launches of a worker whose lease lapsed
(killed, hung, cut off). On SQLite one process runs the jobs (the data folder's lock): its leases never
wait for a previous process's to lapse.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import select

from panmodel.errors import BrokerError, Conflict
from broker.launch.admission import AdmissionBounds, configured_bound
from broker.launch.placement import Placement
from broker.launch.records import ALIVE, DEFAULT_START_TIMEOUT, TROUBLE, LaunchRecords, start_timeout
from broker.launch.targets import LaunchTargets
from connectors import connector_for
from connectors.base import LaunchProgress, LaunchTarget, RequestRefused
from connectors.capabilities import SessionLauncher
from connectors.errors import UpstreamError
from connectors.http import HttpClient
from panmodel.clock import as_utc, utcnow
from panmodel.states import FINAL_LAUNCH_STATES, LaunchMode, LaunchState
from registry.models import ComputeService, Launch
from registry.store import Store

log = logging.getLogger(__name__)

IN_FLIGHT = frozenset({LaunchState.SUBMITTED, LaunchState.STARTING, LaunchState.WAITING})
FOLLOWERS = 32  # event streams followed at once by one process
STARTERS = 16  # steps (a start may be held by the service for its slow-spawn timeout) run at once
# a hub holds a start's POST for its slow-spawn timeout (configurable up to 300 s): the read timeout of
# starts is above it; the connector bounds each call by the service's own setting
START_READ_SECONDS = 320.0
DEFAULT_LEASE_SECONDS = 10.0


class LeaseLost(RuntimeError):
    """Another worker took the launch over (this one's lease lapsed): stop following it."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LaunchRunner:
    def __init__(self, store: Store, http: HttpClient, records: LaunchRecords, placement: Placement,
                 targets: LaunchTargets, *, lease_seconds: float = DEFAULT_LEASE_SECONDS, exclusive: bool = False):
        self.store = store
        self.http = http
        self.start_http = HttpClient(http.policy, replace(http.limits, read_timeout=START_READ_SECONDS,
                                                          total_timeout=START_READ_SECONDS + 10))
        self.records = records
        self.placement = placement
        self.targets = targets
        self.holder = worker_name()
        self.lease_seconds = lease_seconds
        self.exclusive = exclusive  # the only process running jobs (SQLite): others' leases are stale
        self.bounds = AdmissionBounds()
        records.on_start_done = lambda service, strained: self.bounds.observe(
            service.id, configured_bound(service), strained=strained)
        records.on_final = self._forget
        self._followers = ThreadPoolExecutor(max_workers=FOLLOWERS, thread_name_prefix="launch-follow")
        self._starters = ThreadPoolExecutor(max_workers=STARTERS, thread_name_prefix="launch-step")
        self._held: set[str] = set()  # launches whose lease this process holds
        self._following: set[str] = set()
        self._stepping: set[str] = set()  # launches whose step runs now (at most one step per launch)
        self._polling_only: set[str] = set()  # launches whose service offered no stream to follow
        self._retry_at: dict[str, float] = {}  # launches told to wait (429 Retry-After), by monotonic time
        self._lock = threading.Lock()

    # -- rounds ------------------------------------------------------------------------------------
    def advance(self) -> int:
        """Move every unfinished launch this worker holds or can take one step, oldest first; returns how
        many unfinished launches there are.

        Admission control: at most ``max_concurrent_spawns`` (connector config, default 4) starts are in
        flight per API-mode service; the others wait their turn and are told their queue position."""
        self._renew()
        with self.store.session() as session:
            pending = session.execute(select(Launch.id, Launch.state, Launch.service_id, Launch.lease_holder,
                                             Launch.lease_expires_at).where(Launch.state.not_in(
                [s.value for s in FINAL_LAUNCH_STATES])).order_by(Launch.created_at, Launch.id)).all()
            bounds = {s.id: self.bounds.bound(s.id, configured_bound(s))
                      for s in session.scalars(select(ComputeService).where(
                          ComputeService.launch_mode == LaunchMode.API))}
        in_flight: dict[str, int] = {}
        for row in pending:
            if LaunchState(row.state) in IN_FLIGHT:
                in_flight[row.service_id] = in_flight.get(row.service_id, 0) + 1
        queued: dict[str, int] = {}
        for row in pending:
            if row.state == LaunchState.ROUTED and row.service_id in bounds:
                if in_flight.get(row.service_id, 0) >= bounds[row.service_id]:
                    queued[row.service_id] = queued.get(row.service_id, 0) + 1
                    self._queue_note(row.id, queued[row.service_id])
                    continue
                in_flight[row.service_id] = in_flight.get(row.service_id, 0) + 1
            if self._leased_elsewhere(row) or not self._hold(row.id):
                continue
            with self._lock:
                if row.id in self._stepping:
                    continue
                self._stepping.add(row.id)
            self._starters.submit(self._step_safely, row.id)
        return len(pending)

    def _queue_note(self, launch_id: str, position: int) -> None:
        """Tell the user their place in the queue, once per change of place."""
        self.records.note(launch_id, f"queued: {position} ahead of you" if position > 1 else "queued: next to start",
                          once=True)

    def wait_for_steps(self, timeout: float = 60) -> None:
        """Until no step is running (tests and benchmarks that advance by hand)."""
        deadline = time.monotonic() + timeout
        while self._stepping and time.monotonic() < deadline:
            time.sleep(0.02)

    # -- leases ------------------------------------------------------------------------------------
    def _leased_elsewhere(self, row) -> bool:  # noqa: ANN001 - a row of advance's query
        return (not self.exclusive and row.lease_holder not in (None, self.holder)
                and row.lease_expires_at is not None and as_utc(row.lease_expires_at) > utcnow())

    def _hold(self, launch_id: str) -> bool:
        if launch_id in self._held:
            return True
        if not self.records.claim(launch_id, self.holder, self.lease_seconds, force=self.exclusive):
            return False
        with self._lock:
            self._held.add(launch_id)
        log.info("launch %s is followed by %s", launch_id, self.holder)
        return True

    def _renew(self) -> None:
        with self._lock:
            held = set(self._held)
        kept = self.records.renew(held, self.holder, self.lease_seconds)
        with self._lock:
            lost = held - kept
            self._held -= lost
        for launch_id in lost:
            log.warning("the lease of launch %s lapsed: another worker follows it now", launch_id)

    def _forget(self, launch_id: str) -> None:
        """A final launch: what this process kept about it is no longer needed."""
        with self._lock:
            self._held.discard(launch_id)
            self._polling_only.discard(launch_id)
            self._retry_at.pop(launch_id, None)

    def close(self) -> None:
        """Give up every lease now (a worker stopping cleanly), so that another takes over at once."""
        with self._lock:
            held, self._held = set(self._held), set()
        for launch_id in held:
            self.records.release(launch_id, self.holder)

    # -- one step ------------------------------------------------------------------------------------
    def _step_safely(self, launch_id: str) -> None:
        """One step of one launch, on a starter thread: a start the service holds for its slow-spawn
        timeout delays only this launch."""
        try:
            self._step(launch_id)
        except UpstreamError as exc:
            self.records.note(launch_id, f"{TROUBLE}{exc.detail}")
        except RequestRefused as exc:  # the service cannot take the request as asked: this launch alone fails
            self.records.move(launch_id, LaunchState.FAILED, str(exc))
        except BrokerError as exc:  # e.g. the user's token cannot be had: nothing will change by retrying
            self.records.move(launch_id, LaunchState.FAILED, exc.detail)
        except Exception:  # noqa: BLE001 - a starter must never die silently; the next round tries again
            log.exception("a step of launch %s failed", launch_id)
        finally:
            with self._lock:
                self._stepping.discard(launch_id)

    def _step(self, launch_id: str) -> None:
        with self.store.session() as session:
            launch = session.get(Launch, launch_id)
            state = LaunchState(launch.state)
            deadline = as_utc(launch.deadline_at) if launch.deadline_at else None
        if state == LaunchState.REQUESTED:
            self.placement.route(launch_id)
            return
        target, service = self.targets.build(launch_id)
        connector = connector_for(service.kind)
        if state == LaunchState.ROUTED and service.launch_mode == LaunchMode.DEEPLINK:
            self._open_deep_link(launch_id, connector, target, service)
        elif deadline is not None and utcnow() > deadline:
            self._time_out(launch_id, state, connector, target, service)
        elif state in (LaunchState.STARTING, LaunchState.WAITING) and self._follow_if_possible(
                launch_id, connector, target, deadline):
            return
        else:
            self._start_or_poll(launch_id, state, connector, target, service)

    def _open_deep_link(self, launch_id: str, connector: SessionLauncher, target: LaunchTarget,
                        service: ComputeService) -> None:
        url = connector.deep_link(target)
        if url is None:
            self.records.move(launch_id, LaunchState.FAILED, f"{service.title} has no launch page configured")
        else:
            self.records.move(launch_id, LaunchState.READY, f"open {service.title}'s own launch page", url=url)

    def _time_out(self, launch_id: str, state: LaunchState, connector: SessionLauncher, target: LaunchTarget,
                  service: ComputeService) -> None:
        last = self.records.last_trouble(launch_id)
        queued = "; the batch job was still waiting in the facility's queue" if state == LaunchState.WAITING else ""
        self.records.move(launch_id, LaunchState.FAILED, f"{service.title} did not start the session in time "
                          f"(start timeout){queued}" + (f"; last trouble: {last}" if last else ""), overloaded=True)
        try:  # recorded first: a stream that answers the stop with "ready" must not revive the launch
            connector.stop(self.http, target)
        except UpstreamError as exc:
            self.records.note(launch_id, f"the service did not stop the late session: {exc.detail}")

    def _start_or_poll(self, launch_id: str, state: LaunchState, connector: SessionLauncher, target: LaunchTarget,
                       service: ComputeService) -> None:
        if state == LaunchState.ROUTED:
            if not self.records.move(launch_id, LaunchState.SUBMITTED, f"asking {service.title} to start a session",
                                     deadline=utcnow() + timedelta(seconds=start_timeout(service))):
                return  # cancelled meanwhile: nothing is sent
            progress = connector.start(self.start_http, target)
        elif state == LaunchState.SUBMITTED:
            if time.monotonic() < self._retry_at.get(launch_id, 0.0):
                return
            progress = connector.start(self.start_http, target)  # tolerates "already running": never a second one
        else:
            progress = connector.poll(self.http, target)
        if progress.overloaded or progress.retry_after:
            self.bounds.observe(service.id, configured_bound(service), strained=True)
        if progress.retry_after:  # the service is busy (429): wait as long as it asks, and let fewer in
            self._retry_at[launch_id] = time.monotonic() + progress.retry_after
            # nothing started at the service: the start timeout counts from the next attempt
            self.records.move(launch_id, LaunchState.SUBMITTED, f"{progress.message} in {progress.retry_after:g} s",
                              deadline=utcnow() + timedelta(seconds=start_timeout(service) + progress.retry_after))
            return
        if progress.state != state or progress.url:
            self._settle(launch_id, progress, target, service)

    def _settle(self, launch_id: str, progress: LaunchProgress, target: LaunchTarget, service: ComputeService) -> None:
        """Record what the service reported; a session that started or came up after the launch was
        cancelled is stopped (the cancel wins)."""
        moved = self.records.move(launch_id, progress.state, progress.message, url=progress.url,
                                  secret=progress.secret)
        if not moved and progress.state in ALIVE and self.records.state(launch_id) == LaunchState.CANCELLED:
            # a start that was on its way when the cancel was recorded: stop what it started
            self.records.note(launch_id, f"the service reported the session {progress.state} after the cancel: "
                              "stopping it")
            try:
                self.targets.stop(self.http, launch_id, target, service)
            except Conflict:
                pass  # noted; cancelling again retries

    # -- following --------------------------------------------------------------------------------
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
        service = self.targets.build(launch_id, translate=False)[1]
        self._followers.submit(self._follow, launch_id, connector, target, service,
                               time.monotonic() + max(1.0, remaining))
        return True

    def _follow(self, launch_id: str, connector: SessionLauncher, target: LaunchTarget, service: ComputeService,
                until: float) -> None:
        def report(message: str, state: str | None = None) -> None:
            if launch_id not in self._held:
                raise LeaseLost(launch_id)
            if state and LaunchState(state) != self.records.state(launch_id):
                self.records.move(launch_id, LaunchState(state), message)
            else:
                self.records.note(launch_id, message)

        try:
            progress = connector.follow(self.http, target, report, until)
            if progress is None:
                self._polling_only.add(launch_id)
            elif progress.state not in (LaunchState.STARTING, LaunchState.WAITING) and launch_id in self._held:
                self._settle(launch_id, progress, target, service)
        except LeaseLost:
            log.warning("stopped following launch %s: another worker holds it now", launch_id)
        except Exception:  # noqa: BLE001 - a follower must never die silently; polling takes over
            log.exception("following launch %s failed; polling it instead", launch_id)
            self._polling_only.add(launch_id)
        finally:
            with self._lock:
                self._following.discard(launch_id)


__all__ = ["DEFAULT_LEASE_SECONDS", "LaunchRunner", "LeaseLost", "worker_name"]
