"""The real PaNOSC reference Search API (LoopBack 3, Node) for tests: a data-file converter written from the
peer's own model definitions (``common/models/*.json``), and a fixture that starts one server per data file.

`make test` copies ``../shared/peers/panosc-search-api`` to ``var/peers/panosc-search-api``, runs ``npm ci``
there and adds ``server/datasources.local.js`` pointing the memory connector at ``$DB_FILE``. Nothing here
imports the broker: these servers are a second opinion, so they must not agree with the broker by construction.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
PEER_SOURCE = ROOT.parent / "shared" / "peers" / "panosc-search-api"
REFERENCE_DIR = ROOT / "var" / "peers" / "panosc-search-api"
START_TIMEOUT = 30.0

# Every model the reference defines, plus the through models LoopBack derives for its hasAndBelongsToMany
# relations (named <from><to>: Dataset.samples -> DatasetSample, Document.datasets -> DocumentDataset).
MODELS = ("Affiliation", "Dataset", "DatasetSample", "DatasetTechnique", "Document", "DocumentDataset", "File",
          "Instrument", "Member", "Parameter", "Person", "Sample", "Technique")
# LoopBack's own models, which its access checks (server/boot/authentication.js enables them) read on every
# request: without their (empty) collections in the file every request fails with a 500.
BUILT_IN_MODELS = ("AccessToken", "ACL", "Role", "RoleMapping", "User")


def reference_unavailable() -> str | None:
    """Why the reference cannot run here (naming what is missing), or None when it can."""
    if shutil.which("node") is None:
        return "Node.js (node) is not on PATH: the PaNOSC reference Search API cannot run"
    if not (REFERENCE_DIR / "server" / "datasources.local.js").exists() or not any(REFERENCE_DIR.glob(".installed-*")):
        where = "" if PEER_SOURCE.is_dir() else f" and its source {PEER_SOURCE} is missing too"
        return f"the PaNOSC reference Search API is not installed at {REFERENCE_DIR} (`make test` installs it){where}"
    return None


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return f"{value.isoformat()}T00:00:00.000Z"
    return value


def _pick(source: dict, *keys: str) -> dict:
    """The keys of ``source`` that are present and not None (LoopBack stores absent properties as absent)."""
    return {key: _iso(source[key]) for key in keys if source.get(key) is not None}


class _Store:
    """The memory connector's collections: ``{model: {str(id): record}}``, with numeric ids given in order."""

    def __init__(self) -> None:
        self.models: dict[str, dict[str, dict]] = {name: {} for name in sorted(BUILT_IN_MODELS + MODELS)}
        self._given: dict[tuple[str, str], Any] = {}

    def numbered(self, model: str, record: dict) -> int:
        number = len(self.models[model]) + 1
        self.models[model][str(number)] = {"id": number, **record}
        return number

    def shared(self, model: str, key: str, record: dict, given: Any = None) -> bool:
        """Adds a record keyed by its own id once; False when it was already there (as given the first time)."""
        given = record if given is None else given
        if key in self.models[model]:
            if self._given[(model, key)] != given:
                raise ValueError(f"{model} {key!r} is given twice with different contents")
            return False
        self.models[model][key] = record
        self._given[(model, key)] = given
        return True

    def file_shape(self) -> dict:
        # The connector's next id per model is one past the records it holds (string ids count too: its
        # create() bumps the sequence for every record, whatever the id's type).
        return {"ids": {model: len(records) + 1 for model, records in self.models.items()},
                "models": {model: {key: json.dumps(record, ensure_ascii=False) for key, record in records.items()}
                           for model, records in self.models.items()}}


