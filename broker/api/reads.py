"""Public reads of the registry and the catalogue, answered from serialised bodies kept per process and
checked against the registry stamp (one primary-key read), with ETags and 304 on ``If-None-Match``.
``ReadReplay`` answers a repeated read (same path, query and ``Accept-Encoding``, no cookie, no
credentials) with the very response the handler gave, before routing, validation and Flask.

Safe because these reads are the same for every caller and every write to what they show (an
operator's edit, a health round, an EOSC sync, from any process) bumps the stamp in its own
transaction; the stamp is read before the data, so a body is never kept under a newer stamp than it
shows.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import flask
from anyio import to_thread
from connexion import request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.store import Store

MAX_KEPT_BYTES = 64 * 1024 * 1024  # per process, for the handlers' bodies and again for the replayed answers
STAMP_HEADER = "X-Panbroker-Registry-Stamp"  # handler -> ReadReplay only; never sent to the client


@dataclass(frozen=True)
class Body:
    """A serialised answer and its entity tag (quoted, as in the header)."""

    data: bytes
    etag: str
    stamp: int = -1  # the registry stamp it was built under (-1: not kept)


class Kept:
    """Values by key, all built under one registry stamp (a newer stamp empties it), least recently used
    out beyond ``max_bytes`` in all."""

    def __init__(self, max_bytes: int = MAX_KEPT_BYTES):
        self.max_bytes = max_bytes
        self._stamp: int | None = None
        self._items: OrderedDict[tuple, tuple[object, int]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def holds(self, key: tuple) -> bool:
        """Whether anything is kept under ``key`` (of whatever stamp): worth reading the stamp for."""
        return key in self._items

    def get(self, stamp: int, key: tuple) -> object | None:
        """The value kept under ``key`` if it was built under ``stamp``; another stamp (newer, or lower after
        the stamp row was emptied by hand) empties the lot."""
        with self._lock:
            if stamp != self._stamp:
                self._clear(None if stamp < 0 else stamp)
                return None
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key][0]

    def put(self, stamp: int, key: tuple, value: object, size: int) -> None:
        with self._lock:
            if stamp < 0 or size > self.max_bytes:
                return
            if self._stamp is None or stamp > self._stamp:
                self._clear(stamp)
            if stamp != self._stamp:
                return  # built under an older stamp than one already seen: never kept
            old = self._items.pop(key, None)
            self._size += size - (old[1] if old else 0)
            self._items[key] = (value, size)
            while self._size > self.max_bytes:
                self._size -= self._items.popitem(last=False)[1][1]

    def _clear(self, stamp: int | None) -> None:
        self._items.clear()
        self._size = 0
        self._stamp = stamp


class ReadCache:
    """Bodies of public reads by request key, kept while the registry stamp they were built under is current."""

    def __init__(self, store: Store, max_bytes: int = MAX_KEPT_BYTES):
        self.store = store
        self.kept = Kept(max_bytes)

    def get(self, key: tuple, build: Callable[[], Body]) -> Body:
        stamp = self.store.registry_stamp()  # before the data: see the module's docstring
        body = self.kept.get(stamp, key)
        if isinstance(body, Body):
            return body
        if stamp < 0:  # no stamp row (a database emptied by hand): nothing can be kept safely
            return build()
        body = dataclasses.replace(build(), stamp=stamp)
        self.kept.put(stamp, key, body, len(body.data))
        return body


_CACHES: weakref.WeakKeyDictionary[Store, ReadCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def cache_of(store: Store) -> ReadCache:
    with _CACHES_LOCK:
        cache = _CACHES.get(store)
        if cache is None:
            cache = _CACHES[store] = ReadCache(store)
        return cache


def json_body(value: object, etag: str | None = None) -> Body:
    """``value`` as compact JSON; its tag is a digest of the bytes unless ``etag`` is given."""
    data = json.dumps(value, separators=(",", ":")).encode()
    return Body(data, etag or digest_tag(data))


def digest_tag(data: bytes) -> str:
    return '"' + hashlib.blake2b(data, digest_size=8).hexdigest() + '"'


def matches(if_none_match: str | None, etag: str) -> str | None:
    """The tag of ``If-None-Match`` that names ``etag`` (weak comparison, as RFC 9110 asks), if any."""
    if not if_none_match:
        return None
    if if_none_match.strip() == "*":
        return etag
    bare = _bare(etag)
    return next((tag.strip() for tag in if_none_match.split(",") if _bare(tag) == bare), None)


def _bare(tag: str) -> str:
    """A tag as this module made it: without W/, nor the ":br"/":gzip" the compression step appends."""
    tag = tag.strip().removeprefix("W/")
    return tag.split(":", 1)[0] + '"' if ":" in tag and tag.endswith('"') else tag


def answer(body: Body, content_type: str = "application/json", headers: dict[str, str] | None = None,
           status: int = 200) -> flask.Response:
    """The body, or 304 Not Modified when the request's ``If-None-Match`` names its tag."""
    extra = {"ETag": body.etag, "Cache-Control": "no-cache", **(headers or {})}
    if body.stamp >= 0:
        extra[STAMP_HEADER] = str(body.stamp)
    named = matches(request.headers.get("If-None-Match"), body.etag) if status == 200 else None
    if named:  # the tag as the client holds it (a compressed answer's carries ":br")
        return flask.Response(status=304, headers={**extra, "ETag": named})
    return flask.Response(body.data, status=status, headers=extra, content_type=content_type)


