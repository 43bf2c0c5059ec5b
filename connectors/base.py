"""The base of every connector: the capability every kind has — a cheap health probe — its configuration
schema, and the types the launch capability passes (``LaunchTarget``, ``LaunchProgress``).

The other capabilities (launch, sessions, harvest, live search) are in ``connectors.capabilities``.
Connectors are registered under the entry-point group ``panbroker.connectors`` (the built-in ones too)
and looked up by kind.
"""
from __future__ import annotations

import enum
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import requests
from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate

from connectors.errors import AddressBlocked, UpstreamError
from connectors.http import HttpClient, json_body
from panmodel.states import HealthStatus, LaunchState, TargetType


PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


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


class Capability(enum.StrEnum):
    HEALTH = "health"  # every connector: a cheap probe
    LAUNCH = "launch"  # opens a session, at least through the service's own launch page
    SESSIONS = "sessions"  # starts, follows and stops sessions through the service's API
    HARVEST = "harvest"  # gather -> fetch -> map, for the index
    LIVE_SEARCH = "live-search"  # find, count, get at query time


class Connector:
    """Base of every connector. A connector class sets ``kind``, ``title``, ``config_schema`` and derives
    from the capability bases it has; each capability's abstract methods are checked when it is defined."""

    capability: ClassVar[Capability] = Capability.HEALTH
    kind: ClassVar[str]
    title: ClassVar[str]  # the kind in words, for pages and the catalogue
    target: ClassVar[TargetType]
    config_schema: ClassVar[type[Schema]] = ConfigSchema
    #: path probed when the configuration names no ``health_url``; None: probe the base URL itself
    health_path: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" not in cls.__dict__:
            return  # a capability base or a mixin: checked in the connectors built on it
        missing = sorted(name for name in dir(cls) if getattr(getattr(cls, name, None), "__isabstractmethod__", False))
        missing += [name for name in ("title", "target") if not hasattr(cls, name)]
        if missing:
            raise TypeError(f"connector {cls.__name__} ({cls.kind}) lacks {', '.join(missing)} of its capabilities")

    @classmethod
    def capabilities(cls) -> frozenset[Capability]:
        """What this connector can do, read from the capability bases it derives from."""
        return frozenset(base.__dict__["capability"] for base in cls.__mro__ if "capability" in base.__dict__)

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
    # the request in the broker's vocabulary, for the connector to translate into the service's
    resources: dict[str, Any] = field(default_factory=dict)  # cpus, memory_gb, gpus, runtime_hours, profile, ...
    interface: str | None = None
    partition: dict[str, Any] | None = None  # the registered capabilities of the partition routing chose
    facts: dict[str, str] = field(default_factory=dict)  # pid, doi, proposal, instrument, year, landing_url
    # a basket's launch: the manifest the session is handed (every dataset, where it is) and the environment
    # variables naming it; the session finds the manifest at environment["PANBROKER_BASKET_MANIFEST"]
    basket: dict[str, Any] | None = None
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LaunchProgress:
    state: LaunchState  # connectors may name it by its value ("ready"): it is read into the enum here
    message: str
    url: str | None = None
    retry_after: float | None = None
    secret: str | None = None  # a token that opens the session (Binder's), kept encrypted with the launch
    overloaded: bool = False  # the service showed overload (503, a timeout): fewer starts should be sent

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", LaunchState(self.state))  # an unknown state fails here, at the edge


class RequestRefused(ValueError):
    """The service cannot take this request as asked (a value outside its vocabulary or its rules):
    the launch fails alone, naming what to change; the service is not overloaded."""


# -- where a service keeps a dataset's files: a path template over the dataset's metadata -----------
PATH_PLACEHOLDERS = ("proposal", "instrument", "year", "pid", "facility")
SAFE_PATH_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


def check_path_template(value: str) -> None:
    """For a ``data_path_template`` field: an absolute path whose {placeholders} are known ones."""
    unknown = sorted({n for n in PLACEHOLDER.findall(value) if n not in PATH_PLACEHOLDERS})
    if unknown:
        raise ValidationError(f"unknown placeholder(s) {', '.join(unknown)}; use {', '.join(PATH_PLACEHOLDERS)}")
    if not value.startswith("/") or "\n" in value or "/../" in value + "/":
        raise ValidationError("an absolute path such as /data/visitor/{proposal}/{instrument}")


def data_path(template: str | None, facts: dict[str, str]) -> tuple[str | None, str]:
    """The dataset's folder from the service's template, and a sentence saying where the data is.

    A placeholder the dataset has no (safe) value for ends the path just before it: the session opens
    at the deepest folder that is certain, and the sentence says which value was missing."""
    documented = facts.get("landing_url")
    if not template:
        where = f"documented at {documented}" if documented else "not registered by the service"
        return None, f"the dataset's location is {where}"
    path = ""
    for literal, name in _pieces(template):
        path += literal
        if name is None:
            continue
        value = facts.get(name, "")
        if not value or not SAFE_PATH_VALUE.match(value) or ".." in value.split("/"):
            folder = path.rsplit("/", 1)[0] or "/"
            return folder, f"the dataset's {name} is {'unusable in a path' if value else 'not known'}: opened {folder}"
        path += value
    return path, f"the dataset's folder is {path}"


def _pieces(template: str) -> list[tuple[str, str | None]]:
    pieces, at = [], 0
    for match in PLACEHOLDER.finditer(template):
        pieces.append((template[at:match.start()], match.group(1)))
        at = match.end()
    return pieces + [(template[at:], None)]


def generic_user_options(target: LaunchTarget) -> dict[str, Any]:
    """The broker's own vocabulary, for hubs that read the options themselves (a plain JupyterHub with
    profiles): dataset identifiers, resources in whole units, the dataset's folder."""
    resources, facts = target.resources, target.facts
    gpus = int(resources.get("gpus") or (1 if resources.get("gpu") else 0))
    folder, _ = data_path(target.config.get("data_path_template"), facts)
    options = {"dataset_pid": target.dataset_pid, "doi": ",".join(target.dois), "proposal": ",".join(target.proposals),
               "partition": resources.get("partition"), "profile": resources.get("profile"),
               "nprocs": resources.get("cpus"), "memory": slurm_memory(resources.get("memory_gb")),
               "gpu": gpus or None, "interface": target.interface, "data_path": folder,
               "basket": target.basket, "environment": target.environment or None}
    return {k: v for k, v in options.items() if v not in (None, "")}


def slurm_memory(gigabytes: float | None) -> str | None:
    """Memory in a whole unit Slurm takes: whole gigabytes as ``4G``, else whole megabytes (``512M``)."""
    if not gigabytes:
        return None
    megabytes = math.ceil(gigabytes * 1024)
    return f"{megabytes // 1024}G" if megabytes % 1024 == 0 else f"{megabytes}M"


class Page(list):
    """One page a harvest yields: its items, and where a harvest resumes after it (``resume``: a cursor
    the same connector's ``gather(..., resume=...)`` takes back; None where it cannot resume there).
    A page may hold its items still ``encoded`` instead (no items listed): the connector's ``decode(encoded)``
    reads them where the page is mapped."""

    def __init__(self, items: Any = (), resume: str | None = None, encoded: bytes | None = None):
        super().__init__(items)
        self.resume = resume
        self.encoded = encoded
