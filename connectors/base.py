"""Capability base classes for connectors.

A connector adapts one kind of external system. This foundation defines the capability every kind
has — a cheap health probe — and the connector's own configuration schema; search, harvest, launch
and catalogue capabilities are added by the issues that need them. Connectors are registered under
the entry-point group ``panbroker.connectors`` (the built-in ones too) and looked up by kind.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import requests
from marshmallow import EXCLUDE, RAISE, Schema, fields, validate

from connectors.errors import AddressBlocked, UpstreamError
from connectors.http import HttpClient, json_body
from registry.models import HealthStatus, TargetType


@dataclass(frozen=True)
class ProbeResult:
    status: HealthStatus
    latency_ms: float | None = None
    error: str | None = None


class ConfigSchema(Schema):
    """Base of connector configuration schemas: unknown keys are refused, naming the key."""

    class Meta:
        unknown = RAISE


class TolerantSchema(Schema):
    """Base of schemas reading external payloads: fields the broker does not know are ignored."""

    class Meta:
        unknown = EXCLUDE


def url_field(**kwargs: Any) -> fields.Url:
    return fields.Url(schemes={"http", "https"}, require_tld=False, validate=validate.Length(max=2048), **kwargs)


class Connector:
    """Base of every connector. Subclasses set ``kind``, ``target`` and ``config_schema``."""

    kind: ClassVar[str]
    target: ClassVar[TargetType]
    config_schema: ClassVar[type[Schema]] = ConfigSchema
    #: path probed when the configuration names no ``health_url``; None: probe the base URL itself
    health_path: ClassVar[str | None] = None

    def health_url(self, base_url: str | None, config: dict[str, Any]) -> str | None:
        """The URL the health check calls, or None when there is nothing to call."""
        if config.get("health_url"):
            return config["health_url"]
        if not base_url:
            return None
        if self.health_path is None:
            return base_url
        return base_url.rstrip("/") + self.health_path

    def judge(self, response: requests.Response) -> str | None:
        """None when ``response`` shows a healthy endpoint, else what is wrong with it."""
        if response.status_code >= 400:
            return f"HTTP {response.status_code}"
        return None

    def probe(self, client: HttpClient, base_url: str | None, config: dict[str, Any], timeout: float) -> ProbeResult:
        """Call the kind's cheap health URL once and judge the answer. Never raises for facility faults."""
        url = self.health_url(base_url, config)
        if url is None:
            return ProbeResult(HealthStatus.UNKNOWN, error="no URL registered to check")
        started = time.monotonic()
        try:
            client.policy.check_url(url)
            response = client.get(url, timeout=timeout, headers={"Accept": "application/json, */*;q=0.5"})
        except AddressBlocked as exc:
            return ProbeResult(HealthStatus.BLOCKED, error=exc.detail)
        except UpstreamError as exc:
            return ProbeResult(HealthStatus.DOWN, round((time.monotonic() - started) * 1000, 1), exc.detail)
        latency = round((time.monotonic() - started) * 1000, 1)
        try:
            problem = self.judge(response)
        except UpstreamError as exc:
            problem = exc.detail
        return ProbeResult(HealthStatus.DOWN if problem else HealthStatus.UP, latency, problem)


class JsonProbe(Connector):
    """A probe that wants HTTP 200 and a JSON object holding ``expected_key``."""

    expected_key: ClassVar[str]

    def judge(self, response: requests.Response) -> str | None:
        if response.status_code != 200:
            return f"HTTP {response.status_code} from {self.health_path or 'the health URL'}"
        body = json_body(response)
        if not isinstance(body, dict) or self.expected_key not in body:
            return f"answer has no {self.expected_key!r} field"
        return None


@dataclass(frozen=True)
class LaunchTarget:
    """What a connector needs to start, follow or stop one session."""

    base_url: str
    config: dict[str, Any]
    credential: str | None  # the service's API credential (API mode), decrypted for this call only
    username: str | None  # the user's name at the service
    server_name: str
    user_options: dict[str, Any]  # dataset and resources, in the service's vocabulary
    proposals: tuple[str, ...] = ()
    dois: tuple[str, ...] = ()
    dataset_pid: str = ""
    user_token: str | None = None  # the user's own access token, for services called on their behalf


@dataclass(frozen=True)
class LaunchProgress:
    state: str  # a registry.models.LaunchState value
    message: str
    url: str | None = None
    retry_after: float | None = None
    secret: str | None = None  # a token that opens the session (Binder's), kept encrypted with the launch


class ServiceConnector(Connector):
    target = TargetType.SERVICE

    def deep_link(self, target: LaunchTarget) -> str | None:
        """The service's own launch page for the dataset, or None when the kind has none."""
        return None

    def follow(self, client: HttpClient, target: LaunchTarget, report: Callable[[str], None],
               until: float) -> LaunchProgress | None:
        """Follow a starting session's event stream until ready, failed or the monotonic time ``until``,
        passing each progress message to ``report``. ``None``: no stream to follow, poll instead."""
        return None


class SearchConnector(Connector):
    target = TargetType.SEARCH_ENDPOINT
