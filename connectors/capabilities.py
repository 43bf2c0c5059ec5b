"""The capabilities a connector can have, one small base class each.

A connector class names its capabilities by the bases it derives from (``class OodConnector(SessionLauncher)``)
and registers under the entry-point group ``panbroker.connectors`` with its kind as the entry's name. Every
capability's abstract methods are checked when the connector class is defined (``Connector.__init_subclass__``),
so a connector missing one fails at import, naming the method, not at the first launch.

The services read kinds and capabilities from the registered connectors (``connectors.kinds_with``); nothing
else lists them.
"""
from __future__ import annotations

from abc import abstractmethod
from datetime import datetime
from typing import Any, Callable, ClassVar, Iterator

from connectors.base import Capability, Connector, LaunchProgress, LaunchTarget, generic_user_options
from connectors.http import HttpClient
from panmodel.datasets import Dataset
from panmodel.states import TargetType


# -- compute services ---------------------------------------------------------------------------------
class Launcher(Connector):
    """Launch: a compute service that opens an analysis session for a dataset, at least through its own
    launch page (deep-link mode)."""

    capability = Capability.LAUNCH
    target = TargetType.SERVICE
    #: routing's order when several services fit (lower first)
    preference: ClassVar[int]
    #: the EOSC catalogue categories of a service of this kind, in words of ``broker.eosc_profile.CATEGORIES``
    eosc_categories: ClassVar[tuple[str, ...]] = ("analysis",)
    #: the service names people by a claim of their sign-in (``connector_config.username_claim``/
    #: ``username_pattern``), checked at routing
    username_from_claims: ClassVar[bool] = False
    #: what opens, in one sentence for the analyse panel, with ``{where}`` (the service's facility) and
    #: ``{home}`` (the dataset's) filled in
    opens: ClassVar[str] = "Opens a session at {where}, with the data on its file system."

    @abstractmethod
    def deep_link(self, target: LaunchTarget) -> str | None:
        """The service's own launch page for the dataset, or None when none is configured."""

    def user_options(self, target: LaunchTarget) -> dict[str, Any]:
        """Translate the request: the dataset and resources in this service's vocabulary (a launch page may
        preselect them too); raises ``RequestRefused`` naming what the service cannot take."""
        return generic_user_options(target)

    def describe(self, where: str, home: str, away: bool) -> str:
        """What opens, and where the data will be, in one sentence for the analyse panel."""
        text = self.opens.format(where=where, home=home)
        return text + (f" The data is copied from {home}." if away else "")

    def refusal(self, config: dict[str, Any], *, api_mode: bool, has_credential: bool,
                issuers: set[str]) -> str | None:
        """Why a service of this kind, registered with ``config``, cannot launch for a person signed in
        with ``issuers``; None when it can."""
        if api_mode:
            return f"API launches of {self.kind} are not supported; register it in deeplink mode"
        return None


class SessionLauncher(Launcher):
    """Launch through the service's API (API mode): start, poll, stop and follow a session, translating the
    request into the service's vocabulary."""

    capability = Capability.SESSIONS

    @abstractmethod
    def start(self, client: HttpClient, target: LaunchTarget) -> LaunchProgress:
        """Ask the service to start the session; tolerate one that already runs (never a second one)."""

    @abstractmethod
    def poll(self, client: HttpClient, target: LaunchTarget) -> LaunchProgress:
        """Where the session stands now."""

    @abstractmethod
    def stop(self, client: HttpClient, target: LaunchTarget) -> LaunchProgress:
        """Stop the session (a session already gone is stopped)."""

    def follow(self, client: HttpClient, target: LaunchTarget, report: Callable[[str], None],
               until: float) -> LaunchProgress | None:
        """Follow a starting session's event stream until ready, failed or the monotonic time ``until``,
        passing each progress message to ``report``. ``None``: no stream to follow, poll instead."""
        return None

    def refusal(self, config: dict[str, Any], *, api_mode: bool, has_credential: bool,
                issuers: set[str]) -> str | None:
        return None


def user_token_refusal(config: dict[str, Any], issuers: set[str], service: str) -> str | None:
    """Why a service called with the user's own token cannot take this launch: no issuer configured for its
    tokens, or the person has not signed in with it; None when it can."""
    if not config.get("user_token_issuer"):
        return f"{service} is called with the user's token: set connector_config.user_token_issuer"
    if config["user_token_issuer"] not in issuers:
        return f"{service} takes tokens from {config['user_token_issuer']}; sign in with it"
    return None


# -- dataset sources ----------------------------------------------------------------------------------
class DatasetSource(Connector):
    """A search endpoint: its records are mapped, once, into the broker's ``Dataset``."""

    target = TargetType.SEARCH_ENDPOINT

    @abstractmethod
    def to_dataset(self, record: Any, facility: str, source: str) -> Dataset:
        """Map: one record of the source into the broker's dataset; raise ``UpstreamError`` when unusable."""


class Harvester(DatasetSource):
    """Harvest: gather → fetch → map, the broker doing the import."""

    capability = Capability.HARVEST
    #: ``gather`` takes ``since`` and names deletions itself (``{"deleted": id}`` items)
    incremental: ClassVar[bool] = False

    @abstractmethod
    def gather(self, client: HttpClient, base_url: str, config: dict[str, Any], timeout: float,
               since: datetime | None = None) -> Iterator[list[Any]]:
        """The source's records, a page at a time (``since`` is given to incremental sources only)."""

    #: ``gather`` takes ``resume`` (a page's ``Page.resume``) and starts after that page
    resumable: ClassVar[bool] = False

    def fetch(self, client: HttpClient, item: Any) -> Any:
        """Complete one gathered item; sources whose listings carry whole records keep it as it is."""
        return item

    def decode(self, encoded: bytes) -> list[Any]:
        """The items of a page ``gather`` left encoded (``Page.encoded``), read where the page is mapped
        (possibly in another process); only sources that leave pages encoded have it."""
        raise NotImplementedError(f"{self.kind} leaves no page encoded")

    @classmethod
    def fetches(cls) -> bool:
        """Whether gathered items are completed one by one (``fetch``) before they are mapped."""
        return cls.fetch is not Harvester.fetch

    @classmethod
    def decodes(cls) -> bool:
        """Whether pages may come encoded (``decode``), so they can be read and mapped in other processes."""
        return cls.decode is not Harvester.decode


class LiveSearcher(DatasetSource):
    """Live search: the broker asks the source at query time, in the PaNOSC filter language (which the
    broker also speaks itself); a source speaking another language translates it here."""

    capability = Capability.LIVE_SEARCH

    @abstractmethod
    def find(self, client: HttpClient, base_url: str, flt: dict[str, Any], timeout: float) -> list[Any]:
        """Raw records for a PaNOSC filter (where, include, skip, limit, order)."""

    @abstractmethod
    def count(self, client: HttpClient, base_url: str, where: dict[str, Any], timeout: float) -> int:
        """How many records match a PaNOSC where clause."""

    @abstractmethod
    def get(self, client: HttpClient, base_url: str, pid: str, timeout: float) -> Any | None:
        """One raw record by its pid, or None when the source has none."""

    def include(self, client: HttpClient, base_url: str, timeout: float,
                wanted: tuple[str, ...]) -> list[dict[str, Any]]:
        """The relations of ``wanted`` this source can include in ``find``'s answers."""
        return [{"relation": r} for r in wanted]
