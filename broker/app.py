"""Composition root: builds the broker's services from settings and the connexion/Flask app on top."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import connexion
import flask
from a2wsgi import WSGIMiddleware
from connexion.exceptions import ProblemException
from connexion.jsonifier import Jsonifier
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from starlette.exceptions import HTTPException as StarletteHTTPException

from broker import logs
from broker.api import problems
from broker.api.validation import VALIDATORS, BrokerScope
from broker.errors import BrokerError, ConfigurationError
from broker.auth import AuthService, load_issuers
from broker.catalogue import CatalogueService
from broker.eosc import CATALOGUE_VERSIONS, EoscService
from broker.harvest import HarvestService
from broker.launch.service import LaunchService
from broker.notify import Notifier
from broker.people import PeopleService
from broker.health import HealthService
from broker.registry_service import RegistryService
from broker.secretbox import SecretBox
from broker.search.index import DatasetIndex
from broker.search.live import LiveSearch
from broker.search.service import SearchService
from broker.search.tantivy_index import TantivyIndex
from broker.settings import Settings
from connectors.eosc import EoscCatalogueClient
from connectors.http import HttpClient, HttpLimits
from connectors.ssrf import AddressPolicy
from registry.store import Store, make_engine, migrate

OPENAPI = Path(__file__).resolve().parent.parent / "openapi"


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
    launches: LaunchService
    notifier: Notifier | None = None


def build_broker(settings: Settings, *, run_migrations: bool = True) -> Broker:
    issuers = load_issuers(settings.oidc_issuers)  # a configuration error is told before anything is touched
    engine = make_engine(settings.effective_database_url)
    if run_migrations:
        migrate(engine)
    store = Store(engine)
    policy = AddressPolicy(tuple(settings.allowed_networks))
    http = HttpClient(policy, HttpLimits(
        connect_timeout=settings.http_connect_timeout, read_timeout=settings.http_read_timeout,
        total_timeout=settings.http_total_timeout, max_response_bytes=settings.http_max_response_bytes,
        retries=settings.http_retries, breaker_fail_max=settings.breaker_fail_max,
        breaker_reset_seconds=settings.breaker_reset_seconds, endpoint_concurrency=settings.http_endpoint_concurrency,
        min_bytes_per_second=settings.http_min_bytes_per_second))
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
    launches = LaunchService(store, http, search, box,
                             tuple(f.strip() for f in settings.federation_wide_facilities.split(",") if f.strip()),
                             auth=auth)
    notifier = Notifier(store, http, settings)
    launches.on_settled = notifier.launch_settled
    return Broker(settings, store, http, registry, health, index, harvest, search, eosc, CatalogueService(store),
                  people, auth, launches, notifier)


def _allowed_methods(flask_app: Any, path: str) -> list[str]:
    """Every method some route answers at ``path`` (for a 405's Allow header)."""
    try:
        methods = flask_app.url_map.bind("broker").allowed_methods(path)
    except Exception:  # noqa: BLE001 - a path the map cannot even parse allows nothing
        return []
    return sorted(set(methods) - {"OPTIONS"})


def make_index(settings: Settings) -> DatasetIndex:
    """Elasticsearch when PANBROKER_ELASTICSEARCH_URL is set, else the embedded Tantivy index."""
    if settings.elasticsearch_url:
        from broker.search.es_index import ElasticsearchIndex  # the optional [elasticsearch] extra

        return ElasticsearchIndex(settings.elasticsearch_url)
    return TantivyIndex(settings.effective_index_dir)


def create_app(settings: Settings | None = None, broker: Broker | None = None) -> connexion.FlaskApp:
    """The ASGI app serving ``/api/v1`` (Swagger UI at ``/api/v1/ui``) and the portal pages."""
    settings = settings or (broker.settings if broker else Settings.from_env())
    logs.configure(settings.log_level, settings.log_format)
    broker = broker or build_broker(settings)
    # compact JSON: connexion's default indent=2 forces the pure-Python encoder (lists were 5x slower)
    app = connexion.FlaskApp(__name__, specification_dir=str(OPENAPI), jsonifier=Jsonifier(json))
    app.add_api("registry.yaml", validator_map=VALIDATORS, strict_validation=True,
                swagger_ui_options=SwaggerUIOptions(swagger_ui=True))
    app.app.extensions["panbroker"] = broker
    # a2wsgi's pool (10 threads by default) answers every Flask request; connexion offers no setting for it
    app._middleware_app.asgi_app = WSGIMiddleware(app.app.wsgi_app, workers=settings.request_threads)  # noqa: SLF001
    app.add_middleware(BrokerScope, position=MiddlewarePosition.BEFORE_SWAGGER, broker=broker,
                       allowed_methods=lambda path: _allowed_methods(app.app, path))
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
