"""Routing: which compute service should analyse a dataset for a person, and why the others should not.

Candidates are the services of the facility that holds the dataset; for public data, services of the
federation-wide facilities join when the holder has none that fits. Each candidate is kept or rejected
with a reason: kind, lifecycle/URL, health, the person's identities, resources, data access.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.search.model import Dataset
from registry.models import ComputeService, Facility, HealthStatus, LaunchMode, Lifecycle

KIND_PREFERENCE = ("jupyterhub", "visa", "binderhub", "remote-desktop")


@dataclass(frozen=True)
class Candidate:
    service_id: str
    facility_id: str
    kind: str
    fits: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"service_id": self.service_id, "facility_id": self.facility_id, "kind": self.kind,
                "fits": self.fits, "reason": self.reason}


def judge(service: ComputeService, facility: Facility, dataset: Dataset, issuers: set[str],
          wanted: dict[str, Any], home: bool) -> Candidate:
    """One service, kept or rejected with the first reason that rules it out."""
    def out(reason: str) -> Candidate:
        return Candidate(service.id, facility.id, service.kind, False, reason)

    caps = service.capabilities or {}
    if wanted.get("service_id") and wanted["service_id"] != service.id:
        return out("not the service asked for")
    if wanted.get("kind") and wanted["kind"] != service.kind:
        return out(f"a {service.kind}, not a {wanted['kind']}")
    if service.lifecycle == Lifecycle.PLANNED or not service.base_url:
        return out("not in service yet (no URL)")
    if service.health_status in (HealthStatus.DOWN, HealthStatus.BLOCKED):
        return out(f"health check says {service.health_status}: {service.health_error or ''}".rstrip(": "))
    if not issuers & set(facility.accepted_issuers or []):
        accepted = ", ".join(facility.accepted_issuers or []) or "none listed"
        return out(f"{facility.name} accepts sign-in from {accepted}; link one of those identities")
    if not dataset.is_public and not home:
        return out("embargoed data is analysed only at the facility that holds it")
    interface = wanted.get("interface")
    if interface and caps.get("interfaces") and interface not in caps["interfaces"] and not (
            interface == "notebook" and "jupyterlab" in caps["interfaces"]):
        return out(f"offers {', '.join(caps['interfaces'])}, not {interface}")
    if wanted.get("cpus") and caps.get("max_cpus") and wanted["cpus"] > caps["max_cpus"]:
        return out(f"at most {caps['max_cpus']} CPUs")
    if wanted.get("memory_gb") and caps.get("max_memory_gb") and wanted["memory_gb"] > caps["max_memory_gb"]:
        return out(f"at most {caps['max_memory_gb']:g} GB of memory")
    has_gpu = bool(caps.get("gpu")) or any(p.get("gpu") for p in caps.get("partitions", []))
    if wanted.get("gpu") and not has_gpu:
        return out("no GPU")
    partitions = [p["id"] for p in caps.get("partitions", [])]
    if wanted.get("partition") and partitions and wanted["partition"] not in partitions:
        return out(f"partitions are {', '.join(partitions)}")
    for option in ("profile", "plan"):
        offered = caps.get(f"{option}s") or []
        if wanted.get(option) and offered and wanted[option] not in offered:
            return out(f"{option}s are {', '.join(offered)}")
    config = service.connector_config or {}
    if service.launch_mode == LaunchMode.API and service.kind not in ("jupyterhub", "visa", "binderhub"):
        return out(f"API launches of {service.kind} are not supported yet; register it in deeplink mode")
    if service.launch_mode == LaunchMode.API and service.kind == "binderhub" and not config.get("default_repository"):
        return out("no repository to launch: set connector_config.default_repository")
    if service.launch_mode == LaunchMode.API and service.kind == "visa":
        if not config.get("user_token_issuer"):
            return out("VISA's API needs the user's token: set connector_config.user_token_issuer")
        if config["user_token_issuer"] not in issuers:
            return out(f"VISA's API takes tokens from {config['user_token_issuer']}; sign in with it")
    elif service.launch_mode == LaunchMode.API and service.kind == "jupyterhub" and service.credential_encrypted is None:
        return out("API mode without an API credential registered (the hub's service token)")
    mode = "starts a session through its API" if service.launch_mode == LaunchMode.API else "opens its launch page"
    return Candidate(service.id, facility.id, service.kind, True, f"fits; {mode}")


def rank(candidates: list[Candidate], preferred_kind: str | None) -> Candidate | None:
    fitting = [c for c in candidates if c.fits]
    order = (preferred_kind,) + KIND_PREFERENCE if preferred_kind else KIND_PREFERENCE
    fitting.sort(key=lambda c: (order.index(c.kind) if c.kind in order else len(order), c.service_id))
    return fitting[0] if fitting else None
