"""Routing: which compute service should analyse a dataset for a person, and why the others should not.

Candidates are the services of the facility that holds the dataset; for public data, services of the
federation-wide facilities join when the holder has none that fits. Each candidate is kept or rejected
with a reason: kind, lifecycle/URL, health, the person's identities, resources, data access.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from connectors import all_connectors, kinds_with
from connectors.base import Capability
from panmodel.datasets import Dataset
from panmodel.states import HealthStatus, LaunchMode, Lifecycle
from registry.models import ComputeService, Facility


@dataclass(frozen=True)
class LinkedIdentity:
    """One identity of the person launching, with the claims its issuer sent at the last sign-in."""

    issuer: str
    subject: str
    claims: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Candidate:
    service_id: str
    facility_id: str
    kind: str
    fits: bool
    reason: str
    partition: str | None = None  # the partition (or plan) the launch goes to, when the service has several

    def as_dict(self) -> dict[str, Any]:
        shown = {"service_id": self.service_id, "facility_id": self.facility_id, "kind": self.kind,
                 "fits": self.fits, "reason": self.reason}
        return {**shown, "partition": self.partition} if self.partition else shown


def judge(service: ComputeService, facility: Facility, dataset: Dataset, issuers: set[str],
          wanted: dict[str, Any], home: bool, identities: tuple[LinkedIdentity, ...] = ()) -> Candidate:
    """One service, kept or rejected with the first reason that rules it out; for a service with
    partitions, the smallest partition whose limits the request fits."""
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
    has_gpu = bool(caps.get("gpu")) or any(_gpus(p) != 0 for p in caps.get("partitions", []))
    if wanted_gpus(wanted) and not has_gpu:
        return out("no GPU")
    partitions = caps.get("partitions") or []
    ids = [p["id"] for p in partitions]
    if wanted.get("partition") and partitions and wanted["partition"] not in ids:
        return out(f"partitions are {', '.join(ids)}")
    chosen = None
    if partitions:
        pool = [p for p in partitions if not wanted.get("partition") or p["id"] == wanted["partition"]]
        misfits = [(p, misfit(p, wanted)) for p in pool]
        fitting = sorted((p for p, why in misfits if why is None),
                         key=lambda p: (_gpus(p) != 0, p.get("max_cpus") or 0, p.get("max_memory_gb") or 0))
        if not fitting:
            return out("; ".join(why for _, why in misfits if why) + "; what fits: " + "; ".join(map(offer, partitions)))
        chosen = fitting[0]["id"]
    for option in ("profile", "plan"):
        offered = caps.get(f"{option}s") or []
        if wanted.get(option) and offered and wanted[option] not in offered:
            return out(f"{option}s are {', '.join(offered)}")
    connector = all_connectors().get(service.kind)
    if connector is None or Capability.LAUNCH not in connector.capabilities():
        return out(f"no launch connector for {service.kind} is installed")
    api_mode = service.launch_mode == LaunchMode.API
    refusal = connector.refusal(service.connector_config or {}, api_mode=api_mode,
                                has_credential=service.credential_encrypted is not None, issuers=issuers)
    if refusal:
        return out(refusal)
    if api_mode and connector.username_from_claims:
        _name, refusal = hub_username(service, facility, identities)
        if refusal:
            return out(refusal)
    mode = "starts a session through its API" if service.launch_mode == LaunchMode.API else "opens its launch page"
    where = f" on partition {chosen}" if chosen else ""
    return Candidate(service.id, facility.id, service.kind, True, f"fits{where}; {mode}", chosen)


def rank(candidates: list[Candidate], preferred_kind: str | None) -> Candidate | None:
    fitting = [c for c in candidates if c.fits]
    preference = tuple(kinds_with(Capability.LAUNCH))  # the connectors' own order
    order = (preferred_kind,) + preference if preferred_kind else preference
    fitting.sort(key=lambda c: (order.index(c.kind) if c.kind in order else len(order), c.service_id))
    return fitting[0] if fitting else None


def wanted_gpus(wanted: dict[str, Any]) -> int:
    """GPUs asked for: ``gpus``, or one when only ``gpu: true`` was sent."""
    return int(wanted.get("gpus") or (1 if wanted.get("gpu") else 0))


def _gpus(partition: dict[str, Any]) -> int | None:
    """A partition's GPU count: 0 without GPUs, None when it has GPUs but registered no count."""
    if partition.get("max_gpus") is not None:
        return int(partition["max_gpus"])
    return None if partition.get("gpu") else 0