def to_reference_db(records: list[dict]) -> dict:
    """The memory connector's data file for ``records`` (datasets in the nested API shape).

    Instruments, techniques, samples, documents, persons and affiliations that several datasets share are stored
    once (by pid, person id, or affiliation name/city/country); giving one twice with different contents is an
    error. Numeric ids (parameters, files, members, affiliations, through rows) run from 1 in the order given.
    """
    store = _Store()
    affiliations: dict[tuple, int] = {}
    for dataset in records:
        pid = dataset["pid"]
        if pid in store.models["Dataset"]:
            raise ValueError(f"Dataset {pid!r} is given twice")
        row = _pick(dataset, "pid", "title", "isPublic", "size", "creationDate")
        instrument = dataset.get("instrument")
        if instrument:
            store.shared("Instrument", instrument["pid"], _pick(instrument, "pid", "name", "facility"))
            row["instrumentId"] = instrument["pid"]
        store.models["Dataset"][pid] = row
        for technique in dataset.get("techniques") or []:
            store.shared("Technique", technique["pid"], _pick(technique, "pid", "name", "panetId"))
            store.numbered("DatasetTechnique", {"datasetId": pid, "techniqueId": technique["pid"]})
        for sample in dataset.get("samples") or []:
            store.shared("Sample", sample["pid"], _pick(sample, "pid", "name", "description"))
            store.numbered("DatasetSample", {"datasetId": pid, "sampleId": sample["pid"]})
        for parameter in dataset.get("parameters") or []:
            store.numbered("Parameter", {**_pick(parameter, "name", "value", "unit"), "datasetId": pid})
        for file in dataset.get("files") or []:
            store.numbered("File", {**_pick(file, "name", "path", "size"), "datasetId": pid})
        for document in dataset.get("documents") or []:
            doc_pid = document["pid"]
            row = _pick(document, "pid", "isPublic", "type", "title", "summary", "doi", "startDate", "endDate",
                        "releaseDate", "license", "keywords")
            if store.shared("Document", doc_pid, row, given=document):
                for member in document.get("members") or []:
                    person = member["person"]
                    store.shared("Person", person["id"],
                                 _pick(person, "id", "fullName", "orcid", "researcherId", "firstName", "lastName"))
                    link = {**_pick(member, "role"), "documentId": doc_pid, "personId": person["id"]}
                    affiliation = member.get("affiliation")
                    if affiliation:
                        key = (affiliation.get("name"), affiliation.get("city"), affiliation.get("country"))
                        if key not in affiliations:
                            affiliations[key] = store.numbered(
                                "Affiliation", _pick(affiliation, "name", "address", "city", "country"))
                        link["affiliationId"] = affiliations[key]
                    store.numbered("Member", link)
            store.numbered("DocumentDataset", {"datasetId": pid, "documentId": doc_pid})
    return store.file_shape()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ReferenceServer:
    """One running reference server on loopback, serving its own data file."""

    base_url: str
    process: subprocess.Popen
    db_file: Path
    log_file: Path
    started_in: float = 0.0
    _log: Any = field(default=None, repr=False)

    @property
    def api(self) -> str:
        return f"{self.base_url}/api"

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None


def start_reference(db: dict, workdir: Path) -> ReferenceServer:
    """Starts the reference on a free loopback port with ``db`` (the memory connector's file shape) as its data
    file in ``workdir``; returns once ``GET /api/Datasets/count`` answers. Raises RuntimeError with the server's
    output when it dies or does not answer within START_TIMEOUT seconds."""
    reason = reference_unavailable()
    if reason:
        raise RuntimeError(reason)
    workdir.mkdir(parents=True, exist_ok=True)
    db_file = workdir / "db.json"  # the connector writes back here on any write: one file per server
    db_file.write_text(json.dumps(db, ensure_ascii=False))
    log_file = workdir / "reference.log"
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key != "PANET_BASE_URL"}
    env.update(HOST="127.0.0.1", PORT=str(port), DB_FILE=str(db_file))
    started = time.monotonic()
    log = log_file.open("w")  # a file, not a pipe: an undrained pipe would block the server once it fills
    process = subprocess.Popen(["node", "."], cwd=REFERENCE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
    server = ReferenceServer(f"http://127.0.0.1:{port}", process, db_file, log_file, _log=log)
    session = requests.Session()
    session.trust_env = False  # never through a proxy from the environment
    while time.monotonic() - started < START_TIMEOUT:
        if process.poll() is not None:
            server.stop()
            raise RuntimeError(f"the PaNOSC reference exited with {process.returncode}: {server.log()[-2000:]}")
        try:
            if session.get(f"{server.api}/Datasets/count", timeout=1).status_code == 200:
                server.started_in = time.monotonic() - started
                return server
        except requests.RequestException:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"the PaNOSC reference did not answer within {START_TIMEOUT:.0f} s: {server.log()[-2000:]}")


@pytest.fixture(scope="session")
def reference_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[dict, str], ReferenceServer]]:
    """``start(db, name)`` starts a reference server serving ``db`` (see ``to_reference_db``); all stop at the
    end of the session. Skips (with a warning in the summary) where the reference is not installed."""
    servers: list[ReferenceServer] = []

    def start(db: dict, name: str) -> ReferenceServer:
        reason = reference_unavailable()
        if reason:
            warnings.warn(f"{reason}: PaNOSC reference tests are SKIPPED", stacklevel=2)
            pytest.skip(reason)
        server = start_reference(db, tmp_path_factory.mktemp(f"panosc-{name}"))
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
