"""The sockets of outbound calls: each dials only an address the SSRF guard (``connectors.ssrf``) allows,
checked on the address actually dialled, and is shut when the call it serves passes its deadline, so neither
a hung peer nor one dripping its headers or body can hold a thread longer.

``connectors.http`` mounts ``GuardedAdapter`` on its sessions and makes each call inside ``deadline_watch``.
"""
from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection

from connectors.ssrf import AddressPolicy


class _Watchdog:
    """Shuts down the sockets of calls that outlive their deadline (one daemon thread for all)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, socket.socket]] = []
        self._live: set[int] = set()
        self._ids = itertools.count()
        self._wake = threading.Condition()
        threading.Thread(target=self._run, name="http-watchdog", daemon=True).start()

    def watch(self, sock: socket.socket, deadline: float) -> int:
        with self._wake:
            token = next(self._ids)
            heapq.heappush(self._heap, (deadline, token, sock))
            self._live.add(token)
            self._wake.notify()
            return token

    def release(self, token: int) -> None:
        with self._wake:
            self._live.discard(token)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._wake.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                _deadline, token, sock = heapq.heappop(self._heap)
                if token not in self._live:
                    continue
                self._live.discard(token)
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the blocked recv returns; urllib3 drops the connection
            except OSError:
                pass


_WATCHDOG = _Watchdog()


@dataclass
class _Call:
    """The call this thread is making: its deadline and the sockets watched for it."""

    deadline: float
    tokens: list[int] = field(default_factory=list)


_CURRENT = threading.local()


@contextmanager
def deadline_watch(deadline: float) -> Iterator[None]:
    """The sockets this thread's requests use inside the block are shut once the monotonic ``deadline`` passes."""
    _CURRENT.call = call = _Call(deadline)
    try:
        yield
    finally:
        _CURRENT.call = None
        for token in call.tokens:
            _WATCHDOG.release(token)


def _guarded_pools(policy: AddressPolicy) -> dict[str, type]:
    """urllib3 pool classes whose connections dial only addresses the policy allows, and whose sockets
    the watchdog shuts when the call they serve passes its deadline."""

    def new_conn(base: type):
        def _new_conn(self):  # noqa: ANN001 - urllib3 hook
            hostname = self._dns_host
            address = policy.resolve(hostname, self.port)[0]
            self._dns_host = address  # TLS still verifies and sends SNI for self.host
            try:
                return base._new_conn(self)
            finally:
                self._dns_host = hostname

        return _new_conn

    def getresponse(base: type):
        def _getresponse(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202 - urllib3 hook
            call = getattr(_CURRENT, "call", None)
            if call is not None and self.sock is not None:
                call.tokens.append(_WATCHDOG.watch(self.sock, call.deadline))
            return base.getresponse(self, *args, **kwargs)

        return _getresponse

    http_conn = type("GuardedHTTPConnection", (HTTPConnection,), {
        "_new_conn": new_conn(HTTPConnection), "getresponse": getresponse(HTTPConnection)})
    https_conn = type("GuardedHTTPSConnection", (HTTPSConnection,), {
        "_new_conn": new_conn(HTTPSConnection), "getresponse": getresponse(HTTPSConnection)})
    return {
        "http": type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections are guarded and watched as above."""

    def __init__(self, policy: AddressPolicy, **kwargs: Any):
        self._pool_classes = _guarded_pools(policy)
        super().__init__(**kwargs)

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):  # noqa: ANN001
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes
