"""The Analyse panel of a dataset page, as the launch service answers it: for each service that can take
the dataset, one sentence of what opens and where the data will be, its limits and only the options it
offers; the person's choices checked in one round against the chosen service, each message at its field,
before any launch is recorded; a session already running for the same dataset and service offered instead
of a second one; routing reasons in plain words. Also the Analyse step an "Analyse this DOI" link opens, and
the person's sessions as their pages show them."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from broker.authz import Principal
from broker.catalogue import CatalogueService
from panmodel.errors import BrokerError, NotFound
from broker.launch.doi import FacilityDatasets, by_facility, datasets_of, normalise
from broker.launch.records import ACTIVE, LaunchEventView, LaunchView
from broker.launch.requests import LaunchRequests
from broker.previews import FilePreview, file_previews
from broker.registry_service import RegistryService
from connectors import all_connectors
from panmodel.datasets import Dataset

URL = re.compile(r"\s*\(?https?://\S+\)?:?")
NAMED_CHOICES = ("partition", "profile", "plan")


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


@dataclass(frozen=True)
class AnalysePanel:
    """What the dataset page's Analyse panel shows to one viewer."""

    dataset: Dataset
    home: str  # the name of the facility that holds the data
    candidates: list[dict[str, Any]]  # the routing's verdict on every service, fitting or not
    services: dict[str, dict[str, Any]]  # catalogue entries of the candidates, by id
    offers: list[Offer]
    choices: dict[str, list[str]]  # partitions, profiles and plans the offers have
    running: list[LaunchView]  # the viewer's sessions of this dataset that are starting or ready
    facility_names: dict[str, str]
    previews: tuple[FilePreview, ...] = ()  # links to a view of each of its files, when open data


@dataclass(frozen=True)
class AnalyseOutcome:
    """A submitted Analyse form: the session started (``launch``), or why not — a message per field and a
    summary, or the viewer's session of the same dataset at the same service (``existing``)."""

    launch: LaunchView | None = None
    errors: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    existing: list[LaunchView] = field(default_factory=list)


@dataclass(frozen=True)
class SessionsView:
    """A person's sessions as the pages show them: with the titles of their datasets (the pid when no
    longer found) and the catalogue entries of their services."""

    launches: list[LaunchView]
    titles: dict[str, str]
    services: dict[str, dict[str, Any]]
    events: list[LaunchEventView] = field(default_factory=list)  # of the one session shown
    typical_start_seconds: float | None = None  # of its service's recent launches
    names: dict[str, str] = field(default_factory=dict)  # facility id -> name, for the one session shown


@dataclass(frozen=True)
class DoiView:
    """What the "Analyse this DOI" link opens for one viewer: nothing but ``sign_in`` before they sign in; for a
    DOI of several datasets, those by facility, to choose from; for one dataset, its Analyse panel with the
    link's choices the panel offers (``chosen``) and a note on one it cannot take."""

    doi: str
    sign_in: bool = False
    groups: tuple[FacilityDatasets, ...] = ()
    panel: AnalysePanel | None = None
    chosen: dict[str, str] = field(default_factory=dict)  # the Analyse form's fields, preselected
    note: str = ""

    @property
    def count(self) -> int:
        return sum(len(group.datasets) for group in self.groups)


