"""The Analyse panel as a guided choice: for each service that can take the dataset, one sentence of
what opens and where the data will be, its limits, only the options it offers; the person's own
checks in one round, each message at its field, before any launch is recorded; a session already
running for the same dataset and service offered instead of a second one; reasons in plain words."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from connectors import all_connectors

ACTIVE = ("requested", "routed", "submitted", "starting", "ready")
URL = re.compile(r"\s*\(?https?://\S+\)?:?")


@dataclass(frozen=True)
class Offer:
    """One service that fits the dataset, as the panel shows it."""

    service_id: str
    title: str
    kind: str
    facility: str  # name
    sentence: str
    limits: list[str]
    health: str
    capabilities: dict[str, Any] = field(default_factory=dict)
    away: bool = False  # not at the facility that holds the data


def sentence(service: dict[str, Any], home: str, away: bool) -> str:
    """What opens, and where the data will be, in one sentence (the kind's connector words it)."""
    where, connector = service["facility"]["name"], all_connectors().get(service["kind"])
    text = connector.describe(where, home, away) if connector else f"Opens {service['title']} at {where}."
    if service.get("launch_mode") == "deeplink":
        text += f" You continue on {service['title']}'s own page, which starts the session."
    return text


def limits(service: dict[str, Any]) -> list[str]:
    caps = service["capabilities"]
    out = []
    if caps.get("max_cpus"):
        out.append(f"up to {caps['max_cpus']} CPUs")
    if caps.get("max_memory_gb"):
        out.append(f"up to {caps['max_memory_gb']:g} GB memory")
    out.append("GPU available" if caps.get("gpu") else "no GPU")
    for name, title in (("partitions", "partitions"), ("profiles", "sizes"), ("plans", "plans")):
        if caps.get(name):
            out.append(f"{title}: {', '.join(caps[name])}")
    return [out[0][:1].upper() + out[0][1:], *out[1:]]


def offers(candidates: list[dict[str, Any]], services: dict[str, dict[str, Any]], home: str) -> list[Offer]:
    """The fitting candidates the catalogue describes, in the routing's order."""
    out = []
    for c in candidates:
        service = services.get(c["service_id"])
        if not c["fits"] or service is None:
            continue
        away = service["facility"]["name"] != home
        out.append(Offer(c["service_id"], service["title"], c["kind"], service["facility"]["name"],
                         sentence(service, home, away), limits(service), service["health"]["status"],
                         service["capabilities"], away))
    return out


def plain(reason: str) -> str:
    """A routing reason in words a scientist reads: no URLs, error numbers or circuit-breaker talk."""
    if reason.startswith("health check says down"):
        return "is not answering at the moment (the broker checks again every minute)"
    if reason.startswith("health check says blocked"):
        return "is refusing the broker's checks at the moment"
    if reason.startswith("not the service asked for"):
        return "not the one chosen"
    return URL.sub(" ", reason).strip()


def check(offer: Offer | None, resources: dict[str, Any], interface: str | None) -> dict[str, str]:
    """The chosen options against the chosen service's limits: a message per field (one round)."""
    errors: dict[str, str] = {}
    if offer is None:
        return {"service_id": "choose one of the services listed"}
    caps = offer.capabilities
    cpus, memory = resources.get("cpus"), resources.get("memory_gb")
    if cpus is not None and cpus < 1:
        errors["cpus"] = "at least 1"
    elif cpus is not None and caps.get("max_cpus") and cpus > caps["max_cpus"]:
        errors["cpus"] = f"at most {caps['max_cpus']} on {offer.title}"
    if memory is not None and memory < 0.1:
        errors["memory_gb"] = "at least 0.1"
    elif memory is not None and caps.get("max_memory_gb") and memory > caps["max_memory_gb"]:
        errors["memory_gb"] = f"at most {caps['max_memory_gb']:g} on {offer.title}"
    if resources.get("gpu") and not caps.get("gpu"):
        errors["gpu"] = f"{offer.title} has no GPU: untick it or choose a service with one"
    for name in ("partition", "profile", "plan"):
        offered = caps.get(f"{name}s") or []
        if resources.get(name) and resources[name] not in offered:
            errors[name] = (f"{offer.title} offers {', '.join(offered)}" if offered
                            else f"{offer.title} has no {name}s: leave it at the service's default")
    interfaces = caps.get("interfaces") or []
    if interface and interfaces and interface not in interfaces:
        errors["interface"] = f"{offer.title} offers {', '.join(interfaces)}"
    return errors


def running(launches: list[dict[str, Any]], pid: str, service_id: str | None = None) -> list[dict[str, Any]]:
    """The person's sessions of this dataset that are starting or ready (at one service, if named)."""
    return [launch for launch in launches if launch["dataset"] == pid and launch["state"] in ACTIVE
            and (service_id is None or launch["service_id"] in (service_id, None))]


__all__ = ["ACTIVE", "Offer", "check", "limits", "offers", "plain", "running", "sentence"]
