"""OAI-PMH 2.0 data provider over the federated index: the six verbs, ``oai_dc`` and ``oai_datacite``,
one set per facility and per PaNET technique, resumption tokens, ``from``/``until`` and persistent
deletions. Listings read the feed's record table (``OaiRecord``: datestamp order, keyset paging); the
records' content comes from the index by pid.

Errors are OAI-PMH errors in an HTTP 200 answer, as the protocol says; nothing here knows about Flask.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping
from urllib.parse import quote, unquote, urlsplit
from xml.etree.ElementTree import Element, SubElement, register_namespace, tostring

from sqlalchemy import and_, func, or_, select

from broker.oai import metadata
from broker.search.index import DatasetIndex
from panmodel.datasets import Dataset, SearchRequest
from panmodel.techniques import panet
from panmodel.clock import as_utc, utcnow
from registry.models import OaiRecord
from registry.store import Store

OAI = "http://www.openarchives.org/OAI/2.0/"
# what XML 1.0 cannot hold: C0 controls but tab, LF and CR; surrogates; U+FFFE and U+FFFF. ElementTree writes
# them as they are, and one record's control character made the whole answer unreadable to every harvester
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_safe(root: Element) -> Element:
    """``root`` with every character XML cannot hold, in any text or attribute, replaced by U+FFFD."""
    for element in root.iter():
        if element.text and _NOT_XML.search(element.text):
            element.text = _NOT_XML.sub("\ufffd", element.text)
        if element.tail and _NOT_XML.search(element.tail):
            element.tail = _NOT_XML.sub("\ufffd", element.tail)
        for name, value in element.attrib.items():
            if _NOT_XML.search(value):
                element.set(name, _NOT_XML.sub("\ufffd", value))
    return root
XSI = "http://www.w3.org/2001/XMLSchema-instance"
register_namespace("", OAI)
register_namespace("xsi", XSI)
FORMATS = {"oai_dc": metadata.OAI_DC_FORMAT, "oai_datacite": metadata.DATACITE_FORMAT}
VERBS = {  # verb -> (required arguments, optional arguments); resumptionToken is exclusive where allowed
    "Identify": (set(), set()),
    "ListMetadataFormats": (set(), {"identifier"}),
    "ListSets": (set(), {"resumptionToken"}),
    "GetRecord": ({"identifier", "metadataPrefix"}, set()),
    "ListIdentifiers": ({"metadataPrefix"}, {"from", "until", "set", "resumptionToken"}),
    "ListRecords": ({"metadataPrefix"}, {"from", "until", "set", "resumptionToken"}),
}
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SECOND = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
SET_SPEC = re.compile(r"^[A-Za-z0-9\-_.!~*'()]+(:[A-Za-z0-9\-_.!~*'()]+)*$")
EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


class OaiError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class Repository:
    name: str
    base_url: str  # the /oai address harvesters use
    identifier: str  # the repository part of record identifiers (oai:<identifier>:<pid>)
    admin_email: str
    portal_url: str  # where dataset pages live (<portal_url>/datasets/<pid>)
    page_size: int = 100


def stamp(moment: datetime) -> str:
    return as_utc(moment).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class OaiProvider:
    def __init__(self, store: Store, index: DatasetIndex, repository: Repository,
                 facility_names: Callable[[], Mapping[str, str]]):
        self.store = store
        self.index = index
        self.repo = repository
        self._facility_names = facility_names
        self._names: Mapping[str, str] | None = None

    def facility_names(self) -> Mapping[str, str]:
        """The facilities' names (read once per provider: one per request)."""
        if self._names is None:
            self._names = self._facility_names()
        return self._names

    # -- the protocol --------------------------------------------------------------------------
    def handle(self, args: Mapping[str, list[str]], now: datetime | None = None) -> bytes:
        """The OAI-PMH answer (UTF-8 XML) to one request's arguments (each name with all its values)."""
        root = Element(f"{{{OAI}}}OAI-PMH")
        root.set(f"{{{XSI}}}schemaLocation", f"{OAI} http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd")
        SubElement(root, f"{{{OAI}}}responseDate").text = stamp(now or utcnow())
        request = SubElement(root, f"{{{OAI}}}request")
        request.text = self.repo.base_url
        verb = (args.get("verb") or [""])[0]
        try:
            single = self._check(args, verb)
            for name, value in single.items():
                request.set(name, value)
            body = getattr(self, "_" + verb)(single)
            root.append(body)
        except OaiError as exc:
            if exc.code in ("badVerb", "badArgument"):
                request.attrib.clear()
            SubElement(root, f"{{{OAI}}}error", code=exc.code).text = exc.message
        return tostring(_xml_safe(root), encoding="utf-8", xml_declaration=True)

    @staticmethod
    def _check(args: Mapping[str, list[str]], verb: str) -> dict[str, str]:
        if len(args.get("verb") or []) != 1 or verb not in VERBS:
            raise OaiError("badVerb", f"use one verb of {', '.join(VERBS)}" if verb else "the verb argument is missing")
        required, optional = VERBS[verb]
        single: dict[str, str] = {"verb": verb}
        for name, values in args.items():
            if name == "verb":
                continue
            if name not in required | optional:
                raise OaiError("badArgument", f"{verb} takes no argument {name!r}")
            if len(values) != 1:
                raise OaiError("badArgument", f"{name} is repeated")
            single[name] = values[0]
        if "resumptionToken" in single:
            if len(single) != 2:
                raise OaiError("badArgument", "resumptionToken is an exclusive argument")
            return single
        missing = sorted(required - set(single))
        if missing:
            raise OaiError("badArgument", f"{verb} needs {', '.join(missing)}")
        return single

    def _Identify(self, _args: dict[str, str]) -> Element:
        body = Element(f"{{{OAI}}}Identify")
        with self.store.session() as session:
            earliest = session.scalar(select(func.min(OaiRecord.datestamp)))
        for name, value in (("repositoryName", self.repo.name), ("baseURL", self.repo.base_url),
                            ("protocolVersion", "2.0"), ("adminEmail", self.repo.admin_email),
                            ("earliestDatestamp", stamp(earliest or EPOCH)), ("deletedRecord", "persistent"),
                            ("granularity", "YYYY-MM-DDThh:mm:ssZ")):
            SubElement(body, f"{{{OAI}}}{name}").text = value
        return body

    def _ListMetadataFormats(self, args: dict[str, str]) -> Element:
        formats = list(FORMATS.values())
        if "identifier" in args:
            row = self._row(args["identifier"])
            formats = [f for f in formats if f.prefix != "oai_datacite" or row.doi]
        body = Element(f"{{{OAI}}}ListMetadataFormats")
        for f in formats:
            node = SubElement(body, f"{{{OAI}}}metadataFormat")
            SubElement(node, f"{{{OAI}}}metadataPrefix").text = f.prefix
            SubElement(node, f"{{{OAI}}}schema").text = f.schema
            SubElement(node, f"{{{OAI}}}metadataNamespace").text = f.namespace
        return body

    def sets(self) -> list[tuple[str, str]]:
        """(setSpec, setName) of every set: the facilities, then the techniques of the indexed datasets."""
        names = self.facility_names()
        found = [(f"facility:{fid}", f"Datasets of {name}") for fid, name in sorted(names.items())
                 if SET_SPEC.match(fid)]
        buckets = self.index.search(SearchRequest(limit=1, facets=("technique",))).facets.get("technique", [])
        for bucket in sorted(buckets, key=lambda b: b.value):
            local = bucket.value.rsplit("/", 1)[-1]
            if SET_SPEC.match(local):
                found.append((f"technique:{local}", f"Datasets measured by {panet().label(bucket.value)}"))
        return found

    def _ListSets(self, args: dict[str, str]) -> Element:
        if "resumptionToken" in args:
            raise OaiError("badResumptionToken", "the set list is never split: this token was not issued here")
        sets = self.sets()
        if not sets:
            raise OaiError("noSetHierarchy", "no facility is registered yet, so there are no sets")
        body = Element(f"{{{OAI}}}ListSets")
        for spec, name in sets:
            node = SubElement(body, f"{{{OAI}}}set")
            SubElement(node, f"{{{OAI}}}setSpec").text = spec
            SubElement(node, f"{{{OAI}}}setName").text = name
        return body

    def _GetRecord(self, args: dict[str, str]) -> Element:
        prefix = self._prefix(args["metadataPrefix"])
        row = self._row(args["identifier"])
        if prefix == "oai_datacite" and not row.doi:
            raise OaiError("cannotDisseminateFormat", "this dataset has no DOI, which oai_datacite needs; use oai_dc")
        body = Element(f"{{{OAI}}}GetRecord")
        body.append(self._record(row, prefix, self._datasets([row])))
        return body

    def _ListIdentifiers(self, args: dict[str, str]) -> Element:
        return self._list(args, records=False)

    def _ListRecords(self, args: dict[str, str]) -> Element:
        return self._list(args, records=True)

    def published(self, offset: int, limit: int) -> list[tuple[str, datetime]]:
        """(pid, datestamp) of the datasets the feed holds and has not deleted, in pid order (for a sitemap)."""
        with self.store.session() as session:
            return [(pid, as_utc(moment)) for pid, moment in session.execute(
                select(OaiRecord.pid, OaiRecord.datestamp).where(OaiRecord.deleted.is_(False))
                .order_by(OaiRecord.pid).offset(offset).limit(limit))]

    def published_count(self) -> int:
        with self.store.session() as session:
            return session.scalar(select(func.count()).select_from(OaiRecord).where(OaiRecord.deleted.is_(False)))

    # -- listings ------------------------------------------------------------------------------
    def _list(self, args: dict[str, str], *, records: bool) -> Element:
        listing = _Listing.from_token(args["resumptionToken"]) if "resumptionToken" in args else \
            _Listing.from_args(args, self._prefix(args["metadataPrefix"]))
        conditions = listing.conditions()
        with self.store.session() as session:
            query = select(OaiRecord).where(*conditions)
            if listing.after is not None:
                moment, pid = listing.after
                query = query.where(or_(OaiRecord.datestamp > moment,
                                        and_(OaiRecord.datestamp == moment, OaiRecord.pid > pid)))
            rows = session.scalars(query.order_by(OaiRecord.datestamp, OaiRecord.pid)
                                   .limit(self.repo.page_size + 1)).all()
            # counted once, on the first page; later pages repeat it (the count of 1M rows is not free)
            total = listing.total if listing.total is not None else \
                session.scalar(select(func.count()).select_from(OaiRecord).where(*conditions)) if rows else 0
            session.expunge_all()
        if not rows and listing.cursor == 0:
            raise OaiError("noRecordsMatch", "no record matches these from, until, set and metadataPrefix")
        more = len(rows) > self.repo.page_size
        rows = rows[:self.repo.page_size]
        body = Element(f"{{{OAI}}}{'ListRecords' if records else 'ListIdentifiers'}")
        datasets = self._datasets(rows) if records else {}
        for row in rows:
            body.append(self._record(row, listing.prefix, datasets) if records else self._header(row))
        if more or listing.cursor:
            token = SubElement(body, f"{{{OAI}}}resumptionToken", completeListSize=str(total),
                               cursor=str(listing.cursor))
            if more:
                token.text = listing.next(rows[-1], len(rows), total).token()
        return body

    def _prefix(self, prefix: str) -> str:
        if prefix not in FORMATS:
            raise OaiError("cannotDisseminateFormat", f"use metadataPrefix {' or '.join(FORMATS)}")
        return prefix

    def identifier(self, pid: str) -> str:
        return f"oai:{self.repo.identifier}:{quote(pid, safe='/:@&=+$,;!~*()-_.')}"

    def _row(self, identifier: str) -> OaiRecord:
        head = f"oai:{self.repo.identifier}:"
        pid = unquote(identifier[len(head):]) if identifier.startswith(head) else None
        with self.store.session() as session:
            row = session.get(OaiRecord, pid) if pid else None
            if row is None:
                raise OaiError("idDoesNotExist", f"no record {identifier!r} here; identifiers look like {head}<pid>")
            session.expunge(row)
            return row

    def _datasets(self, rows: list[OaiRecord]) -> dict[str, Dataset]:
        found = {}
        for row in rows:
            if not row.deleted and (dataset := self.index.get(row.pid)) is not None and dataset.pid == row.pid:
                found[row.pid] = dataset
        return found

    def _header(self, row: OaiRecord, deleted: bool = False) -> Element:
        header = Element(f"{{{OAI}}}header")
        if row.deleted or deleted:
            header.set("status", "deleted")
        SubElement(header, f"{{{OAI}}}identifier").text = self.identifier(row.pid)
        SubElement(header, f"{{{OAI}}}datestamp").text = stamp(row.datestamp)
        for spec in filter(None, row.sets.split("|")):
            SubElement(header, f"{{{OAI}}}setSpec").text = spec
        return header

    def _record(self, row: OaiRecord, prefix: str, datasets: dict[str, Dataset]) -> Element:
        record = Element(f"{{{OAI}}}record")
        dataset = datasets.get(row.pid)
        # a record the index lost without the feed knowing (a purge in flight) is shown deleted, not empty
        record.append(self._header(row, deleted=dataset is None))
        if dataset is not None:
            names = self.facility_names()
            landing = f"{self.repo.portal_url}/datasets/{quote(dataset.pid, safe='/:@')}"
            SubElement(record, f"{{{OAI}}}metadata").append(
                FORMATS[prefix].render(dataset, names.get(dataset.facility, dataset.facility), landing))
        return record


