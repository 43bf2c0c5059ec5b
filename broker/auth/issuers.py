"""The identity providers the broker accepts, as configured (PANBROKER_OIDC_ISSUERS over the defaults)."""
from __future__ import annotations

import json
from dataclasses import dataclass

from panmodel.errors import ConfigurationError


@dataclass(frozen=True)
class IssuerConfig:
    name: str
    title: str
    issuer: str  # the exact `iss` value; discovery is {issuer}/.well-known/openid-configuration
    client_id: str = ""
    client_secret: str = ""
    scopes: str = "openid profile email"
    subject_claim: str = "sub"
    entitlements_claim: str = "eduperson_entitlement"
    audience: str = ""  # `aud` of API access tokens; empty: bearer JWTs from this issuer are not accepted
    admin_entitlements: tuple[str, ...] = ()
    operator_entitlement_prefix: str = ""  # e.g. "urn:panbroker:role:operator:" + facility id
    enabled: bool = True

    @property
    def usable(self) -> bool:
        return self.enabled and bool(self.client_id)

    def __repr__(self) -> str:  # the client secret stays out of logs and tracebacks
        return f"IssuerConfig(name={self.name!r}, issuer={self.issuer!r}, client_id={self.client_id!r})"


@dataclass(frozen=True)
class SignInChoice:
    """A provider a person may sign in with, as pages and the API show it."""

    name: str
    title: str


# Shipped disabled: they need credentials (and UmbrellaID's OIDC issuer must be confirmed per deployment)
DEFAULT_ISSUERS = (
    IssuerConfig("umbrellaid", "UmbrellaID", "https://umbrellaid.org", enabled=False),
    IssuerConfig("egi-checkin", "EGI Check-in", "https://aai.egi.eu/auth/realms/egi",
                 scopes="openid profile email voperson_id eduperson_entitlement", subject_claim="voperson_id",
                 enabled=False),
    IssuerConfig("orcid", "ORCID", "https://orcid.org", scopes="openid", enabled=False),
)


def load_issuers(raw: str) -> tuple[IssuerConfig, ...]:
    """Issuers from PANBROKER_OIDC_ISSUERS (a JSON list); entries replace the defaults of the same name."""
    configured = {}
    try:
        for entry in json.loads(raw) if raw else []:
            entry = dict(entry)
            entry["admin_entitlements"] = tuple(entry.get("admin_entitlements", ()))
            configured[entry["name"]] = IssuerConfig(**entry)
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigurationError(f"PANBROKER_OIDC_ISSUERS: {exc} (a JSON list of objects with name, title, "
                                 "issuer, client_id, ...)") from exc
    merged = {i.name: i for i in DEFAULT_ISSUERS}
    merged.update(configured)
    return tuple(merged.values())


class Issuers(dict[str, IssuerConfig]):
    """The configured issuers by name (one mapping shared by the auth services)."""

    def usable(self, name: str) -> IssuerConfig | None:
        config = self.get(name)
        return config if config is not None and config.usable else None

    def by_iss(self, iss: object) -> IssuerConfig | None:
        return next((i for i in self.values() if i.usable and i.issuer == iss), None)

    def choices(self) -> list[SignInChoice]:
        return [SignInChoice(i.name, i.title) for i in self.values() if i.usable]
