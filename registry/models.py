"""The store of record: facilities, their compute services and search endpoints, EOSC entries,
health history and the audit log. Schema changes go through the Alembic migrations beside this file."""
from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ServiceKind(enum.StrEnum):
    VISA = "visa"
    JUPYTERHUB = "jupyterhub"
    BINDERHUB = "binderhub"
    REMOTE_DESKTOP = "remote-desktop"


class SearchKind(enum.StrEnum):
    PANOSC_SEARCH_API = "panosc-search-api"
    SCICAT = "scicat"
    OAI_PMH = "oai-pmh"


class LaunchMode(enum.StrEnum):
    API = "api"
    DEEPLINK = "deeplink"


class Lifecycle(enum.StrEnum):
    """Where the facility says the service stands (the PaNOSC report's prototype/production columns)."""

    PRODUCTION = "production"
    PROTOTYPE = "prototype"
    PILOT = "pilot"
    PLANNED = "planned"


class EoscStatus(enum.StrEnum):
    NOT_REGISTERED = "not-registered"
    IN_PROGRESS = "in-progress"
    REGISTERED = "registered"


class HealthStatus(enum.StrEnum):
    UNKNOWN = "unknown"  # never checked, or nothing to check (no URL)
    UP = "up"
    DOWN = "down"
    BLOCKED = "blocked"  # the address is refused by the SSRF policy; not contacted


class TargetType(enum.StrEnum):
    SERVICE = "service"
    SEARCH_ENDPOINT = "search-endpoint"


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON, list[Any]: JSON}


class Versioned:
    """Optimistic concurrency: every write bumps ``version``; a write naming an older one is refused."""

    version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, nullable=False)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:  # noqa: N805 - SQLAlchemy directive
        return {"version_id_col": cls.__table__.c.version}


class HealthFields:
    """The latest health result, kept on the endpoint so lists can filter on it."""

    health_status: Mapped[str] = mapped_column(String(16), nullable=False, default=HealthStatus.UNKNOWN.value)
    health_latency_ms: Mapped[float | None] = mapped_column(Float)
    health_checked_at: Mapped[datetime | None] = mapped_column()
    health_error: Mapped[str | None] = mapped_column(Text)


class Facility(Versioned, Base):
    __tablename__ = "facilities"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    country: Mapped[str] = mapped_column(String(2), nullable=False)
    ror_id: Mapped[str | None] = mapped_column(String(100))
    homepage: Mapped[str | None] = mapped_column(String(2048))
    contact_email: Mapped[str | None] = mapped_column(String(320))
    accepted_issuers: Mapped[list[Any]] = mapped_column(nullable=False, default=list)

    services: Mapped[list["ComputeService"]] = relationship(back_populates="facility")
    search_endpoints: Mapped[list["SearchEndpoint"]] = relationship(back_populates="facility")