@dataclass(frozen=True)
class _Recorded:
    headers: list[tuple[bytes, bytes]]
    body: bytes
    etag: str
    stamp: int


_REPLAYED_ON_304 = frozenset({b"etag", b"cache-control", b"vary"})
_STAMP_KEY = STAMP_HEADER.lower().encode()


class ReadReplay:
    """ASGI middleware: records the 200s the read handlers mark with the registry stamp and replays one
    to an identical anonymous request while the stamp (read in a thread, as the handler would) is the
    same. Anything else, or any doubt, goes down the normal path."""

    def __init__(self, app: ASGIApp, store: Store, max_bytes: int = MAX_KEPT_BYTES):
        self.app = app
        self.store = store
        self.kept = Kept(max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _replay_key(scope)
        if key is None:
            await self.app(scope, receive, _without_stamp(send))
            return
        if self.kept.holds(key):
            try:
                current = await to_thread.run_sync(self.store.registry_stamp)
            except Exception:  # noqa: BLE001 - the normal path tells the fault properly
                current = -1
            recorded = self.kept.get(current, key)
            if isinstance(recorded, _Recorded):
                await _replay(recorded, dict(scope["headers"]).get(b"if-none-match"), send)
                return
        await self.app(scope, receive, self._recording(key, send))

    def _recording(self, key: tuple, send: Send) -> Send:
        start: list[Message] = []
        chunks: list[bytes] = []

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                stamp = next((v for k, v in headers if k.lower() == _STAMP_KEY), None)
                message = {**message, "headers": [(k, v) for k, v in headers if k.lower() != _STAMP_KEY]}
                if stamp is not None and message["status"] == 200 and not any(
                        k.lower() == b"set-cookie" for k, _ in headers):
                    start.append({**message, "stamp": int(stamp)})
            elif message["type"] == "http.response.body" and start:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    self._keep(key, start[0], b"".join(chunks))
            await send(message)

        return sending

    def _keep(self, key: tuple, start: Message, body: bytes) -> None:
        etag = next((v.decode("latin-1") for k, v in start["headers"] if k.lower() == b"etag"), "")
        recorded = _Recorded(start["headers"], body, etag, start["stamp"])
        self.kept.put(start["stamp"], key, recorded, len(body) + sum(len(k) + len(v) for k, v in start["headers"]))


def _replay_key(scope: Scope) -> tuple | None:
    """What identifies a replayable request: an anonymous GET of the API, by path, query and encoding."""
    if scope["type"] != "http" or scope.get("method") != "GET" or not scope.get("path", "").startswith("/api/"):
        return None
    headers = dict(scope.get("headers") or [])
    if b"cookie" in headers or b"authorization" in headers:
        return None
    return scope["path"], scope.get("query_string", b""), headers.get(b"accept-encoding", b"")


async def _replay(recorded: _Recorded, if_none_match: bytes | None, send: Send) -> None:
    named = matches(if_none_match.decode("latin-1"), recorded.etag) if if_none_match and recorded.etag else None
    if named:
        headers = [(k, v) for k, v in recorded.headers if k.lower() in _REPLAYED_ON_304 and k.lower() != b"etag"]
        await send({"type": "http.response.start", "status": 304,
                    "headers": [*headers, (b"etag", named.encode("latin-1"))]})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": recorded.headers})
    await send({"type": "http.response.body", "body": recorded.body})


def _without_stamp(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [(k, v) for k, v in message.get("headers", [])
                                              if k.lower() != _STAMP_KEY]}
        await send(message)

    return sending
