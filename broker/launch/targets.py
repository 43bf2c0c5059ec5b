"""Target building: what a connector needs to start, follow or stop one launch's session, and the stop
itself (asked by a cancel and by a start that came up after it)."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from broker.basket import session_environment
from panmodel.errors import Conflict, NotFound
from broker.launch.records import STOP_FAILED, LaunchRecords
from panmodel.datasets import Dataset
from broker.search.service import SearchService
from broker.secretbox import SecretBox
from connectors import connector_for
from connectors.base import LaunchTarget, data_path
from connectors.errors import UpstreamError
from connectors.http import HttpClient
from panmodel.states import LaunchMode
from registry.models import ComputeService, Launch
from registry.store import Store

NO_TARGET = LaunchTarget("", {}, None, None, "", {})


class LaunchTargets:
    def __init__(self, store: Store, search: SearchService, box: SecretBox, records: LaunchRecords,
                 auth: Any = None):
        self.store = store
        self.search = search
        self.box = box
        self.records = records
        self.auth = auth  # broker.auth.UserTokens: the user's own tokens for services that need them

    def build(self, launch_id: str, translate: bool = True) -> tuple[LaunchTarget, ComputeService | None]:
        """What the connector needs for this launch; with ``translate``, the request in the service's
        vocabulary (raises ``RequestRefused`` when the service cannot take it)."""
        with self.store.session() as session:
            launch = session.get(Launch, launch_id)
            service = session.get(ComputeService, launch.service_id) if launch.service_id else None
            if service is None:
                return NO_TARGET, None
            chosen = next((c for c in launch.decision or [] if c.get("service_id") == service.id and c.get("fits")), {})
        dataset = self._dataset(launch.dataset_pid, launch.facility_id)
        proposals, dois, facts = dataset_facts(dataset)
        resources = dict(launch.request.get("resources", {}))
        partitions = {p["id"]: p for p in (service.capabilities or {}).get("partitions", [])}
        if chosen.get("partition"):
            resources["partition"] = chosen["partition"]
        credential = self.box.decrypt(service.credential_encrypted) if service.credential_encrypted else None
        config = dict(service.connector_config or {})
        basket = self._manifest(launch.basket, config) if launch.basket else None
        target = LaunchTarget(service.base_url or "", config, credential, launch.username, launch.server_name or "", {},
                              proposals, dois, dataset.pid, self._user_token(launch, service, config),
                              resources=resources, interface=launch.request.get("interface"),
                              partition=partitions.get(resources.get("partition")), facts=facts, basket=basket,
                              environment=session_environment(basket) if basket else {})
        if translate:
            target = replace(target, user_options=connector_for(service.kind).user_options(target))
        return target, service

    def _dataset(self, pid: str, facility: str | None) -> Dataset:
        try:
            return self.search.get(pid)
        except NotFound:
            return Dataset(pid=pid, facility=facility or "", title=pid)

    def _manifest(self, manifest: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        """The basket's manifest with, for each dataset the service's facility holds, its folder there (from
        the service's ``data_path_template``) and a sentence saying where it is."""
        datasets = []
        for entry in manifest.get("datasets", []):
            if entry.get("access") == "local":
                _proposals, _dois, facts = dataset_facts(self._dataset(entry["pid"], entry.get("facility")))
                path, where = data_path(config.get("data_path_template"), facts)
                entry = {**entry, "path": path, "location": where}
            datasets.append(entry)
        return {**manifest, "datasets": datasets}

    def _user_token(self, launch: Launch, service: ComputeService, config: dict[str, Any]) -> str | None:
        if service.launch_mode != LaunchMode.API or not config.get("user_token_issuer") or self.auth is None:
            return None
        return self.auth.downstream_token(launch.person_id, config["user_token_issuer"],
                                          config.get("token_exchange_audience"))

    def stop(self, http: HttpClient, launch_id: str, target: LaunchTarget, service: ComputeService) -> None:
        """Ask the service to stop the session; ``Conflict`` (noted on the launch) when it did not."""
        try:
            self.records.note(launch_id, connector_for(service.kind).stop(http, target).message)
        except UpstreamError as exc:
            self.records.note(launch_id, f"{STOP_FAILED}{exc.detail}")
            raise Conflict(f"cancelled, but the service did not stop the session yet ({exc.detail}); "
                           "cancel again to retry") from exc


def dataset_facts(dataset: Dataset) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, str]]:
    """The dataset's proposals, DOIs, and the facts a service's vocabulary and path template read."""
    proposals = tuple(d.pid for d in dataset.documents if (d.type or "proposal") == "proposal")
    dois = tuple(dict.fromkeys([*([dataset.doi] if dataset.doi else []), *(d.doi for d in dataset.documents if d.doi)]))
    facts = {"pid": dataset.pid, "facility": dataset.facility, "proposal": proposals[0] if proposals else "",
             "instrument": dataset.instrument or "", "doi": dois[0] if dois else "",
             "year": str(dataset.creation_date.year) if dataset.creation_date else "",
             "landing_url": f"https://doi.org/{dois[0]}" if dois else ""}
    return proposals, dois, {k: v for k, v in facts.items() if v}


__all__ = ["LaunchTargets", "NO_TARGET", "dataset_facts"]