class ComputeService(Versioned, HealthFields, Base):
    __tablename__ = "compute_services"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    facility_id: Mapped[str] = mapped_column(ForeignKey("facilities.id", ondelete="RESTRICT"), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    base_url: Mapped[str | None] = mapped_column(String(2048))
    launch_mode: Mapped[str] = mapped_column(String(16), nullable=False)
    lifecycle: Mapped[str] = mapped_column(String(16), nullable=False, default=Lifecycle.PRODUCTION.value)
    capabilities: Mapped[dict[str, Any]] = mapped_column(nullable=False, default=dict)
    connector_config: Mapped[dict[str, Any]] = mapped_column(nullable=False, default=dict)
    credential_encrypted: Mapped[str | None] = mapped_column(Text)

    facility: Mapped[Facility] = relationship(back_populates="services")
    eosc_entry: Mapped["EoscEntry | None"] = relationship(back_populates="service")

    __table_args__ = (Index("ix_compute_services_facility_kind", "facility_id", "kind"),)


class SearchEndpoint(Versioned, HealthFields, Base):
    __tablename__ = "search_endpoints"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    facility_id: Mapped[str] = mapped_column(ForeignKey("facilities.id", ondelete="RESTRICT"), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    base_url: Mapped[str] = mapped_column(String(2048), nullable=False)
    harvest_schedule: Mapped[str | None] = mapped_column(String(100))
    connector_config: Mapped[dict[str, Any]] = mapped_column(nullable=False, default=dict)

    facility: Mapped[Facility] = relationship(back_populates="search_endpoints")


class EoscEntry(Versioned, Base):
    __tablename__ = "eosc_entries"

    service_id: Mapped[str] = mapped_column(ForeignKey("compute_services.id", ondelete="CASCADE"), primary_key=True)
    resource_id: Mapped[str | None] = mapped_column(String(200))
    marketplace_url: Mapped[str | None] = mapped_column(String(2048))
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=EoscStatus.NOT_REGISTERED.value)
    last_synced_at: Mapped[datetime | None] = mapped_column()
    # what operators add for the EOSC service profile (vocabulary ids, and any profile field to override)
    scientific_domains: Mapped[list[Any]] = mapped_column(nullable=False, default=list, server_default=text("'[]'"))
    categories: Mapped[list[Any]] = mapped_column(nullable=False, default=list, server_default=text("'[]'"))
    trl: Mapped[str | None] = mapped_column(String(16))
    profile: Mapped[dict[str, Any]] = mapped_column(nullable=False, default=dict, server_default=text("'{}'"))
    # what the last sync read from the catalogue (written by the sync job, not by operators)
    onboarding_status: Mapped[str | None] = mapped_column(String(64))
    catalogue_name: Mapped[str | None] = mapped_column(String(500))
    catalogue_url: Mapped[str | None] = mapped_column(String(2048))
    catalogue_lifecycle: Mapped[str | None] = mapped_column(String(100))
    drift: Mapped[list[Any]] = mapped_column(nullable=False, default=list, server_default=text("'[]'"))
    last_sync_error: Mapped[str | None] = mapped_column(Text)

    service: Mapped[ComputeService] = relationship(back_populates="eosc_entry")


class HealthCheck(Base):
    """One probe result; the newest ``health_history`` per endpoint are kept."""

    __tablename__ = "health_checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target_type: Mapped[str] = mapped_column(String(16), nullable=False)
    target_id: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    checked_at: Mapped[datetime] = mapped_column(nullable=False)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_health_checks_target", "target_type", "target_id", "checked_at"),)


class AuditEvent(Base):
    """One registry write: who, what, when, and the object before and after (secrets never included)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    object_type: Mapped[str] = mapped_column(String(32), nullable=False)
    object_id: Mapped[str] = mapped_column(String(64), nullable=False)
    changed: Mapped[list[Any]] = mapped_column(nullable=False, default=list)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_audit_events_object", "object_type", "object_id"),)


class HarvestState(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # finished, but some items failed (each recorded with its stage)
    FAILED = "failed"  # the source could not be read; the index keeps the previous harvest


class HarvestStage(enum.StrEnum):
    GATHER = "gather"
    FETCH = "fetch"
    IMPORT = "import"


class HarvestJob(Base):
    """One harvest of one search endpoint: gather -> fetch -> import, with per-stage times and counts."""

    __tablename__ = "harvest_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("search_endpoints.id", ondelete="CASCADE"), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    started_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
    gathered_at: Mapped[datetime | None] = mapped_column()
    fetched_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    gathered: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    imported: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    deleted: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    failed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_harvest_jobs_endpoint", "endpoint_id", "started_at"),)


class HarvestError(Base):
    """An item that failed, with the stage it failed in."""

    __tablename__ = "harvest_errors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("harvest_jobs.id", ondelete="CASCADE"), nullable=False)
    item_id: Mapped[str] = mapped_column(String(500), nullable=False)
    stage: Mapped[str] = mapped_column(String(16), nullable=False)
    error: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (Index("ix_harvest_errors_job", "job_id"),)


class EoscSyncEvent(Base):
    """One sync of one EOSC entry with the catalogue: what it found, the drift, or the error."""

    __tablename__ = "eosc_sync_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("eosc_entries.service_id", ondelete="CASCADE"), nullable=False)
    at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)  # ok | not-found | error
    onboarding_status: Mapped[str | None] = mapped_column(String(64))
    drift: Mapped[list[Any]] = mapped_column(nullable=False, default=list)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_eosc_sync_events_service", "service_id", "at"),)


class Role(enum.StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"  # of one facility


class Person(Base):
    """Someone who uses the broker, known through one or more identities."""

    __tablename__ = "people"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200), nullable=False)
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)

    identities: Mapped[list["Identity"]] = relationship(back_populates="person", cascade="all, delete-orphan")
    roles: Mapped[list["RoleGrant"]] = relationship(back_populates="person", cascade="all, delete-orphan")


class Identity(Base):
    """One (issuer, subject) a person signs in with; an identity belongs to one person only."""

    __tablename__ = "identities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), nullable=False)
    issuer: Mapped[str] = mapped_column(String(100), nullable=False)
    subject: Mapped[str] = mapped_column(String(500), nullable=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)

    person: Mapped[Person] = relationship(back_populates="identities")

    __table_args__ = (Index("ux_identities_issuer_subject", "issuer", "subject", unique=True),)


class RoleGrant(Base):
    __tablename__ = "role_grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    facility_id: Mapped[str | None] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    granted_by: Mapped[str] = mapped_column(String(200), nullable=False)
    granted_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)

    person: Mapped[Person] = relationship(back_populates="roles")

    __table_args__ = (Index("ux_role_grants", "person_id", "role", "facility_id", unique=True),)


class ApiToken(Base):
    """A personal API token for scripts: only a hash of its secret is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (Index("ix_api_tokens_person", "person_id"),)


class LoginTransaction(Base):
    """One authorization request in flight: single-use, bound to its issuer, with PKCE and nonce."""

    __tablename__ = "login_transactions"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(100), nullable=False)
    nonce: Mapped[str] = mapped_column(String(64), nullable=False)
    code_verifier: Mapped[str] = mapped_column(String(128), nullable=False)
    next_url: Mapped[str] = mapped_column(String(2048), nullable=False, default="/")
    link_person_id: Mapped[str | None] = mapped_column(String(36))  # set when linking a second identity
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)