@dataclass(frozen=True)
class _Listing:
    prefix: str
    set_spec: str | None
    since: datetime | None
    until: datetime | None  # exclusive
    after: tuple[datetime, str] | None = None  # the last record of the previous page
    cursor: int = 0
    total: int | None = None  # completeListSize, as counted on the first page

    @classmethod
    def from_args(cls, args: dict[str, str], prefix: str) -> "_Listing":
        since, until = args.get("from"), args.get("until")
        for name, value in (("from", since), ("until", until)):
            if value is not None and not (DAY.match(value) or SECOND.match(value)):
                raise OaiError("badArgument", f"{name} must be YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ (UTC)")
        if since and until and len(since) != len(until):
            raise OaiError("badArgument", "from and until must have the same granularity")
        try:
            low = _moment(since) if since else None
            high = _moment(until) + (timedelta(days=1) if len(until) == 10 else timedelta(seconds=1)) \
                if until else None
        except ValueError as exc:
            raise OaiError("badArgument", f"not a date: {exc}") from None
        if low and high and low >= high:
            raise OaiError("badArgument", "from is after until")
        set_spec = args.get("set")
        if set_spec is not None and not SET_SPEC.match(set_spec):
            raise OaiError("badArgument", "set is not a setSpec (e.g. facility:ILL or technique:PaNET01188)")
        return cls(prefix, set_spec, low, high)

    def conditions(self) -> list[Any]:
        found = []
        if self.prefix == "oai_datacite":
            found.append(OaiRecord.doi.is_not(None))
        if self.set_spec:
            found.append(OaiRecord.sets.contains(f"|{self.set_spec}|", autoescape=True))
        if self.since:
            found.append(OaiRecord.datestamp >= self.since)
        if self.until:
            found.append(OaiRecord.datestamp < self.until)
        return found

    def next(self, last: OaiRecord, shown: int, total: int) -> "_Listing":
        return _Listing(self.prefix, self.set_spec, self.since, self.until,
                        (as_utc(last.datestamp), last.pid), self.cursor + shown, total)

    def token(self) -> str:
        data = {"p": self.prefix, "s": self.set_spec, "f": _iso(self.since), "u": _iso(self.until),
                "a": [_iso(self.after[0]), self.after[1]] if self.after else None, "c": self.cursor,
                "n": self.total}
        return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()

    @classmethod
    def from_token(cls, token: str) -> "_Listing":
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
            after = data["a"]
            listing = cls(data["p"], data["s"], _parse(data["f"]), _parse(data["u"]),
                          (_parse(after[0]), str(after[1])) if after else None, int(data["c"]), int(data["n"]))
        except (ValueError, KeyError, TypeError, IndexError, UnicodeError, binascii.Error):
            raise OaiError("badResumptionToken", "this resumption token is not one the broker issued") from None
        if listing.prefix not in FORMATS or listing.after is None or listing.cursor < 1:
            raise OaiError("badResumptionToken", "this resumption token is not one the broker issued")
        return listing



def _moment(text: str) -> datetime:
    if len(text) == 10:
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def _iso(moment: datetime | None) -> str | None:
    return as_utc(moment).isoformat() if moment else None


def _parse(text: str | None) -> datetime | None:
    return as_utc(datetime.fromisoformat(text)) if text else None


DOMAIN = re.compile(r"^[A-Za-z][A-Za-z0-9-]*(\.[A-Za-z][A-Za-z0-9-]*)+$")


def for_broker(broker: Any) -> OaiProvider:
    """The provider of a wired broker (``panbroker.app.Broker``), configured from its settings."""
    settings = broker.settings
    public = settings.effective_public_url
    host = urlsplit(public).hostname or "localhost"
    identifier = settings.oai_repository_identifier or (host if DOMAIN.match(host) else "panbroker.invalid")
    repository = Repository(name=settings.oai_repository_name, base_url=public + "/oai", identifier=identifier,
                            admin_email=settings.oai_admin_email or f"panbroker@{identifier}", portal_url=public,
                            page_size=max(1, settings.oai_page_size))
    return OaiProvider(broker.store, broker.index, repository, broker.registry.facility_names)
