"""Who writes the embedded search index. Tantivy allows one writer per index folder; readers in other
processes on the same machine open it and reload when the writer commits. So with the embedded index a
deployment is one writer (``panbroker worker``, or ``serve`` with its worker) and read-only replicas on the
same machine; several writers, a replica with nobody writing its index, or replicas on several machines
(a shared PostgreSQL database) need Elasticsearch (``PANBROKER_ELASTICSEARCH_URL``). Each process checks
its own role at start, before it changes anything.
"""
from __future__ import annotations

import logging

from broker import datalock
from panmodel.errors import ConfigurationError
from broker.settings import Settings

log = logging.getLogger(__name__)
SCALE_OUT = "set PANBROKER_ELASTICSEARCH_URL (an index that several writers and machines share)"


def claim(settings: Settings, role: str) -> None:
    """Take the embedded index for this process, its one writer; refuse (``ConfigurationError``) when
    another process writes it already."""
    if settings.elasticsearch_url:
        return
    folder = settings.effective_index_dir
    try:
        datalock.hold(folder, role)
    except datalock.DataDirBusy:
        raise ConfigurationError(
            f"the embedded search index {folder} is written by another process ({datalock.holder(folder)}), and "
            "Tantivy allows one writer per index: run this one with --no-worker (it then reads that index), or "
            f"give it its own PANBROKER_INDEX_DIR, or {SCALE_OUT}") from None
    if _shared_database(settings):
        log.warning("the search index is embedded (%s, on this machine only) while PANBROKER_DATABASE_URL is a "
                    "shared database: replicas on this machine read this index, replicas on other machines would "
                    "search indexes nobody writes; for those, %s", folder, SCALE_OUT)


def check_reader(settings: Settings, what: str) -> None:
    """Say at start that a process which does not write the embedded index (``what``) has nobody writing it:
    refused where the database is shared (a replica on another machine, whose index stays empty), a
    warning otherwise (the worker may be starting)."""
    if settings.elasticsearch_url:
        return
    folder = settings.effective_index_dir
    if datalock.holder(folder) is not None:
        return
    message = (f"{what}: nothing on this machine writes the embedded search index {folder} (no `panbroker worker` "
               "or `panbroker serve --worker` holds it), so searches answer from an empty or stale index and "
               "harvests wait; start `panbroker worker` on this machine with the same PANBROKER_DATA_DIR and "
               f"PANBROKER_INDEX_DIR, or {SCALE_OUT}")
    if _shared_database(settings):
        raise ConfigurationError(message)
    log.warning(message)


def _shared_database(settings: Settings) -> bool:
    return not settings.effective_database_url.startswith("sqlite")