class WebSession(Base):
    """A signed-in browser: only a hash of the cookie value is stored."""

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), nullable=False)
    issuer: Mapped[str] = mapped_column(String(100), nullable=False)
    id_token_encrypted: Mapped[str | None] = mapped_column(Text)  # for RP-initiated logout
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(nullable=False)


class UserToken(Base):
    """A person's tokens from one issuer, kept (encrypted) to call services on their behalf."""

    __tablename__ = "user_tokens"

    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(100), primary_key=True)
    access_token_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    refresh_token_encrypted: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(nullable=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)


class LaunchState(enum.StrEnum):
    REQUESTED = "requested"
    ROUTED = "routed"
    SUBMITTED = "submitted"
    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"
    STOPPED = "stopped"


FINAL_LAUNCH_STATES = frozenset({LaunchState.READY, LaunchState.FAILED, LaunchState.CANCELLED, LaunchState.STOPPED})


class Launch(Base):
    """One request to analyse a dataset, followed to ready (or failure) by the worker."""

    __tablename__ = "launches"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(200), nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    request: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    dataset_pid: Mapped[str] = mapped_column(String(500), nullable=False)
    facility_id: Mapped[str | None] = mapped_column(String(64))
    service_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    decision: Mapped[list[Any]] = mapped_column(nullable=False, default=list)
    username: Mapped[str | None] = mapped_column(String(200))
    server_name: Mapped[str | None] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(String(2048))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
    deadline_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (Index("ux_launches_key", "person_id", "idempotency_key", unique=True),
                      Index("ix_launches_state", "state"))


class LaunchEvent(Base):
    __tablename__ = "launch_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    launch_id: Mapped[str] = mapped_column(ForeignKey("launches.id", ondelete="CASCADE"), nullable=False)
    at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (Index("ix_launch_events_launch", "launch_id", "id"),)
