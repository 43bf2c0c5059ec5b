"""The one HTTP client every connector uses for outbound calls.

It promises: connect and read timeouts plus a hard ceiling on the whole call (a watchdog shuts the
socket of a call past its deadline, so neither a hung peer nor one dripping its headers or body can hold
a thread longer); a minimum transfer rate; bounded retries with backoff for idempotent methods only; a
circuit breaker per endpoint that counts timeouts, refusals, 5xx, slow drips and oversized answers as
failures; at most ``endpoint_concurrency`` calls in flight per endpoint (more are refused at once, so a
slow facility costs only its own answers); a cap on the response size; same-origin redirects only; and
the SSRF guard of ``connectors.ssrf`` on the address actually dialled.

Its sockets (the SSRF guard, the deadline watchdog) live in ``connectors.http_sockets``, its breakers in
``connectors.http_breakers``.
"""
from __future__ import annotations

import json as jsonlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import urljoin

import requests
from urllib3 import exceptions as urllib3_exceptions
from urllib3.util.retry import Retry

from connectors.errors import (
    AddressBlocked,
    CircuitOpen,
    EndpointBusy,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamTimeout,
    UpstreamTooLarge,
    UpstreamUnavailable,
)
from connectors.http_breakers import Breakers, origin_of
from connectors.http_sockets import GuardedAdapter, deadline_watch
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
    endpoint_concurrency: int = 8
    min_bytes_per_second: float = 1024.0
    min_rate_grace_seconds: float = 2.0  # the rate is judged only once a body has taken this long