def misfit(partition: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    """The first registered limit of ``partition`` the request exceeds, named; None when it fits."""
    name, gpus, limit = partition["id"], wanted_gpus(wanted), _gpus(partition)
    if gpus and limit == 0:
        return f"partition {name} has no GPU"
    if gpus and limit is not None and gpus > limit:
        return f"partition {name} has at most {_count(limit, 'GPU')}"
    if wanted.get("cpus") and partition.get("max_cpus") and wanted["cpus"] > partition["max_cpus"]:
        return f"partition {name} has at most {partition['max_cpus']} CPUs"
    if wanted.get("memory_gb") and partition.get("max_memory_gb") and wanted["memory_gb"] > partition["max_memory_gb"]:
        return f"partition {name} has at most {partition['max_memory_gb']:g} GB of memory"
    if (wanted.get("runtime_hours") and partition.get("max_runtime_hours")
            and wanted["runtime_hours"] > partition["max_runtime_hours"]):
        return f"partition {name} runs sessions for at most {partition['max_runtime_hours']:g} hours"
    if wanted.get("profile") and partition.get("profiles") and wanted["profile"] not in partition["profiles"]:
        return f"partition {name} offers {', '.join(partition['profiles'])}, not {wanted['profile']}"
    return None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def offer(partition: dict[str, Any]) -> str:
    """What a partition takes at most, for the message of a refusal."""
    parts = [f"{partition['max_cpus']} CPUs" if partition.get("max_cpus") else None,
             f"{partition['max_memory_gb']:g} GB" if partition.get("max_memory_gb") else None]
    gpus = _gpus(partition)
    parts.append("no GPU" if gpus == 0 else _count(gpus, "GPU") if gpus else "GPUs")
    if partition.get("max_runtime_hours"):
        parts.append(f"{partition['max_runtime_hours']:g} h")
    return f"{partition['id']} up to " + ", ".join(p for p in parts if p)


# JupyterHub lower-cases names; without a registered pattern, refuse only what no hub takes
DEFAULT_USERNAME = re.compile(r"^[^/\s]{1,255}$")


def hub_username(service: ComputeService, facility: Facility,
                 identities: tuple[LinkedIdentity, ...]) -> tuple[str | None, str | None]:
    """The person's user name at the hub, or why there is none: the ``username_claim`` of an identity
    from an issuer the facility accepts (else the identity's subject), lower-cased as JupyterHub does,
    checked against the hub's ``username_pattern``."""
    config = service.connector_config or {}
    accepted = [i for i in identities if i.issuer in (facility.accepted_issuers or [])]
    if not accepted:
        return None, f"{facility.name} accepts none of your identities"
    claim = config.get("username_claim")
    if claim:
        named = [i for i in accepted if isinstance(i.claims.get(claim), str) and i.claims[claim]]
        if not named:
            issuers = ", ".join(sorted({i.issuer for i in accepted}))
            return None, (f"{service.title} knows people by the {claim!r} claim, and your sign-in at {issuers} "
                          f"sent none: sign in again with your {facility.name} account")
        name = named[0].claims[claim].lower()
    else:
        name = accepted[0].subject.lower()
    pattern = config.get("username_pattern")
    if not (re.fullmatch(pattern, name) if pattern else DEFAULT_USERNAME.match(name)):
        rule = f"must match {pattern}" if pattern else "no spaces or slashes"
        return None, f"your user name {name!r} is not one {service.title} takes ({rule}); ask {facility.name} about your account"
    return name, None
