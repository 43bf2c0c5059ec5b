"""The simulated EOSC catalogue's field validator (see ``demo/eosc_catalogue.py``) — SIMULATED.

Its rules and messages are those of resource-catalogue's FieldValidator: mandatory fields ("Field 'x' is
mandatory."), vocabulary ids of the right type, e-mail syntax, duplicates, an existing provider, and every URL
field answering 2xx to HEAD (GET when HEAD is not allowed) within the timeout (5 s upstream).
"""
from __future__ import annotations

import json
import re
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import requests

VOCABULARIES = Path(__file__).resolve().parent.parent / "registry" / "vocabularies" / "eosc"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
# REGION and COUNTRY are large upstream; the simulator knows the region ids and ISO 3166-1 alpha-2 shapes
REGIONS = {"EO", "WW", "EU", "EEA"}
COUNTRY = re.compile(r"^[A-Z]{2}$")
LANGUAGE = re.compile(r"^[a-z]{2}$")


def vocabulary(name: str) -> dict[str, dict[str, Any]]:
    return {entry["id"]: entry for entry in json.loads((VOCABULARIES / f"{name}.json").read_text("utf-8"))}


# field -> (vocabulary file, the catalogue's type name) for the plain vocabulary fields of a v5 Service
V5_VOCABULARY_FIELDS = {"targetUsers": "TARGET_USER", "accessTypes": "ACCESS_TYPE", "accessModes": "ACCESS_MODE",
                        "trl": "TRL", "lifeCycleStatus": "LIFE_CYCLE_STATUS", "orderType": "ORDER_TYPE"}
V5_MANDATORY = ("id", "abbreviation", "name", "resourceOrganisation", "webpage", "description", "tagline", "logo",
                "scientificDomains", "categories", "targetUsers", "geographicalAvailabilities",
                "languageAvailabilities", "mainContact", "publicContacts", "helpdeskEmail", "securityContactEmail",
                "trl", "termsOfUse", "privacyPolicy", "orderType")
V5_URLS = ("webpage", "logo", "helpdeskPage", "userManual", "termsOfUse", "privacyPolicy", "accessPolicy",
           "resourceLevel", "trainingInformation", "statusMonitoring", "maintenance", "order", "paymentModel",
           "pricing")
V6_MANDATORY = ("id", "name", "nodePID", "description", "publishingDate", "type", "resourceOwner", "webpage",
                "jurisdiction", "trl", "orderType", "mainContact", "publicContacts")
V6_URLS = ("webpage", "logo", "termsOfUse", "privacyPolicy", "accessPolicy", "order")
V6_VOCABULARY_FIELDS = {"accessTypes": "ACCESS_TYPE", "trl": "TRL", "orderType": "ORDER_TYPE"}


class Invalid(Exception):
    """What the catalogue's ValidationException carries."""


