"""The one HTTP client every connector uses for outbound calls.

It promises: connect and read timeouts plus a ceiling on the whole call; bounded retries with backoff
for idempotent methods only; a circuit breaker per endpoint; a cap on the response size; same-origin
redirects only; and the SSRF guard of ``connectors.ssrf`` on the address actually dialled.
"""
from __future__ import annotations

import json as jsonlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator, Mapping
from urllib.parse import urljoin, urlsplit

import pybreaker
import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3 import exceptions as urllib3_exceptions
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util.retry import Retry

from connectors.errors import (
    AddressBlocked,
    CircuitOpen,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from connectors.ssrf import AddressPolicy

log = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
MAX_REDIRECTS = 3
USER_AGENT = "PaN-Broker/0.1 (+https://github.com/panbroker)"


@dataclass(frozen=True)
class HttpLimits:
    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    total_timeout: float = 30.0
    max_response_bytes: int = 10 * 1024 * 1024
    retries: int = 2
    breaker_fail_max: int = 5
    breaker_reset_seconds: float = 60.0


def _guarded_pools(policy: AddressPolicy) -> dict[str, type]:
    """urllib3 pool classes whose connections dial only addresses the policy allows."""

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

    http_conn = type("GuardedHTTPConnection", (HTTPConnection,), {"_new_conn": new_conn(HTTPConnection)})
    https_conn = type("GuardedHTTPSConnection", (HTTPSConnection,), {"_new_conn": new_conn(HTTPSConnection)})
    return {
        "http": type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, policy: AddressPolicy, **kwargs: Any):
        self._pool_classes = _guarded_pools(policy)
        super().__init__(**kwargs)

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):  # noqa: ANN001
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes


class _ServerError(Exception):
    """A 5xx answer: counted by the breaker, then handed back to the caller as a response."""

    def __init__(self, response: requests.Response):
        self.response = response


