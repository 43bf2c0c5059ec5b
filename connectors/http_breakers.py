"""The circuit breaker of each endpoint the HTTP client calls, and the cap on its calls in flight.

A breaker (pybreaker) counts the failures of its endpoint and, after ``fail_max`` in a row, refuses calls
at once until ``reset_seconds`` have passed; then one trial call decides whether it closes again. pybreaker
holds its lock for the whole of ``call``: here it is taken only to admit a call and to record its outcome,
never across the call itself.
"""
from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import pybreaker

from connectors.errors import CircuitOpen, EndpointBusy


def origin_of(url: str) -> str:
    """``scheme://host:port`` of ``url``: the endpoint a call counts against unless it names another."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def _replay(failure: BaseException | None) -> None:
    if failure is not None:
        raise failure


class Breakers:
    """One breaker per endpoint key, and the count of calls in flight to each; thread-safe."""

    def __init__(self, fail_max: int, reset_seconds: float, concurrency: int):
        self.fail_max = fail_max
        self.reset_seconds = reset_seconds
        self.concurrency = concurrency
        self._breakers: dict[str, pybreaker.CircuitBreaker] = {}
        self._in_flight: dict[str, int] = {}
        self._trials: set[str] = set()
        self._lock = threading.Lock()

    def breaker(self, key: str) -> pybreaker.CircuitBreaker:
        with self._lock:
            breaker = self._breakers.get(key)
            if breaker is None:
                breaker = pybreaker.CircuitBreaker(fail_max=self.fail_max, reset_timeout=self.reset_seconds,
                                                   throw_new_error_on_trip=False, name=key)
                self._breakers[key] = breaker
            return breaker

    def admit(self, key: str, *, hold: bool) -> None:
        """Let a call to ``key`` go ahead, or refuse it at once: ``CircuitOpen`` while its circuit is
        open (one trial call once the reset time has passed), ``EndpointBusy`` when ``hold`` and
        ``concurrency`` calls are already in flight."""
        breaker = self.breaker(key)
        with self._lock:
            state = breaker.current_state
            if state != pybreaker.STATE_CLOSED:
                opened = breaker._state_storage.opened_at  # noqa: SLF001 - pybreaker keeps it there
                waited = time.time() - opened.timestamp() if opened else float("inf")
                if (state == pybreaker.STATE_OPEN and waited < self.reset_seconds) or key in self._trials:
                    raise CircuitOpen(f"{key}: {self.fail_max} consecutive failures; calls paused "
                                      f"for {self.reset_seconds:g} s")
                self._trials.add(key)  # this call is the trial
            if hold:
                if self._in_flight.get(key, 0) >= self.concurrency:
                    self._trials.discard(key)
                    raise EndpointBusy(f"{key}: {self.concurrency} calls already waiting on it; "
                                       "not asked again until one ends")
                self._in_flight[key] = self._in_flight.get(key, 0) + 1

    def record(self, key: str, failure: BaseException | None, *, held: bool) -> None:
        """Tell the breaker how the call ended (``failure`` None: it succeeded)."""
        with self._lock:
            if held:
                self._in_flight[key] -= 1
            self._trials.discard(key)
        try:
            self.breaker(key).call(_replay, failure)
        except Exception:  # noqa: BLE001 - the replayed failure itself, or a circuit another call opened
            pass

    def in_flight(self, key: str) -> int:
        with self._lock:
            return self._in_flight.get(key, 0)