class AnalyseService:
    def __init__(self, launches: LaunchRequests, catalogue: CatalogueService, registry: RegistryService):
        self.launches = launches
        self.catalogue = catalogue
        self.registry = registry

    def panel(self, actor: Principal | None, pid: str) -> AnalysePanel:
        """The panel of the dataset ``pid`` for ``actor`` (None: nobody signed in)."""
        dataset = self.launches.search.get(pid)
        names = self.registry.facility_names()
        candidates = self.launches.preview(actor, dataset, {})
        services = {s["id"]: s for s in self.catalogue.services(
            facility=sorted({c["facility_id"] for c in candidates}))} if candidates else {}
        home = names.get(dataset.facility, dataset.facility)
        fitting = offers(candidates, services, home)
        mine = running(self.launches.list(actor), dataset.pid) if actor is not None and actor.person_id else []
        return AnalysePanel(dataset, home, candidates, services, fitting,
                            _choices([services[o.service_id] for o in fitting]), mine, names,
                            file_previews(self.catalogue, dataset))

    def doi(self, actor: Principal | None, doi: str, service: str = "", profile: str = "") -> DoiView:
        """The Analyse step a DOI link opens for ``actor`` (None: nobody signed in yet), with the link's
        ``service`` and ``profile`` preselected; ``NotFound`` when the DOI names no dataset known."""
        doi = normalise(doi)
        datasets = datasets_of(self.launches.search.index, doi)
        if not datasets:
            raise NotFound(f"No dataset with the DOI {doi} or belonging to it is known at any facility of the "
                           "federation yet. Check the DOI, or search for the dataset.")
        if actor is None:
            return DoiView(doi, sign_in=True)
        if len(datasets) > 1:
            return DoiView(doi, groups=by_facility(datasets))
        panel = self.panel(actor, datasets[0].pid)
        chosen, note = {}, ""
        if service in {offer.service_id for offer in panel.offers}:
            chosen["service_id"] = service
        elif service:
            note = (f"The link asks for the service {service!r}, which cannot take this dataset for you: "
                    "choose one of those offered.")
        if profile:
            chosen["profile"] = profile
        return DoiView(doi, panel=panel, chosen=chosen, note=note)

    def doi_count(self, doi: str) -> int:
        """How many datasets the DOI names (the badge a DOI link shows)."""
        return len(datasets_of(self.launches.search.index, normalise(doi)))

    def sessions(self, actor: Principal) -> SessionsView:
        """The caller's sessions, newest first."""
        return self._described(self.launches.list(actor))

    def session(self, actor: Principal, launch_id: str) -> SessionsView:
        """One of the caller's sessions, with its events and how long its service usually takes to start."""
        launch = self.launches.get(actor, launch_id)
        described = self._described([launch])
        typical = self.launches.typical_start_seconds(launch.service_id) if launch.service_id else None
        return replace(described, events=self.launches.events(actor, launch_id), typical_start_seconds=typical,
                       names=self.registry.facility_names())

    def _described(self, launches: list[LaunchView]) -> SessionsView:
        titles = {}
        for pid in {launch.dataset for launch in launches}:
            found = self.launches.search.index.get(pid)
            titles[pid] = found.title if found else pid
        wanted = sorted({launch.facility_id for launch in launches if launch.facility_id})
        services = {s["id"]: s for s in self.catalogue.services(facility=wanted)} if wanted else {}
        return SessionsView(launches, titles, services)

    def start(self, actor: Principal, pid: str, resources: dict[str, Any], *, service_id: str | None = None,
              interface: str | None = None, key: str | None = None,
              errors: dict[str, str] | None = None) -> AnalyseOutcome:
        """Start a session of ``pid`` unless a choice is wrong (``errors``: those the form already found,
        reported in the same round), the chosen service cannot take it now, or the same dataset already
        runs there for ``actor``: then nothing is recorded."""
        panel = self.panel(actor, pid)
        chosen = next((o for o in panel.offers if o.service_id == service_id),
                      None if service_id else (panel.offers[0] if panel.offers else None))
        found = dict(errors or {})
        found.update({k: v for k, v in check(chosen, resources, interface).items() if k not in found})
        if found:
            return AnalyseOutcome(errors=found, summary="Some choices need fixing: see the messages beside them.")
        wanted = {**resources, "service_id": chosen.service_id, **({"interface": interface} if interface else {})}
        verdict = next((c for c in self.launches.preview(actor, panel.dataset, wanted)
                        if c["service_id"] == chosen.service_id), None)
        if verdict is None or not verdict["fits"]:
            reason = plain(verdict["reason"]) if verdict else "cannot take this dataset"
            return AnalyseOutcome(errors={"service_id": reason},
                                  summary=f"{chosen.title} cannot start this session: {reason}.")
        same = running(panel.running, panel.dataset.pid, chosen.service_id)
        if same and not (key and self.launches.by_key(actor, key)):  # a form sent twice is the same launch
            return AnalyseOutcome(existing=same)
        body = {"dataset": panel.dataset.pid, "resources": resources, "service_id": chosen.service_id,
                **({"interface": interface} if interface else {})}
        try:
            launch, _created = self.launches.create(actor, key, body)
        except BrokerError as exc:
            return AnalyseOutcome(errors={e.field.removeprefix("resources."): plain(e.message) for e in exc.errors},
                                  summary=plain(exc.detail))
        return AnalyseOutcome(launch=launch)


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
    for name in NAMED_CHOICES:
        offered = caps.get(f"{name}s") or []
        if resources.get(name) and resources[name] not in offered:
            errors[name] = (f"{offer.title} offers {', '.join(offered)}" if offered
                            else f"{offer.title} has no {name}s: leave it at the service's default")
    interfaces = caps.get("interfaces") or []
    if interface and interfaces and interface not in interfaces:
        errors["interface"] = f"{offer.title} offers {', '.join(interfaces)}"
    return errors


def running(launches: list[LaunchView], pid: str, service_id: str | None = None) -> list[LaunchView]:
    """The sessions of this dataset that are starting or ready (at one service, if named)."""
    return [launch for launch in launches if launch.dataset == pid and launch.state in ACTIVE
            and (service_id is None or launch.service_id in (service_id, None))]


def _choices(fitting: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The partitions, profiles and plans the fitting services offer, for the panel's selects."""
    offered: dict[str, dict[str, None]] = {name: {} for name in NAMED_CHOICES}
    for service in fitting:
        for name, values in offered.items():
            values.update(dict.fromkeys(service["capabilities"][f"{name}s"]))
    return {name: list(values) for name, values in offered.items() if values}


__all__ = ["AnalyseOutcome", "AnalysePanel", "AnalyseService", "DoiView", "Offer", "SessionsView", "check", "limits", "offers",
           "plain", "running", "sentence"]
