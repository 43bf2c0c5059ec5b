"""Handlers of the registry API: facilities, services, search endpoints, EOSC entries, audit log."""
from __future__ import annotations

import re
from typing import Any, Callable

from connexion import request

from broker.api.context import broker, principal
from broker.api.reads import Body, answer, cache_of, digest_tag, json_body
from panmodel.errors import FieldError, InvalidInput
from broker.registry_kinds import KINDS, Kind
from broker.registry_service import Page, Precondition

# the version, then the tag of the state the server keeps on the object (health, EOSC sync), if any
ETAG = re.compile(r'^\s*(?:W/)?"?(\d+)(?:\.[0-9a-f]+)?"?\s*$')
SERVER_MANAGED = ("version", "created_at", "updated_at")


def _precondition() -> Precondition | None:
    header = request.headers.get("If-Match")
    if header is None:
        return None
    match = ETAG.match(header)
    if not match:
        raise InvalidInput.from_fields([FieldError("If-Match", 'send the ETag you read, e.g. "3"')])
    return Precondition(int(match.group(1)), from_header=True)


JSON = {"Content-Type": "application/json"}


def object_etag(kind: Kind, item: dict[str, Any]) -> str:
    """``"<version>"``, the version ``If-Match`` names; objects that also show state the server changes
    without a new version (health, EOSC sync) add a digest of it, so ``If-None-Match`` sees it change."""
    state = {k: v for k, v in item.items()
             if k not in kind.exported_fields and k not in SERVER_MANAGED and not k.startswith("has_")}
    if not state:
        return f'"{item["version"]}"'
    return f'"{item["version"]}.{digest_tag(json_body(state).data)[1:9]}"'


def _with_etag(kind: Kind, item: dict[str, Any], status: int = 200) -> tuple[dict, int, dict]:
    return item, status, {**JSON, "ETag": object_etag(kind, item)}


def _page(page: Page) -> dict[str, Any]:
    return {"items": page.items, "total": page.total, "limit": page.limit, "offset": page.offset}


def _lister(kind: Kind) -> Callable[..., Any]:
    def handler(limit: int = 50, offset: int = 0, **filters: str) -> Any:
        key = ("list", kind.name, limit, offset, tuple(sorted((k, v) for k, v in filters.items() if v is not None)))
        services = broker()
        return answer(cache_of(services.store).get(
            key, lambda: json_body(_page(services.registry.list(kind, filters, limit, offset)))))

    return handler


def _getter(kind: Kind, path_param: str) -> Callable[..., Any]:
    def handler(**params: str) -> Any:
        services = broker()

        def build() -> Body:
            item = services.registry.get(kind, params[path_param])
            return json_body(item, object_etag(kind, item))

        return answer(cache_of(services.store).get(("get", kind.name, params[path_param]), build))

    return handler


def _creator(kind: Kind) -> Callable[..., tuple]:
    def handler(body: Any, token_info: dict | None = None, **_: Any) -> tuple:
        item = broker().registry.create(principal(token_info), kind, body)
        return _with_etag(kind, item, 201)

    return handler


def _updater(kind: Kind, path_param: str, partial: bool) -> Callable[..., tuple]:
    def handler(body: Any, token_info: dict | None = None, **params: Any) -> tuple:
        item = broker().registry.update(principal(token_info), kind, params[path_param], body,
                                        _precondition(), partial=partial)
        return _with_etag(kind, item)

    return handler


def _deleter(kind: Kind, path_param: str) -> Callable[..., tuple]:
    def handler(token_info: dict | None = None, **params: Any) -> tuple:
        broker().registry.delete(principal(token_info), kind, params[path_param], _precondition())
        return "", 204

    return handler


def _operations(kind: Kind, path_param: str) -> tuple:
    return (_lister(kind), _creator(kind), _getter(kind, path_param), _updater(kind, path_param, False),
            _updater(kind, path_param, True), _deleter(kind, path_param))


(list_facilities, create_facility, get_facility, replace_facility, patch_facility,
 delete_facility) = _operations(KINDS.facility, "facility_id")
(list_services, create_service, get_service, replace_service, patch_service,
 delete_service) = _operations(KINDS.service, "service_id")
(list_search_endpoints, create_search_endpoint, get_search_endpoint, replace_search_endpoint,
 patch_search_endpoint, delete_search_endpoint) = _operations(KINDS.search_endpoint, "endpoint_id")
(list_eosc_entries, create_eosc_entry, get_eosc_entry, replace_eosc_entry, patch_eosc_entry,
 delete_eosc_entry) = _operations(KINDS.eosc_entry, "service_id")


def audit_log(token_info: dict | None = None, limit: int = 50, offset: int = 0,
              object_type: str | None = None, object_id: str | None = None) -> tuple:
    page = broker().registry.audit_log_as(principal(token_info), object_type, object_id, limit, offset)
    return _page(page), 200, JSON
