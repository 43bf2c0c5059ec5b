"""What keeps any one client from holding the broker: launch event streams served on the event loop
(no request thread waits on them, and a stream ends when its client goes), a cap on concurrent streams
and on concurrent expensive searches per client, and a cap on requests waiting for a request thread.
Anything over a limit is answered at once: 429 (this client) or 503 (everyone), with Retry-After.
"""
from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import typing as t
from collections import Counter
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

from anyio import to_thread
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from broker.api.context import principal
from broker.api.security import bearer_info, session_info
from panmodel.errors import BrokerError, Unauthenticated
from panmodel.states import FINAL_LAUNCH_STATES

EVENTS_PATH = re.compile(r"^/api/v1/launches/(?P<launch_id>[^/]{1,36})/events$")
SSE_MAX_SECONDS = 600
SSE_POLL_SECONDS = 1.0  # one query per open stream per second
SSE_KEEPALIVE_SECONDS = 15


def _expensive(scope: Scope) -> bool:
    """Requests that fan out to facilities: live searches and lookups of a dataset by pid."""
    path, query = scope.get("path", ""), parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if path in ("/api/v1/datasets", "/search", "/panosc/api/Datasets"):
        return query.get("mode", [""])[0] == "live"
    return path.startswith(("/api/v1/datasets/", "/datasets/", "/panosc/api/Datasets/"))


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _cross_site_cookie_write(scope: Scope) -> bool:
    """A write to the API carried by the browser's session cookie from a page of another site."""
    if scope.get("method") in SAFE_METHODS or not scope.get("path", "").startswith(("/api/", "/panosc/")):
        return False
    headers = dict(scope.get("headers") or [])
    if b"authorization" in headers or b"panbroker_session=" not in headers.get(b"cookie", b""):
        return False
    origin = headers.get(b"origin", b"").decode("latin-1")
    if headers.get(b"sec-fetch-site", b"") == b"cross-site":
        return True
    return bool(origin) and urlsplit(origin).netloc != headers.get(b"host", b"").decode("latin-1")


class _Counts:
    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, key: str, limit: int) -> t.Iterator[bool]:
        """Yields whether ``key`` got one of its ``limit`` slots (released on exit)."""
        with self._lock:
            granted = self._counts[key] < limit
            if granted:
                self._counts[key] += 1
        try:
            yield granted
        finally:
            if granted:
                with self._lock:
                    self._counts[key] -= 1
                    if self._counts[key] <= 0:
                        del self._counts[key]


