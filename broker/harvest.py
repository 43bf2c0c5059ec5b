"""Harvesting: gather -> fetch -> import of each search endpoint's datasets into the index, as a
persisted job with per-stage times, counts and per-item errors (CKAN ckanext-harvest's shape).

A source that cannot be read fails its own job only; the index keeps what it had. Datasets that a
complete harvest no longer sees are deleted from the index, unless that is more than ``max_delete_share``
of the source (or all of it; for deletions an incremental source names, only all of it): then the job
stops as ``suspect``, deletes nothing, and waits for an operator
to confirm (a harvest run with ``confirm_deletions``). Jobs left ``running`` by a process that died are
failed and run again when the worker starts. Only the worker writes the embedded index: other processes
queue a job for it.
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager

from sqlalchemy import delete, func, select, update

from broker.authz import Principal
from broker.harvest_seen import RunningHarvests, SeenPids
from broker.harvest_pipeline import MappedPage, Pipeline, harvest_tuning, map_page, mapping_pool, pool_mapper
from panmodel.errors import FieldError, InvalidInput, NotFound
from broker.oai.records import RecordLog
from broker.registry_kinds import iso
from broker.registry_service import deleted_search_endpoints
from broker.search.index import DatasetIndex
from connectors import connector_for
from connectors.capabilities import Harvester
from connectors.errors import UpstreamError
from connectors.http import HttpClient
from panmodel.clock import utcnow
from panmodel.states import HarvestStage, HarvestState
from registry.models import HarvestCheckpoint, HarvestError, HarvestJob, SearchEndpoint
from registry.store import Store

log = logging.getLogger(__name__)
MAX_ERRORS_KEPT = 1000
COMMIT_EVERY = 20_000  # datasets between two index commits (each a checkpoint a stopped harvest resumes from)


class HarvestService:
    def __init__(self, store: Store, http: HttpClient, index: DatasetIndex, *, timeout: float,
                 max_delete_share: float = 0.2, commit_every: int = COMMIT_EVERY, processes: int = 0):
        self.store = store
        self.http = http
        self.index = index
        self.timeout = timeout
        self.max_delete_share = max_delete_share
        self.commit_every = commit_every
        self.processes = processes  # mapping processes of a harvest whose pages can be mapped elsewhere
        self.runs_here = True  # False in a process that must not write the index: it queues jobs instead
        self.records = RecordLog(store)  # the OAI-PMH feed's datestamps and deletions
        self.running = RunningHarvests()

    def run_all(self) -> list[dict[str, Any]]:
        """Harvest every search endpoint, one after the other; a failing one does not stop the rest."""
        with self.store.session() as session:
            ids = session.scalars(select(SearchEndpoint.id).order_by(SearchEndpoint.id)).all()
        return [self.run(endpoint_id) for endpoint_id in ids]

    def run_as(self, actor: Principal, endpoint_id: str, confirm_deletions: bool = False) -> dict[str, Any]:
        """``run`` (or, where the index is not written, ``queue``), for a caller who must be allowed to
        write the endpoint's facility."""
        with self.store.session() as session:
            endpoint = session.get(SearchEndpoint, endpoint_id)
            if endpoint is None:
                raise InvalidInput.from_fields([FieldError("endpoint_id", f"no search endpoint {endpoint_id!r}")])
            actor.require_write(endpoint.facility_id)
        if not self.runs_here:
            return self.queue(endpoint_id, confirm_deletions)
        return self.run(endpoint_id, confirm_deletions)

    # -- jobs for the worker, and jobs a dead process left behind ----------------------------
    def queue(self, endpoint_id: str, confirm_deletions: bool = False) -> dict[str, Any]:
        """A job for the worker to run (``run_queued``); returns it, ``queued``."""
        with self.store.session() as session:
            if session.get(SearchEndpoint, endpoint_id) is None:
                raise NotFound(f"no search endpoint {endpoint_id!r}")
            job = HarvestJob(endpoint_id=endpoint_id, state=HarvestState.QUEUED.value,
                             error=CONFIRM if confirm_deletions else None)
            session.add(job)
            session.flush()
            job_id = job.id
        return self.job(job_id)

    def run_queued(self, hold: Callable[[str], ContextManager[bool]] | None = None) -> list[dict[str, Any]]:
        """Run every queued job, oldest first (the worker calls this every few seconds). Each job is taken
        by one worker (the one whose update from ``queued`` succeeds); with ``hold``, only while holding
        the endpoint (another worker harvesting it leaves the job queued for later)."""
        with self.store.session() as session:
            queued = [(j.id, j.endpoint_id, j.error == CONFIRM) for j in session.scalars(
                select(HarvestJob).where(HarvestJob.state == HarvestState.QUEUED.value).order_by(HarvestJob.id))]
        done = []
        for job_id, endpoint_id, confirm in queued:
            with hold(endpoint_id) if hold else nullcontext(True) as held:
                if held and self._take(job_id, HarvestState.QUEUED, HarvestState.RUNNING):
                    done.append(self.run(endpoint_id, confirm, job_id=job_id))
        return done

    def _take(self, job_id: int, was: HarvestState, becomes: HarvestState, error: str | None = None) -> bool:
        """Move a job from ``was`` to ``becomes`` unless another process moved it first."""
        values: dict[str, Any] = {"state": becomes.value}
        if becomes == HarvestState.FAILED:
            values.update(finished_at=utcnow(), error=error)
        with self.store.session() as session:
            return session.execute(update(HarvestJob).where(HarvestJob.id == job_id, HarvestJob.state == was.value)
                                   .values(**values).execution_options(synchronize_session=False)).rowcount == 1

    def recover_interrupted(self, running_elsewhere: Callable[[str], bool] = lambda endpoint_id: False) -> list[str]:
        """Fail the jobs left ``running`` by a process that stopped; the endpoints to harvest again (each
        told to one process only). ``running_elsewhere(endpoint_id)``: a live worker harvests it now."""
        with self.store.session() as session:
            stale = session.execute(select(HarvestJob.id, HarvestJob.endpoint_id).where(
                HarvestJob.state == HarvestState.RUNNING.value)).all()
        reason = "interrupted: the process running this harvest stopped before it finished"
        endpoints = sorted({endpoint_id for job_id, endpoint_id in stale if not running_elsewhere(endpoint_id)
                            and self._take(job_id, HarvestState.RUNNING, HarvestState.FAILED, reason)})
        if endpoints:
            log.warning("harvests interrupted by a stop, run again: %s", ", ".join(endpoints))
        return endpoints

    def run(self, endpoint_id: str, confirm_deletions: bool = False, job_id: int | None = None) -> dict[str, Any]:
        """One complete harvest of one endpoint (in the queued job ``job_id`` if given); returns the
        finished job. ``confirm_deletions`` lets it delete more than ``max_delete_share`` of the source.
        Where the connector can resume, a harvest that stopped half way goes on after its last committed page."""
        with self.running.running() as number:  # until its last commit: what it added is in the index then
            return self._run(endpoint_id, confirm_deletions, job_id, number)

    def _run(self, endpoint_id: str, confirm_deletions: bool, job_id: int | None, number: int) -> dict[str, Any]:
        source, job_id = self._start(endpoint_id, job_id)
        connector = connector_for(source.kind)
        harvester = connector if isinstance(connector, Harvester) else None
        state = _Progress(incremental=harvester is not None and harvester.incremental, published=self.records.batch())
        failure = None if harvester is not None else f"connector {source.kind!r} cannot harvest"
        checkpoint = (self._checkpoint(endpoint_id, source.base_url) if harvester is not None and harvester.resumable
                      else None)
        try:
            if harvester is not None:
                with harvest_tuning():
                    self._import_pages(harvester, source, job_id, state, checkpoint, number)
        except UpstreamError as exc:
            failure = f"{HarvestStage.GATHER.value}: {exc.detail}"
        except Exception as exc:  # noqa: BLE001 - the broker's own fault: the job fails with it, never stays "running"
            failure = _own_fault(endpoint_id, exc)
        suspect, gone = None, set()
        try:
            if failure is None and checkpoint is not None:  # the pages read before the stop are not known here
                log.info("harvest %s resumed: deletions are left to the next complete harvest", endpoint_id)
            elif failure is None:
                self.index.commit()  # every dataset seen is held now: a complete listing's deletions are the rest
                # an incremental source names its deletions; a complete listing implies them (listed only when
                # there are some: the index holding as many as were seen is the usual answer, and cheap to ask)
                steady = not state.incremental and self.index.source_count(endpoint_id) == len(state.seen)
                held = set() if steady else self.index.pids(endpoint_id)
                gone = set(state.removed) if state.incremental else state.seen.missing(held)
                # deletions a source names itself are its word; those inferred from a listing are checked
                share = 1.0 if state.incremental else self.max_delete_share
                suspect = None if confirm_deletions else _suspect(len(gone & held), len(held), share)
                if suspect is None:
                    self.index.delete(gone)
                    state.counts["deleted"] = len(gone)
            self.index.commit()
            state.published.publish(gone if suspect is None else set())  # a suspect harvest deleted nothing
            if failure is None:
                self._forget_checkpoint(endpoint_id)
        except Exception as exc:  # noqa: BLE001 - as above, while ending
            failure = failure or _own_fault(endpoint_id, exc)
        return self._finish(endpoint_id, job_id, state, failure, suspect)

    def _start(self, endpoint_id: str, job_id: int | None) -> tuple["_Source", int]:
        with self.store.session() as session:
            endpoint = session.get(SearchEndpoint, endpoint_id)
            if endpoint is None:
                raise NotFound(f"no search endpoint {endpoint_id!r}")
            source = _Source(endpoint_id, endpoint.facility_id, endpoint.kind, endpoint.base_url,
                             dict(endpoint.connector_config or {}))
            job = session.get(HarvestJob, job_id) if job_id else None
            if job is None:
                job = HarvestJob(endpoint_id=endpoint_id, state=HarvestState.RUNNING.value)
                session.add(job)
            job.state, job.error, job.started_at = HarvestState.RUNNING.value, None, utcnow()
            session.flush()
            return source, job.id

    def _import_pages(self, connector: Harvester, source: "_Source", job_id: int, state: "_Progress",
                      checkpoint: HarvestCheckpoint | None, number: int) -> None:
        """Gather, fetch and map in the pipeline's threads, import here; the index is committed and the
        checkpoint saved every ``commit_every`` datasets."""
        extra: dict[str, Any] = {"since": self._last_success(source.endpoint_id, job_id)} if state.incremental else {}
        if checkpoint is not None:
            extra["resume"] = checkpoint.resume
            state.pages, state.committed = checkpoint.pages, checkpoint.records
            log.info("harvest %s resumes after page %s (%s datasets already imported)", source.endpoint_id,
                     checkpoint.pages, checkpoint.records)
        pages = connector.gather(self.http, source.base_url, source.config, self.timeout, **extra)
        uncommitted, resume = 0, None
        # a pid held from another endpoint is looked up only where the index holds another endpoint's datasets
        # or may get some meanwhile (an index with other writers)
        others = not self.index.one_writer or bool(self.index.sources() - {source.endpoint_id})
        # an index only this process writes, holding nothing of this source: a pid met for the first time has no
        # older version to replace, while no other harvest of the process runs beside it (``RunningHarvests``)
        fresh = self.index.one_writer and self.index.source_count(source.endpoint_id) == 0
        # pages a connector decodes itself (``decode``) and maps without fetching are mapped in processes
        pooled = self.processes > 0 and connector.decodes() and not connector.fetches()
        with mapping_pool(self.processes if pooled else 0) as pool:
            if pool is None:
                mapper = lambda page: map_page(connector, page, source.facility, source.endpoint_id,  # noqa: E731
                                               self.index.prepare, self.http)
            else:
                mapper = pool_mapper(source.kind, source.facility, source.endpoint_id, type(self.index).prepare)
            with Pipeline(pages, mapper, pool=pool) as pipeline:
                for page in pipeline:
                    state.counts["gathered"] += page.gathered
                    state.stamps["gathered_at"] = state.stamps["fetched_at"] = utcnow()
                    state.failed(page.errors)
                    state.removed.extend(page.removed)
                    with self.running.lock:
                        alone = self.running.alone(number)
                        if others or not alone:
                            state.failed(self._unclaimed(page, source.endpoint_id))
                        absent = state.seen.first_met(page.pids) if fresh and alone else frozenset()
                        state.seen.add(page.pids)
                        imported = self.index.upsert_prepared(page.documents, absent)
                    state.published.add_entries(page.entries)
                    state.counts["imported"] += imported
                    state.pages, uncommitted, resume = state.pages + 1, uncommitted + imported, page.resume
                    if resume is not None and uncommitted >= self.commit_every:
                        self._commit(source, job_id, state, resume, uncommitted)
                        uncommitted = 0

    def _commit(self, source: "_Source", job_id: int, state: "_Progress", resume: str, imported: int) -> None:
        """Make what was imported so far searchable and published, then note where to resume after it."""
        self.index.commit()
        state.published.publish()
        state.committed += imported
        with self.store.session() as session:
            mark = session.get(HarvestCheckpoint, source.endpoint_id) or HarvestCheckpoint(
                endpoint_id=source.endpoint_id)
            mark.job_id, mark.base_url, mark.resume = job_id, source.base_url, resume
            mark.pages, mark.records, mark.updated_at = state.pages, state.committed, utcnow()
            session.add(mark)
            job = session.get(HarvestJob, job_id)
            job.gathered, job.imported = state.counts["gathered"], state.counts["imported"]

    def _checkpoint(self, endpoint_id: str, base_url: str) -> HarvestCheckpoint | None:
        """Where a stopped harvest of this endpoint resumes (None: from the start)."""
        with self.store.session() as session:
            mark = session.get(HarvestCheckpoint, endpoint_id)
            if mark is None or mark.base_url != base_url:  # the endpoint now names another source
                return None
            session.expunge(mark)
            return mark

    def _forget_checkpoint(self, endpoint_id: str) -> None:
        with self.store.session() as session:
            session.execute(delete(HarvestCheckpoint).where(HarvestCheckpoint.endpoint_id == endpoint_id))

    def _finish(self, endpoint_id: str, job_id: int, state: "_Progress", failure: str | None,
                suspect: str | None) -> dict[str, Any]:
        errors, counts = state.errors, state.counts
        outcome = (HarvestState.FAILED if failure else HarvestState.SUSPECT if suspect else
                   HarvestState.PARTIAL if state.failures else HarvestState.SUCCEEDED)
        failure = failure or suspect
        with self.store.session() as session:
            job = session.get(HarvestJob, job_id)
            job.state, job.error, job.finished_at, job.failed = outcome.value, failure, utcnow(), state.failures
            for name, value in {**counts, **state.stamps}.items():
                setattr(job, name, value)
            session.add_all(HarvestError(job_id=job_id, item_id=item[:500], stage=stage, error=error[:2000])
                            for item, stage, error in errors)
        log.info("harvest %s: %s (%s gathered, %s imported, %s deleted, %s failed)%s", endpoint_id, outcome.value,
                 counts["gathered"], counts["imported"], counts["deleted"], state.failures,
                 f": {failure}" if failure else "")
        return self.job(job_id)

    def _last_success(self, endpoint_id: str, current_job: int) -> Any:
        """When the newest complete harvest of the endpoint started (None: harvest everything)."""
        with self.store.session() as session:
            return session.scalar(
                select(HarvestJob.started_at)
                .where(HarvestJob.endpoint_id == endpoint_id, HarvestJob.id != current_job,
                       HarvestJob.state.in_([HarvestState.SUCCEEDED.value, HarvestState.PARTIAL.value]))
                .order_by(HarvestJob.id.desc()).limit(1))

    def _unclaimed(self, page: MappedPage, endpoint_id: str) -> list[tuple[str, str, str]]:
        """Leave out of ``page`` the datasets whose pid the index holds from another endpoint: a pid two
        facilities both use is a harvest error of the later one, never a record that moves between them silently."""
        held = self.index.held_elsewhere(page.pids, endpoint_id)
        if held:
            kept = [i for i, pid in enumerate(page.pids) if pid not in held]
            page.pids = [page.pids[i] for i in kept]
            page.entries = [page.entries[i] for i in kept]
            page.documents = [page.documents[i] for i in kept]
        return [(pid, HarvestStage.IMPORT.value, f"pid already harvested from search endpoint {other!r}; not imported "
                 "(a pid must name one dataset: ask the facilities which one it is)") for pid, other in held.items()]

    def purge_orphans(self) -> set[str]:
        """Remove from the index the datasets of search endpoints the registry deleted; returns their ids."""
        with self.store.session() as session:
            deleted = deleted_search_endpoints(session)
        orphans = self.index.sources() & deleted if deleted else set()
        for source in orphans:
            gone = self.index.pids(source)
            self.index.delete_source(source)
            self.records.write([], gone)
        if orphans:
            self.index.commit()
            log.info("removed the datasets of deleted search endpoints %s from the index", ", ".join(sorted(orphans)))
        return orphans

    # -- status --------------------------------------------------------------------------------
    def jobs(self, endpoint_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        with self.store.session() as session:
            query = select(HarvestJob).order_by(HarvestJob.id.desc()).limit(limit)
            if endpoint_id:
                query = query.where(HarvestJob.endpoint_id == endpoint_id)
            return [self._show(job) for job in session.scalars(query)]

    def job(self, job_id: int) -> dict[str, Any]:
        with self.store.session() as session:
            job = session.get(HarvestJob, job_id)
            if job is None:
                raise NotFound(f"no harvest job {job_id}")
            errors = session.scalars(select(HarvestError).where(HarvestError.job_id == job_id)
                                     .order_by(HarvestError.id).limit(100)).all()
            return {**self._show(job), "errors": [{"item": e.item_id, "stage": e.stage, "error": e.error}
                                                   for e in errors]}

    def latest(self) -> dict[str, dict[str, Any]]:
        """The newest job of each endpoint (every index search reads this: one grouped query)."""
        newest = select(func.max(HarvestJob.id)).group_by(HarvestJob.endpoint_id)
        with self.store.session() as session:
            return {job.endpoint_id: self._show(job)
                    for job in session.scalars(select(HarvestJob).where(HarvestJob.id.in_(newest)))}

    @staticmethod
    def _show(job: HarvestJob) -> dict[str, Any]:
        return {"id": job.id, "endpoint_id": job.endpoint_id, "state": job.state,
                "started_at": iso(job.started_at), "gathered_at": iso(job.gathered_at),
                "fetched_at": iso(job.fetched_at), "finished_at": iso(job.finished_at),
                "gathered": job.gathered, "imported": job.imported, "deleted": job.deleted, "failed": job.failed,
                "error": job.error}


CONFIRM = "confirm-deletions"  # a queued job's note: its harvest may delete more than the allowed share


def _own_fault(endpoint_id: str, exc: Exception) -> str:
    log.exception("harvest %s failed", endpoint_id)
    return f"{HarvestStage.IMPORT.value}: the broker failed ({type(exc).__name__}: {str(exc)[:300]})"


def _suspect(deleting: int, held: int, max_share: float) -> str | None:
    """Why deleting ``deleting`` of the ``held`` datasets of a source needs an operator, or None."""
    if not deleting or not held:
        return None
    if deleting == held:
        return (f"the source no longer lists any of its {held} datasets: nothing was deleted; if it really is "
                "empty now, harvest it again confirming the deletions")
    if deleting > max_share * held:
        return (f"the harvest would delete {deleting} of {held} datasets ({deleting / held:.0%}, over the "
                f"{max_share:.0%} allowed): nothing was deleted; confirm by harvesting again with the deletions confirmed")
    return None


@dataclass(frozen=True)
class _Source:
    endpoint_id: str
    facility: str
    kind: str
    base_url: str
    config: dict[str, Any]


@dataclass
class _Progress:
    """What one harvest run has done so far."""

    incremental: bool
    counts: dict[str, int] = field(default_factory=lambda: {"gathered": 0, "imported": 0, "deleted": 0})
    stamps: dict[str, Any] = field(default_factory=dict)
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # the first MAX_ERRORS_KEPT (item, stage, error)
    failures: int = 0  # items that failed, all of them
    seen: SeenPids = field(default_factory=SeenPids)  # pids imported: a complete listing's deletions are the rest
    removed: list[str] = field(default_factory=list)
    published: Any = None  # the OAI-PMH feed's batch of this run
    pages: int = 0  # pages imported, over every resumption
    committed: int = 0  # datasets committed, over every resumption

    def failed(self, errors: list[tuple[str, str, str]]) -> None:
        """Count ``errors``, keeping them while fewer than MAX_ERRORS_KEPT are kept: a source whose every
        record fails would otherwise hold a million of them in memory."""
        self.failures += len(errors)
        self.errors.extend(errors[:max(0, MAX_ERRORS_KEPT - len(self.errors))])
