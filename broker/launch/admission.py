"""Admission control: how many starts each API-mode service is given at once."""
from __future__ import annotations

import logging
import threading

from registry.models import ComputeService

log = logging.getLogger(__name__)

DEFAULT_MAX_SPAWNS = 4  # starts in flight per service; a hub flooded with spawns lets them time out


def configured_bound(service: ComputeService) -> int:
    """The operator's ceiling: ``connector_config.max_concurrent_spawns``."""
    return int((service.connector_config or {}).get("max_concurrent_spawns", DEFAULT_MAX_SPAWNS))


class AdmissionBounds:
    """The number of starts let in flight per service: at most the configured bound, halved when the
    service shows strain (a failed start, a 429, a start slower than half its timeout) and raised by one
    per bound's worth of quick successes (additive increase, multiplicative decrease, as TCP does)."""

    def __init__(self) -> None:
        self._current: dict[str, float] = {}
        self._lock = threading.Lock()

    def bound(self, service_id: str, configured: int) -> int:
        with self._lock:
            return max(1, min(configured, int(self._current.get(service_id, configured))))

    def observe(self, service_id: str, configured: int, *, strained: bool) -> None:
        with self._lock:
            current = min(float(configured), self._current.get(service_id, float(configured)))
            current = max(1.0, current / 2) if strained else min(float(configured), current + 1 / current)
            if int(current) != int(self._current.get(service_id, configured)):
                log.info("admission bound of %s is now %d (configured %d)", service_id, int(current), configured)
            self._current[service_id] = current


__all__ = ["AdmissionBounds", "DEFAULT_MAX_SPAWNS", "configured_bound"]