class ServingLimits:
    """Applies the limits above to each request, then hands it on to ``app``."""

    def __init__(self, broker: t.Any):
        self.broker = broker
        self.settings = broker.settings
        self.counts = _Counts()

    async def __call__(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        client = (scope.get("client") or ("unknown", 0))[0]
        if _cross_site_cookie_write(scope):
            await problem(send, 403, "forbidden", "Cross-site request refused",
                          "A write authenticated by the session cookie must come from this site's pages "
                          "(its Origin names another site); scripts use a bearer token")
            return
        match = EVENTS_PATH.match(scope.get("path", ""))
        if match and scope.get("method") == "GET" and b"format=json" not in scope.get("query_string", b""):
            await self._events(scope, receive, send, match.group("launch_id"), client)
            return
        with self.counts.slot("threads", self.settings.max_waiting_requests) as admitted:
            if not admitted:
                await problem(send, 503, "overloaded", "Broker busy",
                              "The broker is answering as many requests as it can: retry in a moment", retry=1)
                return
            if _expensive(scope):
                with self.counts.slot(f"search:{client}", self.settings.max_searches_per_client) as own:
                    if not own:
                        await problem(send, 429, "too-many-requests", "Too many searches at once",
                                      f"At most {self.settings.max_searches_per_client} searches that ask the "
                                      "facilities may run at once per client: wait for one to end", retry=1)
                        return
                    await app(scope, receive, send)
                    return
            await app(scope, receive, send)

    # -- launch events ------------------------------------------------------------------------
    async def _events(self, scope: Scope, receive: Receive, send: Send, launch_id: str, client: str) -> None:
        launches = self.broker.launches
        try:
            caller = await to_thread.run_sync(self._caller, scope)
            events = await to_thread.run_sync(launches.events, caller, launch_id)
        except BrokerError as exc:
            await problem(send, exc.status, exc.type_suffix, exc.title, exc.detail, headers=exc.headers)
            return
        key = f"stream:{caller.subject if caller.subject != 'anonymous' else client}"
        with self.counts.slot(key, self.settings.max_streams_per_client) as granted:
            if not granted:
                await problem(send, 429, "too-many-requests", "Too many event streams",
                              f"At most {self.settings.max_streams_per_client} event streams may be open at once "
                              "per client: close one, or poll with format=json", retry=5)
                return
            with self.counts.slot("streams", self.settings.max_streams) as room:
                if not room:
                    await problem(send, 503, "overloaded", "Too many event streams",
                                  "The broker holds as many event streams as it can: poll with format=json", retry=5)
                    return
                await self._stream(send, receive, caller, launch_id, events)

    def _caller(self, scope: Scope) -> t.Any:
        request = Request(scope)
        info = None
        authorization = request.headers.get("authorization", "")
        if authorization[:7].lower() == "bearer ":
            info = bearer_info(authorization[7:].strip(), request)
            if info is None:
                raise Unauthenticated("the bearer token is not valid; send Authorization: Bearer <token>")
        elif request.cookies.get("panbroker_session"):
            info = session_info(request.cookies["panbroker_session"], request)
        if info is None:
            raise Unauthenticated("sign in, or send Authorization: Bearer <token>")
        return principal(info)

    async def _stream(self, send: Send, receive: Receive, caller: t.Any, launch_id: str,
                      pending: list[t.Any]) -> None:
        gone = asyncio.Event()

        async def watch_disconnect() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    gone.set()
                    return

        watcher = asyncio.ensure_future(watch_disconnect())
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no")]})
        launches, started, seen, quiet_since = self.broker.launches, time.monotonic(), 0, time.monotonic()
        final = (await to_thread.run_sync(launches.get, caller, launch_id)).final
        try:
            while not gone.is_set():
                chunks = []
                for event in pending:
                    seen = event.id
                    final = final or event.state in FINAL_LAUNCH_STATES  # every move is an event
                    chunks.append(f"id: {event.id}\nevent: {event.state.value}\ndata: {json.dumps(event.as_dict())}\n\n")
                if not chunks and time.monotonic() - quiet_since > SSE_KEEPALIVE_SECONDS:
                    chunks.append(": keep-alive\n\n")  # a client or proxy that went away shows up here
                if chunks:
                    quiet_since = time.monotonic()
                    await send({"type": "http.response.body", "body": "".join(chunks).encode(), "more_body": True})
                if final or time.monotonic() - started > SSE_MAX_SECONDS:
                    break
                try:
                    await asyncio.wait_for(gone.wait(), SSE_POLL_SECONDS)
                except asyncio.TimeoutError:
                    pass
                pending = await to_thread.run_sync(lambda: launches.events(caller, launch_id, after=seen))
            if not gone.is_set():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went while we wrote
        finally:
            watcher.cancel()


async def problem(send: Send, status: int, suffix: str, title: str, detail: str, *, retry: int | None = None,
                  headers: dict[str, str] | None = None) -> None:
    from broker.api.problems import TYPE_PREFIX

    body = json.dumps({"type": TYPE_PREFIX + suffix, "title": title, "status": status, "detail": detail}).encode()
    extra = [(k.lower().encode(), str(v).encode()) for k, v in (headers or {}).items()]
    if retry is not None:
        extra.append((b"retry-after", str(retry).encode()))
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})