#: what /metrics calls each way an outbound call can end without an answer (subclasses first)
OUTCOMES: dict[type, str] = {CircuitOpen: "circuit_open", EndpointBusy: "busy", UpstreamTimeout: "timeout",
                             UpstreamUnavailable: "unavailable", UpstreamTooLarge: "too_large",
                             UpstreamBadResponse: "bad_response", AddressBlocked: "blocked"}


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
        self.breakers = Breakers(limits.breaker_fail_max, limits.breaker_reset_seconds, limits.endpoint_concurrency)
        #: told ``(endpoint, outcome)`` after every call (the broker counts them for /metrics)
        self.observer: Callable[[str, str], None] | None = None

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
            adapter = GuardedAdapter(self.policy, max_retries=retry, pool_connections=32, pool_maxsize=8)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
        return session

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
        key = endpoint or origin_of(url)
        outcome = "error"
        try:
            response = self._request(key, method, url, headers, params, json, form, timeout)
            outcome = "server_error" if response.status_code >= 500 else (
                "client_error" if response.status_code >= 400 else "ok")
            return response
        except Exception as exc:
            outcome = next((name for kind, name in OUTCOMES.items() if isinstance(exc, kind)), "error")
            raise
        finally:
            if self.observer is not None:
                self.observer(key, outcome)

    def _request(self, key, method, url, headers, params, json, form, timeout) -> requests.Response:  # noqa: ANN001
        self.breakers.admit(key, hold=True)
        failure: BaseException | None = None
        try:
            return self._send(method.upper(), url, headers, params, json, timeout, form)
        except _ServerError as exc:
            failure = exc
            return exc.response
        except (UpstreamTimeout, UpstreamUnavailable, UpstreamTooLarge) as exc:
            failure = exc
            raise
        finally:
            self.breakers.record(key, failure, held=True)

    def _send(self, method, url, headers, params, json, timeout, form=None) -> requests.Response:  # noqa: ANN001
        total = min(timeout or self.limits.total_timeout, self.limits.total_timeout)
        deadline = time.monotonic() + total
        try:
            with deadline_watch(deadline):
                return self._send_within(method, url, headers, params, json, form, total, deadline)
        except (UpstreamUnavailable, UpstreamBadResponse) as exc:
            if time.monotonic() >= deadline - 0.01:  # the watchdog cut it: that is a timeout
                raise UpstreamTimeout(f"{origin_of(url)}: no complete answer within {total:g} s") from exc
            raise

    def _send_within(self, method, url, headers, params, json, form, total: float,  # noqa: ANN001, PLR0913
                     deadline: float) -> requests.Response:
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
                raise UpstreamTimeout(f"{origin_of(url)}: no connection within {per_phase[0]:g} s") from exc
            except requests.exceptions.ReadTimeout as exc:
                raise UpstreamTimeout(f"{origin_of(url)}: no answer within {per_phase[1]:g} s") from exc
            except requests.exceptions.RetryError as exc:
                raise UpstreamUnavailable(f"{origin_of(url)}: retries exhausted ({_reason(exc)})") from exc
            except requests.exceptions.RequestException as exc:
                if _timed_out(exc):
                    raise UpstreamTimeout(f"{origin_of(url)}: no answer within {per_phase[1]:g} s") from exc
                raise UpstreamUnavailable(f"{origin_of(url)}: {_reason(exc)}") from exc
            location = response.headers.get("Location")
            if response.is_redirect and location and origin_of(urljoin(url, location)) == origin_of(url):
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
        origin = origin_of(url)
        key = endpoint or origin
        self.breakers.admit(key, hold=False)  # a stream lasts the launch: it does not count as a call in flight
        failure: BaseException | None = None
        try:
            response = self._open_stream(url, headers, idle_seconds)
        except _ServerError as exc:
            failure = exc
            raise UpstreamBadResponse(f"{origin}: event stream refused: HTTP {exc.response.status_code}") from exc
        except (UpstreamTimeout, UpstreamUnavailable) as exc:
            failure = exc
            raise
        finally:
            self.breakers.record(key, failure, held=False)
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
                raise UpstreamTimeout(f"{origin_of(url)}: no answer within {idle_seconds:g} s") from exc
            raise UpstreamUnavailable(f"{origin_of(url)}: {_reason(exc)}") from exc
        if response.status_code >= 500:
            response.close()
            raise _ServerError(response)
        return response

    def _read_capped(self, response: requests.Response, deadline: float) -> None:
        """The body, read as it comes (one receive at a time): over the cap is ``UpstreamTooLarge``; past
        the deadline, or slower than the minimum rate once the grace time has passed, ``UpstreamTimeout``."""
        cap, origin = self.limits.max_response_bytes, origin_of(response.url)
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            response.close()
            raise UpstreamTooLarge(f"{origin}: response of {declared} bytes exceeds {cap}")
        chunks, size, started = [], 0, time.monotonic()
        try:
            while True:
                chunk = response.raw.read1(65536, decode_content=True)
                if not chunk:
                    break
                size += len(chunk)
                if size > cap:
                    raise UpstreamTooLarge(f"{origin}: response exceeds {cap} bytes")
                now = time.monotonic()
                if now > deadline:
                    raise UpstreamTimeout(f"{origin}: body not complete before the deadline")
                elapsed = now - started
                if elapsed > self.limits.min_rate_grace_seconds and size / elapsed < self.limits.min_bytes_per_second:
                    raise UpstreamTimeout(f"{origin}: body arriving at {size / elapsed:.0f} B/s, under the "
                                          f"{self.limits.min_bytes_per_second:g} B/s minimum")
                chunks.append(chunk)
        except (requests.exceptions.RequestException, urllib3_exceptions.HTTPError, OSError) as exc:
            if time.monotonic() >= deadline - 0.01:
                raise UpstreamTimeout(f"{origin}: body not complete before the deadline") from exc
            raise UpstreamUnavailable(f"{origin}: body interrupted ({_reason(exc)})") from exc
        finally:
            response.close()
        response._content = b"".join(chunks)  # noqa: SLF001 - what requests itself sets after reading


def json_body(response: requests.Response) -> Any:
    """The response's JSON, or ``UpstreamBadResponse`` naming what came instead (a redirect the client
    did not follow is no answer, whatever its body holds)."""
    if 300 <= response.status_code < 400:
        where = origin_of(urljoin(response.url, response.headers.get("Location", ""))) if response.headers.get(
            "Location") else "nowhere"
        raise UpstreamBadResponse(f"{origin_of(response.url)}: redirected to {where} (HTTP {response.status_code}), "
                                  "which is not followed")
    try:
        return response.json()
    except ValueError as exc:
        snippet = response.text[:80].replace("\n", " ")
        raise UpstreamBadResponse(f"{origin_of(response.url)}: expected JSON, got {snippet!r}") from exc


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
