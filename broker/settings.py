"""Settings, read once from ``PANBROKER_*`` environment variables.

Every setting the broker understands is declared here, with its default; the README's configuration
table is written from this list.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from panmodel.errors import ConfigurationError

PREFIX = "PANBROKER_"


def _networks(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip())
    except ValueError as exc:
        raise ConfigurationError(f"{PREFIX}ALLOWED_NETWORKS: {exc}") from exc


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigurationError(f"expected a boolean (true/false), got {value!r}")


@dataclass(frozen=True)
class Settings:
    """The broker's configuration. Field names map to ``PANBROKER_<NAME>`` variables."""

    data_dir: Path = field(default=Path("var"), metadata={"help": "Folder for the SQLite file, keys and the index."})
    database_url: str = field(default="", metadata={"help": "SQLAlchemy URL; default: SQLite file in the data dir."})
    admin_token: str = field(default="", metadata={"help": "Bearer token for registry writes (bootstrap admin)."})
    encryption_keys: str = field(
        default="", metadata={"help": "Comma-separated Fernet keys, newest first; default: a key file in the data dir."}
    )
    allowed_networks: tuple = field(
        default=(), metadata={"help": "CIDRs outbound calls may reach although private/loopback (e.g. 127.0.0.0/8)."}
    )
    host: str = field(default="127.0.0.1", metadata={"help": "Address `panbroker serve` listens on."})
    port: int = field(default=8080, metadata={"help": "Port `panbroker serve` listens on."})
    embedded_worker: bool = field(default=True, metadata={"help": "Run scheduled jobs inside `serve`."})
    migrate_on_start: bool = field(default=True, metadata={"help": "Migrate the database schema at start (one process at a time on PostgreSQL); false: wait for `panbroker migrate`."})
    http_connect_timeout: float = field(default=3.05, metadata={"help": "Seconds to connect to a facility."})
    http_read_timeout: float = field(default=10.0, metadata={"help": "Seconds between bytes from a facility."})
    http_total_timeout: float = field(default=30.0, metadata={"help": "Ceiling on one outbound call, in seconds."})
    http_max_response_bytes: int = field(default=10 * 1024 * 1024, metadata={"help": "Cap on a response body."})
    http_endpoint_concurrency: int = field(default=8, metadata={"help": "Outbound calls in flight per facility endpoint; more are refused at once."})
    http_min_bytes_per_second: float = field(default=1024.0, metadata={"help": "Slowest answer accepted once it has taken 2 s (a slow drip is a timeout)."})
    http_retries: int = field(default=2, metadata={"help": "Retries of idempotent calls on connect errors/502-504."})
    breaker_fail_max: int = field(default=5, metadata={"help": "Consecutive failures that open an endpoint's circuit."})
    breaker_reset_seconds: float = field(default=60.0, metadata={"help": "Seconds a circuit stays open."})
    health_interval_seconds: int = field(default=300, metadata={"help": "Seconds between health-check rounds."})
    health_timeout_seconds: float = field(default=5.0, metadata={"help": "Timeout of one health probe."})
    health_concurrency: int = field(default=16, metadata={"help": "Probes run at once."})
    health_history: int = field(default=100, metadata={"help": "Health records kept per endpoint."})
    index_dir: Path = field(default=Path(""), metadata={"help": "Folder of the embedded search index; default: index/ in the data dir."})
    elasticsearch_url: str = field(default="", metadata={"help": "Use this Elasticsearch instead of the embedded index."})
    search_deadline_seconds: float = field(default=2.5, metadata={"help": "Deadline of a live search across facilities."})
    harvest_max_delete_share: float = field(default=0.2, metadata={"help": "Share of a source's datasets a harvest may delete before it stops as suspect."})
    harvest_commit_every: int = field(default=20_000, metadata={"help": "Datasets a harvest imports between two index commits; a stopped harvest resumes after the last one."})
    harvest_processes: int = field(default=2, metadata={"help": "Processes a harvest decodes and maps its pages in, beside the one that indexes them; 0: a thread of that process."})
    harvest_timeout_seconds: float = field(default=30.0, metadata={"help": "Timeout of one harvest request."})
    eosc_catalogue_url: str = field(default="", metadata={"help": "EOSC Resource Catalogue API base URL; empty: no sync."})
    eosc_catalogue_id: str = field(default="eosc", metadata={"help": "catalogue_id sent to the EOSC catalogue."})
    eosc_token: str = field(default="", metadata={"help": "Bearer token for pushing profiles to the catalogue (secret)."})
    eosc_catalogue_version: str = field(default="v5", metadata={"help": "The catalogue's service model: v5, v6, or auto (read from its /actuator/info)."})
    eosc_token_url: str = field(default="", metadata={"help": "EOSC AAI token endpoint for the providers' credentials."})
    eosc_aai_client_id: str = field(default="", metadata={"help": "EOSC AAI client id the providers' refresh tokens were issued to."})
    eosc_sync_interval_seconds: int = field(default=3600, metadata={"help": "Seconds between EOSC sync rounds."})
    public_url: str = field(default="", metadata={"help": "The broker's public base URL (login redirect URIs); default: http://HOST:PORT."})
    oidc_issuers: str = field(default="", metadata={"help": "JSON list of OpenID issuers (name, title, issuer, client_id, client_secret, ...)."})
    federation_wide_facilities: str = field(default="egi", metadata={"help": "Comma-separated facilities whose services may analyse public data of any facility."})
    launch_poll_seconds: int = field(default=2, metadata={"help": "Seconds between the worker's launch steps."})
    launch_lease_seconds: float = field(default=10.0, metadata={"help": "Seconds a worker's hold on a launch it follows lasts unrenewed; another worker takes the launch over after it (PostgreSQL)."})
    max_body_bytes: int = field(default=1024 * 1024, metadata={"help": "Largest request body accepted."})
    body_timeout_seconds: float = field(default=5.0, metadata={"help": "Seconds a request body may take to arrive (else 408)."})
    request_threads: int = field(default=32, metadata={"help": "Threads per worker process answering requests."})
    max_waiting_requests: int = field(default=100, metadata={"help": "Requests a worker process takes at once; more get 503 + Retry-After."})
    max_searches_per_client: int = field(default=4, metadata={"help": "Live searches and dataset lookups one client may run at once (429 beyond)."})
    max_streams_per_client: int = field(default=4, metadata={"help": "Launch event streams one client may hold open (429 beyond)."})
    max_streams: int = field(default=1000, metadata={"help": "Launch event streams a worker process holds open (503 beyond)."})
    workers: int = field(default=2, metadata={"help": "Worker processes of `panbroker serve`."})
    smtp_host: str = field(default="", metadata={"help": "SMTP server for launch notifications by e-mail; empty: no e-mail."})
    smtp_port: int = field(default=25, metadata={"help": "Port of the SMTP server."})
    smtp_starttls: bool = field(default=False, metadata={"help": "Upgrade the SMTP connection with STARTTLS before logging in."})
    smtp_username: str = field(default="", metadata={"help": "SMTP login; empty: send without logging in."})
    smtp_password: str = field(default="", metadata={"help": "SMTP password (secret)."})
    smtp_from: str = field(default="", metadata={"help": "From address of notification e-mails; default: panbroker@ the public URL's host."})
    notify_after_seconds: float = field(default=5.0, metadata={"help": "A launch that took longer than this notifies its user (if they opted in) when ready or failed."})
    oai_repository_name: str = field(default="PaN Broker: federated photon and neutron datasets", metadata={"help": "repositoryName the OAI-PMH provider (/oai) gives in Identify."})
    oai_repository_identifier: str = field(default="", metadata={"help": "Repository part of OAI record identifiers (oai:ID:pid); default: the public URL's host name."})
    oai_admin_email: str = field(default="", metadata={"help": "adminEmail of the OAI-PMH provider; default: panbroker@ the repository identifier."})
    oai_page_size: int = field(default=100, metadata={"help": "Records or headers per OAI-PMH list page (then a resumption token)."})
    metrics_networks: str = field(default="127.0.0.0/8,::1/128", metadata={"help": "CIDRs that may read `/metrics` (Prometheus); others need the metrics token."})
    metrics_token: str = field(default="", metadata={"help": "Bearer token that opens `/metrics` from anywhere (secret); empty: networks only."})
    log_level: str = field(default="INFO", metadata={"help": "Python logging level."})
    log_format: str = field(default="text", metadata={"help": "`text`, or `json` (one object per line, with the request id)."})

    @property
    def effective_metrics_networks(self) -> tuple:
        try:
            return _networks(self.metrics_networks)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{PREFIX}METRICS_NETWORKS: {exc.__cause__}") from exc

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def effective_index_dir(self) -> Path:
        return self.index_dir if str(self.index_dir) not in ("", ".") else self.data_dir / "index"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'panbroker.db').resolve()}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Read every field from ``PANBROKER_<FIELD>``; ``overrides`` win over the environment."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(PREFIX + f.name.upper())
            if raw is None:
                continue
            values[f.name] = _convert(f.name, f.default, raw)
        values.update(overrides)
        if values.get("log_format", "text") not in ("text", "json"):
            raise ConfigurationError(f"{PREFIX}LOG_FORMAT: use text or json, not {values['log_format']!r}")
        return cls(**values)


def _convert(name: str, default: Any, raw: str) -> Any:
    try:
        if name == "allowed_networks":
            return _networks(raw)
        if isinstance(default, bool):
            return _bool(raw)
        if isinstance(default, Path):
            return Path(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        return raw
    except ValueError as exc:
        raise ConfigurationError(f"{PREFIX}{name.upper()}: {exc}") from exc


def prometheus_multiproc_dir() -> str | None:
    """The folder prometheus_client's multiprocess mode shares between processes (it reads
    ``PROMETHEUS_MULTIPROC_DIR`` itself, when imported; this is for the broker to know)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def loopback_networks() -> tuple:
    """The networks the demo and the tests allow explicitly."""
    return _networks("127.0.0.0/8,::1/128")


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, help) for every setting, for the README and `panbroker config`."""
    return [
        (PREFIX + f.name.upper(), str(f.default) if f.default not in ("", ()) else "", f.metadata.get("help", ""))
        for f in fields(Settings)
    ]
