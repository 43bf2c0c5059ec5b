"""PaNOSC Search API (LoopBack; REST root ``/api``): health, live queries, harvesting, and the mapping
of its records into the broker's ``Dataset``.

Implementations differ in their Dataset relations: the reference (panosc-eu/search-api) has techniques,
instrument, parameters, files and samples but no documents (documents reach datasets through
``Documents?include=datasets``); the SciCat adapter and the federated service have ``document``; the
data model's drawing says ``documents``. An unknown relation is an error there, so the connector learns
each endpoint's relations from that error and asks only for those.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Iterator
from urllib.parse import quote

import msgspec
import requests
from marshmallow import fields

from connectors.base import ConfigSchema, Page, ProbeResult, url_field
from connectors.capabilities import Harvester, LiveSearcher
from connectors.errors import AddressBlocked, UpstreamBadResponse, UpstreamError
from connectors.http import HttpClient, json_body
from connectors.panosc_records import (
    RawDataset,
    as_plain,
    count_records,
    decode_page,
    decode_record,
    score_of,
    split_records,
)
from connectors.panosc_records import with_documents as typed_with_documents
from connectors.panosc_mapping import to_dataset
from panmodel.states import HealthStatus

#: every Dataset relation some implementation has, in the order they are asked for
RELATIONS = ("techniques", "instrument", "parameters", "files", "samples", "documents", "document")
DOCUMENT_RELATIONS = ("documents", "document")
RELATIONS_TTL_SECONDS = 3600.0  # an endpoint's relations are learnt again after this long


class PanoscSearchConfig(ConfigSchema):
    health_url = url_field()
    page_size = fields.Integer(validate=lambda n: 1 <= n <= 1000)


class PanoscSearchConnector(Harvester, LiveSearcher):
    kind = "panosc-search-api"
    title = "PaNOSC Search API"
    config_schema = PanoscSearchConfig
    health_path = "/api/Datasets"
    to_dataset = staticmethod(to_dataset)
    resumable = True  # gather(..., resume=) starts after a page already imported

    def __init__(self) -> None:
        self._relations: dict[str, tuple[float, tuple[str, ...]]] = {}
        self._lock = threading.Lock()

    # -- what an endpoint has ------------------------------------------------------------------
    def relations(self, client: HttpClient, base_url: str, timeout: float) -> tuple[str, ...]:
        """The Dataset relations this endpoint has, learnt (for an hour) from its own answers: the reference
        answers an unknown relation with a bare HTTP 500, so each is tried alone when all at once fail."""
        key = base_url.rstrip("/")
        known = self._relations.get(key)
        if known and time.monotonic() - known[0] < RELATIONS_TTL_SECONDS:
            return known[1]
        if self._answers(client, key, RELATIONS, timeout):
            found = RELATIONS
        else:  # a failing endpoint fails without relations too: that is its error, not a relation's
            _checked(self._get(client, f"{key}/api/Datasets", {"filter": json.dumps({"limit": 1})}, timeout))
            found = tuple(r for r in RELATIONS if self._answers(client, key, (r,), timeout))
        if "documents" in found:  # an implementation with both names has them as one relation
            found = tuple(r for r in found if r != "document")
        with self._lock:
            self._relations[key] = (time.monotonic(), found)
        return found

    def _answers(self, client: HttpClient, base_url: str, relations: tuple[str, ...], timeout: float) -> bool:
        flt = {"limit": 1, "include": [{"relation": r} for r in relations]}
        response = self._get(client, f"{base_url}/api/Datasets", {"filter": json.dumps(flt)}, timeout)
        if response.status_code < 400:
            _checked(response)  # an answer that is not JSON is the endpoint's fault, not the relation's
            return True
        return False

    def include(self, client: HttpClient, base_url: str, timeout: float,
                wanted: tuple[str, ...] = RELATIONS) -> list[dict[str, Any]]:
        """The relations of ``wanted`` this endpoint has (learnt from its answers)."""
        return [{"relation": r} for r in self.relations(client, base_url, timeout) if r in wanted]

    def probe(self, client: HttpClient, base_url: str | None, config: dict[str, Any], timeout: float) -> ProbeResult:
        """Up only when what harvest and live search call answers: a find with every relation, and count."""
        if config.get("health_url") or not base_url:
            return super().probe(client, base_url, config, timeout)
        started = time.monotonic()
        try:
            client.policy.check_url(base_url)
            self._relations.pop(base_url.rstrip("/"), None)
            include = self.include(client, base_url, timeout)
            self.find(client, base_url, {"limit": 1, "include": include}, timeout)
            self.count(client, base_url, {}, timeout)
            if not set(DOCUMENT_RELATIONS) & {i["relation"] for i in include}:  # harvest reads them from Documents
                self.documents_of(client, base_url, ["-"], timeout)
        except AddressBlocked as exc:
            return ProbeResult(HealthStatus.BLOCKED, error=exc.detail)
        except UpstreamError as exc:
            return ProbeResult(HealthStatus.DOWN, round((time.monotonic() - started) * 1000, 1), exc.detail)
        return ProbeResult(HealthStatus.UP, round((time.monotonic() - started) * 1000, 1))

    # -- calls ---------------------------------------------------------------------------------
    @staticmethod
    def _get(client: HttpClient, url: str, params: dict[str, str], timeout: float) -> requests.Response:
        return client.get(url, params=params, timeout=timeout, headers={"Accept": "application/json"})

    def find(self, client: HttpClient, base_url: str, flt: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
        """Raw Dataset records for a LoopBack filter."""
        body = _checked(self._find_response(client, base_url, flt, timeout))
        if not isinstance(body, list):
            raise UpstreamBadResponse(f"{base_url}: Datasets answered {type(body).__name__}, not a list")
        return body

    def find_records(self, client: HttpClient, base_url: str, flt: dict[str, Any],
                     timeout: float) -> list[RawDataset] | list[dict[str, Any]]:
        """``find``, decoded straight into typed records where every record fits them (the harvest's fast
        path); otherwise the JSON objects, for the tolerant reader."""
        return self._records(self._find_response(client, base_url, flt, timeout), base_url)

    def find_raw(self, client: HttpClient, base_url: str, flt: dict[str, Any],
                 timeout: float) -> list[msgspec.Raw] | list[Any]:
        """``find``'s records each still encoded (``decode_record`` reads one), for a caller that keeps few of
        them (live search: most records a facility sends for words it ignores are left unread). A list msgspec
        does not split (text it refuses, such as a lone surrogate escape) comes back decoded the tolerant way."""
        response = self._find_response(client, base_url, flt, timeout)
        listing = split_records(response.content) if response.status_code < 300 else None
        if listing is not None:
            return listing
        body = _checked(response)
        if isinstance(body, list):
            return body
        raise UpstreamBadResponse(f"{base_url}: Datasets answered {type(body).__name__}, not a list")

    decode_record = staticmethod(decode_record)
    score_of = staticmethod(score_of)

    def _records(self, response: requests.Response, base_url: str) -> list[RawDataset] | list[dict[str, Any]]:
        if response.status_code < 300:
            typed = decode_page(response.content)
            if typed is not None:
                return typed
        body = _checked(response)
        if not isinstance(body, list):
            raise UpstreamBadResponse(f"{base_url}: Datasets answered {type(body).__name__}, not a list")
        return body

    @staticmethod
    def decode(encoded: bytes) -> list[RawDataset] | list[Any]:
        """The records of a page ``harvest`` left encoded (a JSON list): typed where they fit, else as JSON."""
        typed = decode_page(encoded)
        return typed if typed is not None else json.loads(encoded)

    def _find_response(self, client: HttpClient, base_url: str, flt: dict[str, Any],
                       timeout: float) -> requests.Response:
        """The answer to a Datasets find. When the filter's relations fail (learnt while the endpoint had no
        datasets, which LoopBack does not check relations on), they are learnt again and the call is made
        once more with those."""
        url = f"{base_url.rstrip('/')}/api/Datasets"
        response = self._get(client, url, {"filter": json.dumps(flt)}, timeout)
        if response.status_code >= 500 and flt.get("include"):
            asked = tuple(i["relation"] for i in flt["include"] if isinstance(i, dict) and "relation" in i)
            self._relations.pop(base_url.rstrip("/"), None)
            have = self.relations(client, base_url, timeout)
            if set(asked) - set(have):
                flt = {**flt, "include": [i for i in flt["include"] if i.get("relation") in have]}
                response = self._get(client, url, {"filter": json.dumps(flt)}, timeout)
        return response

    def count(self, client: HttpClient, base_url: str, where: dict[str, Any], timeout: float) -> int:
        body = _checked(self._get(client, f"{base_url.rstrip('/')}/api/Datasets/count", {"where": json.dumps(where)},
                                  timeout))
        if not isinstance(body, dict) or not isinstance(body.get("count"), int) or body["count"] < 0:
            raise UpstreamBadResponse(f"{base_url}: count answered without an integer count")
        return body["count"]

    def documents_of(self, client: HttpClient, base_url: str, pids: list[str],
                     timeout: float) -> dict[str, list[dict[str, Any]]]:
        """The documents of these datasets, by dataset pid, through ``Documents?include=datasets`` (for
        endpoints whose Dataset model has no document relation)."""
        if not pids:
            return {}
        flt = {"include": [{"relation": "datasets", "scope": {"where": {"pid": {"inq": pids}}}},
                           # LoopBack's object form: a scoped include would drop documents without members
                           {"members": ["person", "affiliation"]}]}
        body = _checked(self._get(client, f"{base_url.rstrip('/')}/api/Documents", {"filter": json.dumps(flt)},
                                  timeout))
        if not isinstance(body, list):
            raise UpstreamBadResponse(f"{base_url}: Documents answered {type(body).__name__}, not a list")
        wanted, found = set(pids), {}
        for document in body:
            if not isinstance(document, dict):
                continue
            members = [d.get("pid") for d in document.get("datasets") or [] if isinstance(d, dict)]
            plain = {k: v for k, v in document.items() if k != "datasets"}
            for pid in members:
                if pid in wanted:
                    found.setdefault(pid, []).append(plain)
        return found

    def with_documents(self, client: HttpClient, base_url: str, records: list[Any],
                       timeout: float) -> list[Any]:
        """``records`` with their documents attached, where the endpoint's Dataset model lacks them."""
        if set(DOCUMENT_RELATIONS) & set(self.relations(client, base_url, timeout)):
            return records
        pids = [r.pid if isinstance(r, RawDataset) else r["pid"] for r in records
                if isinstance(r, RawDataset) or (isinstance(r, dict) and isinstance(r.get("pid"), str))]
        documents = self.documents_of(client, base_url, pids, timeout)
        return [_attached(r, documents.get(r.pid if isinstance(r, RawDataset) else r.get("pid"), []))
                if isinstance(r, (dict, RawDataset)) else r for r in records]

    def get(self, client: HttpClient, base_url: str, pid: str, timeout: float) -> dict[str, Any] | None:
        response = self._get(client, f"{base_url.rstrip('/')}/api/Datasets/{quote(pid, safe='')}",
                             {"filter": json.dumps({"include": self.include(client, base_url, timeout)})}, timeout)
        if response.status_code == 404:
            return None
        record = _checked(response)
        return self.with_documents(client, base_url, [record], timeout)[0]

    def gather(self, client: HttpClient, base_url: str, config: dict[str, Any], timeout: float,
                resume: str | None = None) -> Iterator[Page]:
        """Every dataset with every relation the endpoint has, a page at a time, in a stable order; from
        ``resume`` (a page's own ``resume``) on when given."""
        size = config.get("page_size", 200)
        include = self.include(client, base_url, timeout)
        skip = int(resume) if resume and resume.isdigit() else 0
        while True:
            response = self._find_response(client, base_url, {"limit": size, "skip": skip, "order": "pid ASC",
                                                               "include": include}, timeout)
            # where records come with their documents, a page is decoded where it is mapped (a harvest's
            # mapping processes), not in the one process that fetches and indexes
            has_documents = set(DOCUMENT_RELATIONS) & set(self.relations(client, base_url, timeout))
            count = count_records(response.content) if has_documents and response.status_code < 300 else None
            if count is not None:
                page = Page(resume=str(skip + count), encoded=response.content)
            else:
                records = self._records(response, base_url)
                count = len(records)
                page = Page(self.with_documents(client, base_url, records, timeout), resume=str(skip + count))
            yield page
            if count < size:
                return
            skip += size


def _attached(record: dict[str, Any] | RawDataset, documents: list[dict[str, Any]]) -> dict[str, Any] | RawDataset:
    if isinstance(record, dict):
        return {**record, "documents": documents}
    return typed_with_documents(record, documents) or {**as_plain(record), "documents": documents}


def _checked(response: requests.Response) -> Any:
    body = json_body(response)
    if response.status_code >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        raise UpstreamBadResponse(f"HTTP {response.status_code}" + (f": {str(message)[:300]}" if message else ""))
    return body
