"""People, their identities, roles, API tokens, sign-in transactions, sessions and kept tokens."""
from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from panmodel.clock import utcnow
from registry.models.base import Base


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
    # the issuer's naming claims at the last sign-in (e.g. preferred_username), for services that map users
    claims: Mapped[dict[str, Any] | None] = mapped_column()

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
    browser_hash: Mapped[str | None] = mapped_column(String(64))  # sha256 of the starting browser's login cookie
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




class NotificationSettings(Base):
    """A person's opt-in to being told when a slow launch is ready or failed: by e-mail, by webhook, or both."""

    __tablename__ = "notification_settings"

    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), primary_key=True)
    email_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    email: Mapped[str | None] = mapped_column(String(320))
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, nullable=False)
