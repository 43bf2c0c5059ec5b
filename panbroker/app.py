"""Composition root: builds the broker's services from settings and the connexion/Flask app on top."""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import connexion
import flask
import yaml
from a2wsgi import WSGIMiddleware
from connexion.exceptions import ProblemException
from connexion.jsonifier import Jsonifier
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from starlette.exceptions import HTTPException as StarletteHTTPException

from broker import logs
from broker.api import metrics, problems
from broker.api.reads import ReadReplay
from broker.account import AccountPages
from broker.api.validation import VALIDATORS, BrokerScope
from panmodel.errors import BrokerError, ConfigurationError
from broker.auth import AuthService, UserTokens, load_issuers
from broker.basket import BasketItems, BasketService
from broker.catalogue import CatalogueService
from broker.eosc import CATALOGUE_VERSIONS, EoscService
from broker.harvest import HarvestService
from broker.landing import LandingPages
from broker.launch.panel import AnalyseService
from broker.launch.placement import Placement
from broker.launch.records import LaunchRecords
from broker.launch.requests import LaunchRequests
from broker.launch.runner import LaunchRunner
from broker.launch.targets import LaunchTargets
from broker.notify import Notifier
from broker.operator import OperatorConsole
from broker.people import PeopleService
from broker.health import HealthService
from broker.registry_service import RegistryService
from broker.secretbox import SecretBox
from broker.search.index import DatasetIndex
from broker.search.live import LiveSearch
from broker.search.page import SearchPages
from broker.search.service import SearchService
from broker.search.tantivy_index import TantivyIndex
from broker.settings import Settings
from connectors import kinds
from connectors.eosc import EoscCatalogueClient
from connectors.http import HttpClient, HttpLimits
from connectors.ssrf import AddressPolicy
from panmodel.states import TargetType
from registry.store import Store, make_engine, migrate, wait_for_schema

OPENAPI = Path(__file__).resolve().parent.parent / "openapi"
SCHEMA_WAIT_SECONDS = 300  # a replica started with PANBROKER_MIGRATE_ON_START=false waits this long for the schema


@dataclass
class Broker:
    """The broker's services, wired once; handlers, the CLI and the worker use these."""

    settings: Settings
    store: Store
    http: HttpClient
    registry: RegistryService
    health: HealthService
    index: DatasetIndex
    harvest: HarvestService
    search: SearchService
    eosc: EoscService
    catalogue: CatalogueService
    people: PeopleService
    auth: AuthService
    launches: LaunchRequests
    launch_runner: LaunchRunner
    notifier: Notifier | None = None
    baskets: BasketService | None = None
    basket_items: BasketItems | None = None
    operator: OperatorConsole | None = None
    analyse: AnalyseService | None = None
    landing: LandingPages | None = None
    account: AccountPages | None = None
    search_pages: SearchPages | None = None


def build_broker(settings: Settings, *, run_migrations: bool = True) -> Broker:
    issuers = load_issuers(settings.oidc_issuers)  # a configuration error is told before anything is touched
    engine = make_engine(settings.effective_database_url)
    if run_migrations and settings.migrate_on_start:
        migrate(engine)
    elif run_migrations:
        try:
            wait_for_schema(engine, SCHEMA_WAIT_SECONDS)
        except TimeoutError as exc:
            raise ConfigurationError(str(exc)) from None
    store = Store(engine)
    policy = AddressPolicy(tuple(settings.allowed_networks))
    http = HttpClient(policy, HttpLimits(
        connect_timeout=settings.http_connect_timeout, read_timeout=settings.http_read_timeout,
        total_timeout=settings.http_total_timeout, max_response_bytes=settings.http_max_response_bytes,
        retries=settings.http_retries, breaker_fail_max=settings.breaker_fail_max,
        breaker_reset_seconds=settings.breaker_reset_seconds, endpoint_concurrency=settings.http_endpoint_concurrency,
        min_bytes_per_second=settings.http_min_bytes_per_second))
    http.observer = metrics.outbound_observer(http, store)
    box = SecretBox.from_settings(settings.encryption_keys, settings.data_dir)
    registry = RegistryService(store, box, policy.is_allowed)
    health = HealthService(store, http, timeout=settings.health_timeout_seconds,
                           concurrency=settings.health_concurrency, history=settings.health_history)
    index = make_index(settings)
    harvest = HarvestService(store, http, index, timeout=settings.harvest_timeout_seconds,
                             max_delete_share=settings.harvest_max_delete_share,
                             commit_every=settings.harvest_commit_every, processes=settings.harvest_processes)
    search = SearchService(store, index, LiveSearch(http, deadline=settings.search_deadline_seconds), harvest.latest)
    if settings.eosc_catalogue_version not in (*CATALOGUE_VERSIONS, "auto"):
        raise ConfigurationError("PANBROKER_EOSC_CATALOGUE_VERSION: use v5, v6 or auto")
    client = (EoscCatalogueClient(http, settings.eosc_catalogue_url, settings.eosc_catalogue_id,
                                  api="v5" if settings.eosc_catalogue_version == "auto" else
                                  settings.eosc_catalogue_version)
              if settings.eosc_catalogue_url else None)
    eosc = EoscService(store, registry, client, settings.eosc_token or None,
                       catalogue_version=settings.eosc_catalogue_version,
                       token_url=settings.eosc_token_url or None, aai_client_id=settings.eosc_aai_client_id or None)
    people = PeopleService(store)
    auth = AuthService(store, http, people, box, issuers, settings.effective_public_url)
    launches, runner = build_launches(settings, store, http, search, box, auth.tokens)
    notifier = Notifier(store, http, settings)
    launches.records.on_settled = notifier.launch_settled
    baskets = launches.placement.baskets
    catalogue = CatalogueService(store, registry, health,
                                 lambda: {p.name: p.title for p in auth.available()})
    return Broker(settings, store, http, registry, health, index, harvest, search, eosc, catalogue, people, auth,
                  launches, runner, notifier, baskets, basket_items=BasketItems(baskets, launches, registry.facility_names),
                  operator=OperatorConsole(registry, people, eosc), analyse=AnalyseService(launches, catalogue, registry),
                  landing=LandingPages(search, catalogue), search_pages=SearchPages(search, registry.facility_names),
                  account=AccountPages(people, registry.facility_names, auth.available))


