"""Public reads of the registry and the catalogue, answered from serialised bodies kept per process and
checked against the registry stamp (one primary-key read), with ETags and 304 on ``If-None-Match``.

Safe because these reads are the same for every caller and every write to what they show (an
operator's edit, a health round, an EOSC sync, from any process) bumps the stamp in its own
transaction; the stamp is read before the data, so a body is never kept under a newer stamp than it
shows.
"""
from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import flask
from connexion import request

from registry.store import Store

MAX_ENTRIES = 1024


@dataclass(frozen=True)
class Body:
    """A serialised answer and its entity tag (quoted, as in the header)."""

    data: bytes
    etag: str


class ReadCache:
    """Bodies by request key, valid for one registry stamp; least recently used first out."""

    def __init__(self, store: Store, max_entries: int = MAX_ENTRIES):
        self.store = store
        self.max_entries = max_entries
        self._stamp: int | None = None
        self._bodies: OrderedDict[tuple, Body] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple, build: Callable[[], Body]) -> Body:
        stamp = self.store.registry_stamp()  # before the data: see the module's docstring
        if stamp < 0:  # no stamp row (a database emptied by hand): nothing can be kept safely
            with self._lock:
                self._bodies.clear()
                self._stamp = None
            return build()
        with self._lock:
            if stamp != self._stamp:
                self._bodies.clear()
                self._stamp = stamp
            body = self._bodies.get(key)
            if body is not None:
                self._bodies.move_to_end(key)
                return body
        body = build()
        with self._lock:
            if stamp == self._stamp:
                self._bodies[key] = body
                if len(self._bodies) > self.max_entries:
                    self._bodies.popitem(last=False)
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
    bare = etag.removeprefix("W/")
    return next((tag.strip() for tag in if_none_match.split(",") if _bare(tag) == bare), None)


def _bare(tag: str) -> str:
    """A tag as this module made it: without W/, nor the ":br"/":gzip" the compression step appends."""
    tag = tag.strip().removeprefix("W/")
    return tag.split(":", 1)[0] + '"' if ":" in tag and tag.endswith('"') else tag


def answer(body: Body, content_type: str = "application/json", headers: dict[str, str] | None = None,
           status: int = 200) -> flask.Response:
    """The body, or 304 Not Modified when the request's ``If-None-Match`` names its tag."""
    extra = {"ETag": body.etag, "Cache-Control": "no-cache", **(headers or {})}
    named = matches(request.headers.get("If-None-Match"), body.etag) if status == 200 else None
    if named:  # the tag as the client holds it (a compressed answer's carries ":br")
        return flask.Response(status=304, headers={**extra, "ETag": named})
    return flask.Response(body.data, status=status, headers=extra, content_type=content_type)
