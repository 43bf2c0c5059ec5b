"""Facilities, their compute services and search endpoints, EOSC entries, health history, audit log."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from panmodel.clock import utcnow
from panmodel.states import EoscStatus, Lifecycle
from registry.models.base import Base, HealthFields, Versioned


class Facility(Versioned, Base):
    __tablename__ = "facilities"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    country: Mapped[str] = mapped_column(String(2), nullable=False)
    ror_id: Mapped[str | None] = mapped_column(String(100))
    homepage: Mapped[str | None] = mapped_column(String(2048))
    contact_email: Mapped[str | None] = mapped_column(String(320))
    accepted_issuers: Mapped[list[Any]] = mapped_column(nullable=False, default=list)
    # EOSC provider: its id (v4) or PID (v5/v6) in the catalogue, the contacts its services default to,
    # and the credential (EOSC AAI refresh token or client secret) of one of its administrators
    eosc_provider_id: Mapped[str | None] = mapped_column(String(200))
    eosc_main_contact: Mapped[dict[str, Any]] = mapped_column(nullable=False, default=dict,
                                                              server_default=text("'{}'"))
    eosc_public_contacts: Mapped[list[Any]] = mapped_column(nullable=False, default=list,
                                                            server_default=text("'[]'"))
    eosc_helpdesk_email: Mapped[str | None] = mapped_column(String(320))
    eosc_security_email: Mapped[str | None] = mapped_column(String(320))
    eosc_client_id: Mapped[str | None] = mapped_column(String(200))
    eosc_credential_encrypted: Mapped[str | None] = mapped_column(Text)
    # its services may analyse the public data of every facility (a federation-wide Binder, EGI)
    federation_wide: Mapped[bool] = mapped_column(nullable=False, default=False, server_default=text("false"))

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
    # the service profile fields the broker cannot infer (empty: the facility's EOSC defaults, then missing)
    logo: Mapped[str | None] = mapped_column(String(2048))
    tagline: Mapped[str | None] = mapped_column(String(200))
    webpage: Mapped[str | None] = mapped_column(String(2048))
    main_contact: Mapped[dict[str, Any]] = mapped_column(nullable=False, default=dict, server_default=text("'{}'"))
    public_contacts: Mapped[list[Any]] = mapped_column(nullable=False, default=list, server_default=text("'[]'"))
    helpdesk_email: Mapped[str | None] = mapped_column(String(320))
    security_email: Mapped[str | None] = mapped_column(String(320))
    terms_of_use: Mapped[str | None] = mapped_column(String(2048))
    privacy_policy: Mapped[str | None] = mapped_column(String(2048))
    access_policy: Mapped[str | None] = mapped_column(String(2048))
    access_types: Mapped[list[Any]] = mapped_column(nullable=False, default=list, server_default=text("'[]'"))
    access_modes: Mapped[list[Any]] = mapped_column(nullable=False, default=list, server_default=text("'[]'"))
    order_type: Mapped[str | None] = mapped_column(String(64))
    order_url: Mapped[str | None] = mapped_column(String(2048))
    # the v6 (EOSC EU Node) service model's own fields
    node_pid: Mapped[str | None] = mapped_column(String(200))
    jurisdiction: Mapped[str | None] = mapped_column(String(100))
    publishing_date: Mapped[str | None] = mapped_column(String(10))
    # what the last sync read from the catalogue (written by the sync job, not by operators)
    onboarding_status: Mapped[str | None] = mapped_column(String(64))
    catalogue_name: Mapped[str | None] = mapped_column(String(500))
    catalogue_url: Mapped[str | None] = mapped_column(String(2048))
    catalogue_lifecycle: Mapped[str | None] = mapped_column(String(100))
    drift: Mapped[list[Any]] = mapped_column(nullable=False, default=list, server_default=text("'[]'"))
    last_sync_error: Mapped[str | None] = mapped_column(Text)
    catalogue_active: Mapped[bool | None] = mapped_column()
    catalogue_suspended: Mapped[bool | None] = mapped_column()
    catalogue_draft: Mapped[bool | None] = mapped_column()
    audit_state: Mapped[str | None] = mapped_column(String(64))
    catalogue_version: Mapped[str | None] = mapped_column(String(100))  # the record's `version` there
    last_push_error: Mapped[str | None] = mapped_column(Text)

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




class RegistryStamp(Base):
    """One row: bumped by every transaction that writes facilities, services, search endpoints or EOSC
    entries (``registry.store.Store.session``), so a cached read can be checked in one primary-key read."""

    __tablename__ = "registry_stamp"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    stamp: Mapped[int] = mapped_column(BigInteger, nullable=False)