def build_launches(settings: Settings, store: Store, http: HttpClient, search: SearchService, box: SecretBox,
                   tokens: UserTokens) -> tuple[LaunchRequests, LaunchRunner]:
    """The launch services: requests (API and pages) and the runner (the worker's part), over one set of
    records."""
    records = LaunchRecords(store, box)
    placement = Placement(store, search, records, tuple(
        f.strip() for f in settings.federation_wide_facilities.split(",") if f.strip()))
    placement.baskets = BasketService(search, placement, placement.federation_wide, settings.effective_public_url)
    targets = LaunchTargets(store, search, box, records, tokens)
    runner = LaunchRunner(store, http, records, placement, targets, lease_seconds=settings.launch_lease_seconds,
                          exclusive=store.engine.dialect.name == "sqlite")
    return LaunchRequests(store, http, search, records, placement, targets), runner


def _allowed_methods(flask_app: Any, path: str) -> list[str]:
    """Every method some route answers at ``path`` (for a 405's Allow header)."""
    try:
        methods = flask_app.url_map.bind("broker").allowed_methods(path)
    except Exception:  # noqa: BLE001 - a path the map cannot even parse allows nothing
        return []
    return sorted(set(methods) - {"OPTIONS"})


def _route(flask_app: Any, method: str, path: str) -> str:
    """The route template ``path`` matches (``/api/v1/services/<service_id>``), for metrics labels."""
    try:
        rule, _ = flask_app.url_map.bind("broker").match(path, method=method, return_rule=True)
    except Exception:  # noqa: BLE001 - 404s, 405s and redirects share one label
        return "(unmatched)"
    return rule.rule


def make_index(settings: Settings) -> DatasetIndex:
    """Elasticsearch when PANBROKER_ELASTICSEARCH_URL is set, else the embedded Tantivy index."""
    if settings.elasticsearch_url:
        from broker.search.es_index import ElasticsearchIndex  # the optional [elasticsearch] extra

        return ElasticsearchIndex(settings.elasticsearch_url)
    return TantivyIndex(settings.effective_index_dir)


@cache
def openapi_spec() -> dict[str, Any]:
    """The OpenAPI contract, with the kinds of compute services and search endpoints the installed
    connectors declare (the file lists none: a connector joins the API by its entry point)."""
    spec = yaml.safe_load((OPENAPI / "broker.yaml").read_text(encoding="utf-8"))
    schemas = spec["components"]["schemas"]
    schemas["ServiceKind"]["enum"] = kinds(TargetType.SERVICE)
    schemas["SearchKind"]["enum"] = kinds(TargetType.SEARCH_ENDPOINT)
    return spec


def create_app(settings: Settings | None = None, broker: Broker | None = None) -> connexion.FlaskApp:
    """The ASGI app serving ``/api/v1`` (Swagger UI at ``/api/v1/ui``) and the portal pages."""
    settings = settings or (broker.settings if broker else Settings.from_env())
    logs.configure(settings.log_level, settings.log_format)
    broker = broker or build_broker(settings)
    # compact JSON: connexion's default indent=2 forces the pure-Python encoder (lists were 5x slower)
    app = connexion.FlaskApp(__name__, specification_dir=str(OPENAPI), jsonifier=Jsonifier(json))
    app.add_api(copy.deepcopy(openapi_spec()), validator_map=VALIDATORS, strict_validation=True,
                swagger_ui_options=SwaggerUIOptions(swagger_ui=True))
    app.app.extensions["panbroker"] = broker
    # a2wsgi's pool (10 threads by default) answers every Flask request; connexion offers no setting for it
    app._middleware_app.asgi_app = WSGIMiddleware(app.app.wsgi_app, workers=settings.request_threads)  # noqa: SLF001
    app.add_middleware(BrokerScope, position=MiddlewarePosition.BEFORE_SWAGGER, broker=broker,
                       allowed_methods=lambda path: _allowed_methods(app.app, path))
    app.add_middleware(ReadReplay, position=MiddlewarePosition.BEFORE_SWAGGER, store=broker.store)
    app.add_middleware(metrics.MetricsMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION, store=broker.store,
                       route_of=lambda method, path: _route(app.app, method, path),
                       networks=settings.effective_metrics_networks, token=settings.metrics_token)
    app.add_error_handler(BrokerError, problems.broker_error)
    app.add_error_handler(ProblemException, problems.connexion_problem)
    app.add_error_handler(StarletteHTTPException, problems.http_error)
    app.add_error_handler(Exception, problems.unexpected)

    from broker.api.oai import blueprint as oai_provider
    from broker.api.panosc import blueprint as panosc_api
    from web import blueprint  # the portal pages; imported here so services never import Flask
    from web.auth import blueprint as auth_pages

    app.app.register_blueprint(blueprint)
    app.app.register_blueprint(panosc_api)
    app.app.register_blueprint(oai_provider)
    app.app.register_blueprint(auth_pages)

    @app.app.before_request
    def _request_id() -> None:  # the id BrokerScope gave the request, for the logs of this thread
        logs.REQUEST_ID.set(flask.request.headers.get(logs.HEADER))

    return app