def validate(catalogue: Any, service: dict[str, Any]) -> None:
    """Raise ``Invalid`` with the catalogue's message for the first rule ``service`` breaks."""
    if not isinstance(service, dict):
        raise Invalid("Attempt to validate null object..")
    v6 = catalogue.major >= 6
    mandatory = list(V6_MANDATORY if v6 else V5_MANDATORY)
    if not v6 and (catalogue.major, int(catalogue.version.split(".")[1])) >= (5, 1):
        mandatory.append("catalogueId")
    for name in mandatory:
        if _empty(service.get(name)):
            raise Invalid(f"Field '{name}' is mandatory.")
    _contacts(service, v6)
    for name, vocabulary in (V6_VOCABULARY_FIELDS if v6 else V5_VOCABULARY_FIELDS).items():
        for value in _as_list(service.get(name)):
            if value not in catalogue.vocabularies[vocabulary]:
                raise Invalid(f"Field '{name}' should contain the ID of a type "
                              f"'{vocabulary.replace('_', ' ').capitalize()}' Vocabulary")
    _pairs(catalogue, service, "scientificDomains", "scientificDomain", "SCIENTIFIC_DOMAIN", "scientificSubdomain",
                "SCIENTIFIC_SUBDOMAIN")
    _pairs(catalogue, service, "categories", "category", "CATEGORY", "subcategory", "SUBCATEGORY")
    if not v6:
        for value in service.get("geographicalAvailabilities") or []:
            if value not in REGIONS and not COUNTRY.match(str(value)):
                raise Invalid("Field 'geographicalAvailabilities' should contain the ID of either one of the "
                              "types 'REGION' or 'COUNTRY' Vocabularies")
        for value in service.get("languageAvailabilities") or []:
            if not LANGUAGE.match(str(value)):
                raise Invalid("Field 'languageAvailabilities' should contain the ID of a type 'LANGUAGE' "
                              "Vocabulary")
    for name, value in service.items():
        if isinstance(value, list):
            seen = [json.dumps(v, sort_keys=True) for v in value]
            duplicate = next((v for i, v in enumerate(seen) if v in seen[:i]), None)
            if duplicate is not None:
                raise Invalid(f"Duplicate value found '{json.loads(duplicate)}' on field '{name}'")
    owner_field = "resourceOwner" if v6 else "resourceOrganisation"
    if service.get(owner_field) not in catalogue.providers:
        raise Invalid(f"Field '{owner_field}' should contain the ID of an existing Provider")
    if service.get("catalogueId") and service["catalogueId"] != catalogue.catalogue_id:
        raise Invalid(f"Catalogue with ID '{service['catalogueId']}' does not exist. Found in field 'catalogueId'")
    if catalogue.check_urls:
        for name in (V6_URLS if v6 else V5_URLS):
            if service.get(name):
                _reachable(catalogue, name, str(service[name]))

def _contacts(service: dict[str, Any], v6: bool) -> None:
    main = service.get("mainContact") or {}
    for part in ("firstName", "lastName", "email"):
        if _empty(main.get(part)):
            raise Invalid(f"Field 'mainContact->{part}' is mandatory.")
    emails = [("mainContact->email", main.get("email"))]
    for i, contact in enumerate(service.get("publicContacts") or []):
        address = contact if v6 else (contact or {}).get("email")
        if _empty(address):
            raise Invalid("Field 'publicContacts->email' is mandatory.")
        emails.append((f"publicContacts[{i}]", address))
    if not v6:
        emails += [("helpdeskEmail", service.get("helpdeskEmail")),
                   ("securityContactEmail", service.get("securityContactEmail"))]
    for where, address in emails:
        if not EMAIL.match(str(address)) or parseaddr(str(address))[1] != str(address):
            raise Invalid(f"Email [{address}] is not valid. Found in field [{where}]")

def _pairs(catalogue: Any, service: dict[str, Any], field: str, parent: str, parent_vocabulary: str, child: str,
           child_vocabulary: str) -> None:
    for pair in service.get(field) or []:
        if not isinstance(pair, dict):
            raise Invalid(f"Field '{field}' must hold objects with '{parent}' and '{child}'")
        if pair.get(parent) not in catalogue.vocabularies[parent_vocabulary]:
            raise Invalid(f"Field '{parent}' should contain the ID of a type "
                          f"'{parent_vocabulary.replace('_', ' ').capitalize()}' Vocabulary")
        entry = catalogue.vocabularies[child_vocabulary].get(pair.get(child))
        if entry is None:
            raise Invalid(f"Field '{child}' should contain the ID of a type "
                          f"'{child_vocabulary.replace('_', ' ').capitalize()}' Vocabulary")
        if entry["parentId"] != pair[parent]:
            raise Invalid(f"'{pair[child]}' is not a child of '{pair[parent]}' (field '{field}')")

def _reachable(catalogue: Any, field: str, url: str) -> None:
    try:
        response = requests.head(url, timeout=catalogue.url_timeout, allow_redirects=True)
        if response.status_code == 405:
            response = requests.get(url, timeout=catalogue.url_timeout, allow_redirects=True)
    except requests.RequestException as exc:
        raise Invalid(f"Failed to validate URL: {url}") from exc
    if response.status_code >= 400:
        raise Invalid(f"URL '{url}' found on field '{field}' responded with error code: "
                      f"{response.status_code}")


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]