class HttpClient:
    """Thread-safe: each thread gets its own ``requests.Session``; breakers are shared."""

    def __init__(self, policy: AddressPolicy, limits: HttpLimits = HttpLimits()):
        self.policy = policy
        self.limits = limits
        self._local = threading.local()
        self._breakers: dict[str, pybreaker.CircuitBreaker] = {}
        self._lock = threading.Lock()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            retry = Retry(
                total=self.limits.retries,
                connect=self.limits.retries,
                read=self.limits.retries,
                status=self.limits.retries,
                redirect=0,
                backoff_factor=0.2,
                backoff_max=2.0,
                status_forcelist=(502, 503, 504),
                allowed_methods=IDEMPOTENT_METHODS,
                raise_on_status=False,
                respect_retry_after_header=False,
            )
            session = requests.Session()
            session.trust_env = False  # a proxy from the environment would bypass the SSRF guard
            session.headers["User-Agent"] = USER_AGENT
            adapter = _GuardedAdapter(self.policy, max_retries=retry, pool_connections=32, pool_maxsize=8)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
        return session

    def breaker(self, key: str) -> pybreaker.CircuitBreaker:
        with self._lock:
            breaker = self._breakers.get(key)
            if breaker is None:
                breaker = pybreaker.CircuitBreaker(
                    fail_max=self.limits.breaker_fail_max,
                    reset_timeout=self.limits.breaker_reset_seconds,
                    exclude=[AddressBlocked, UpstreamBadResponse],
                    throw_new_error_on_trip=False,
                    name=key,
                )
                self._breakers[key] = breaker
            return breaker

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", url, **kwargs)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        form: Mapping[str, str] | None = None,
        timeout: float | None = None,
        endpoint: str | None = None,
    ) -> requests.Response:
        """Send one request; 4xx and 5xx come back as responses, faults of transport as ``UpstreamError``.

        ``timeout`` caps the whole call (connect, retries, body); ``endpoint`` names the circuit breaker
        (default: the URL's origin).
        """
        origin = _origin(url)
        breaker = self.breaker(endpoint or origin)
        try:
            return breaker.call(self._send, method.upper(), url, headers, params, json, timeout, form)
        except _ServerError as exc:
            return exc.response
        except pybreaker.CircuitBreakerError as exc:
            raise CircuitOpen(
                f"{origin}: {self.limits.breaker_fail_max} consecutive failures; "
                f"calls paused for {self.limits.breaker_reset_seconds:g} s"
            ) from exc

    def _send(self, method, url, headers, params, json, timeout, form=None) -> requests.Response:  # noqa: ANN001
        total = min(timeout or self.limits.total_timeout, self.limits.total_timeout)
        deadline = time.monotonic() + total
        per_phase = (min(self.limits.connect_timeout, total), min(self.limits.read_timeout, total))
        session = self._session()
        for _ in range(MAX_REDIRECTS + 1):
            log.debug("%s %s", method, _without_query(url))
            try:
                response = session.request(
                    method, url, headers=headers, params=params, json=json, data=form,
                    timeout=per_phase, allow_redirects=False, stream=True,
                )
            except AddressBlocked:
                raise
            except requests.exceptions.ConnectTimeout as exc:
                raise UpstreamTimeout(f"{_origin(url)}: no connection within {per_phase[0]:g} s") from exc
            except requests.exceptions.ReadTimeout as exc:
                raise UpstreamTimeout(f"{_origin(url)}: no answer within {per_phase[1]:g} s") from exc
            except requests.exceptions.RetryError as exc:
                raise UpstreamUnavailable(f"{_origin(url)}: retries exhausted ({_reason(exc)})") from exc
            except requests.exceptions.RequestException as exc:
                if _timed_out(exc):
                    raise UpstreamTimeout(f"{_origin(url)}: no answer within {per_phase[1]:g} s") from exc
                raise UpstreamUnavailable(f"{_origin(url)}: {_reason(exc)}") from exc
            location = response.headers.get("Location")
            if response.is_redirect and location and _origin(urljoin(url, location)) == _origin(url):
                response.close()
                url, params = urljoin(url, location), None
                if response.status_code == 303:
                    method, json, form = "GET", None, None
                continue
            break
        self._read_capped(response, deadline)
        if response.status_code >= 500:
            raise _ServerError(response)
        return response

    def events(self, url: str, *, headers: Mapping[str, str] | None = None, until: float,
               idle_seconds: float = 40.0, endpoint: str | None = None) -> Iterator[dict[str, Any]]:
        """Follow a server-sent event stream: each ``data:`` line's JSON, until the stream ends or the
        monotonic time ``until``. Opening it goes through the breaker and the guard like any request; a
        non-200 answer is ``UpstreamBadResponse``; silence longer than ``idle_seconds`` is
        ``UpstreamTimeout``; more than the response cap in all is ``UpstreamBadResponse``."""
        origin = _origin(url)
        try:
            response = self.breaker(endpoint or origin).call(self._open_stream, url, headers, idle_seconds)
        except pybreaker.CircuitBreakerError as exc:
            raise CircuitOpen(f"{origin}: calls paused after consecutive failures") from exc
        except _ServerError as exc:
            raise UpstreamBadResponse(f"{origin}: event stream refused: HTTP {exc.response.status_code}") from exc
        size = 0
        try:
            if response.status_code != 200:
                raise UpstreamBadResponse(f"{origin}: event stream refused: HTTP {response.status_code}")
            for line in response.iter_lines(chunk_size=1, decode_unicode=False):
                size += len(line) + 1
                if size > self.limits.max_response_bytes:
                    raise UpstreamBadResponse(f"{origin}: event stream exceeds {self.limits.max_response_bytes} bytes")
                if line.startswith(b"data:"):
                    try:
                        event = jsonlib.loads(line[5:].strip() or b"null")
                    except ValueError as exc:
                        raise UpstreamBadResponse(f"{origin}: an event is not JSON: {line[:80]!r}") from exc
                    if isinstance(event, dict):
                        yield event
                if time.monotonic() > until:
                    return
        except requests.exceptions.RequestException as exc:
            if _timed_out(exc):
                raise UpstreamTimeout(f"{origin}: event stream silent for {idle_seconds:g} s") from exc
            raise UpstreamUnavailable(f"{origin}: event stream interrupted ({_reason(exc)})") from exc
        finally:
            response.close()

    def _open_stream(self, url: str, headers: Mapping[str, str] | None, idle_seconds: float) -> requests.Response:
        try:
            response = self._session().get(url, headers={"Accept": "text/event-stream", **(headers or {})},
                                           timeout=(self.limits.connect_timeout, idle_seconds),
                                           allow_redirects=False, stream=True)
        except AddressBlocked:
            raise
        except requests.exceptions.RequestException as exc:
            if _timed_out(exc):
                raise UpstreamTimeout(f"{_origin(url)}: no answer within {idle_seconds:g} s") from exc
            raise UpstreamUnavailable(f"{_origin(url)}: {_reason(exc)}") from exc
        if response.status_code >= 500:
            response.close()
            raise _ServerError(response)
        return response

    def _read_capped(self, response: requests.Response, deadline: float) -> None:
        cap = self.limits.max_response_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            response.close()
            raise UpstreamBadResponse(f"{_origin(response.url)}: response of {declared} bytes exceeds {cap}")
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(chunk_size=65536):
                size += len(chunk)
                if size > cap:
                    raise UpstreamBadResponse(f"{_origin(response.url)}: response exceeds {cap} bytes")
                if time.monotonic() > deadline:
                    raise UpstreamTimeout(f"{_origin(response.url)}: body not complete before the deadline")
                chunks.append(chunk)
        except requests.exceptions.RequestException as exc:
            raise UpstreamUnavailable(f"{_origin(response.url)}: body interrupted ({_reason(exc)})") from exc
        finally:
            response.close()
        response._content = b"".join(chunks)  # noqa: SLF001 - what requests itself sets after reading


def json_body(response: requests.Response) -> Any:
    """The response's JSON, or ``UpstreamBadResponse`` naming what came instead."""
    try:
        return response.json()
    except ValueError as exc:
        snippet = response.text[:80].replace("\n", " ")
        raise UpstreamBadResponse(f"{_origin(response.url)}: expected JSON, got {snippet!r}") from exc


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def _without_query(url: str) -> str:
    return url.split("?", 1)[0]


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (causes, contexts, urllib3's ``reason``, wrapped arguments)."""
    seen: list[BaseException] = []
    pending = [exc]
    while pending and len(seen) < 20:
        current = pending.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        pending.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
        pending.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
    return [e for e in seen if isinstance(e, BaseException)]


def _timed_out(exc: BaseException) -> bool:
    # urllib3's NewConnectionError subclasses its TimeoutError for history's sake: a refusal is no timeout
    return any(isinstance(e, (TimeoutError, urllib3_exceptions.TimeoutError))
               and not isinstance(e, urllib3_exceptions.NewConnectionError) for e in _causes(exc))


def _reason(exc: Exception) -> str:
    """A short, secret-free reason for a transport fault (the innermost cause's class and message)."""
    inner = _causes(exc)[-1]
    text = str(inner).split("(Caused by", 1)[0].strip() or type(inner).__name__
    return text[:200]


__all__ = ["HttpClient", "HttpLimits", "json_body", "UpstreamError"]
