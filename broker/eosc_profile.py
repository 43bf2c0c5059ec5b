"""A service as the EOSC Resource Catalogue's service model (v5 or v6), and what it still lacks.

The rules are the catalogue's: the mandatory fields of its ``Service`` (v5.4.0, checked by its FieldValidator;
``catalogueId`` from v5.1) and of the v6 service model (the ``m-b-service`` form of the EOSC EU Node line),
vocabulary ids from the vocabularies it ships (``registry/vocabularies/eosc``), e-mail syntax. What only the
catalogue can check (URL reachability, the provider's approval) is reported by its validator in a dry run.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from connectors import all_connectors
from registry import vocabularies
from panmodel.states import Lifecycle
from registry.models import ComputeService, EoscEntry, Facility

CATALOGUE_VERSIONS = ("v5", "v6")
LIFECYCLE = {Lifecycle.PRODUCTION: "life_cycle_status-production", Lifecycle.PILOT: "life_cycle_status-beta",
             Lifecycle.PROTOTYPE: "life_cycle_status-alpha", Lifecycle.PLANNED: "life_cycle_status-planned"}
TRL = {Lifecycle.PRODUCTION: "trl-9", Lifecycle.PILOT: "trl-7", Lifecycle.PROTOTYPE: "trl-6",
       Lifecycle.PLANNED: "trl-4"}
PAN_DOMAIN = {"scientificDomain": "scientific_domain-natural_sciences",
              "scientificSubdomain": "scientific_subdomain-natural_sciences-physical_sciences"}
ANALYSIS = {"category": "category-processing_and_analysis-data_analysis",
            "subcategory": "subcategory-processing_and_analysis-data_analysis-image_data_analysis"}
COMPUTE = {"category": "category-access_physical_and_eInfrastructures-compute",
           "subcategory": "subcategory-access_physical_and_eInfrastructures-compute-virtual_machine_management"}
CATEGORIES = {"analysis": ANALYSIS, "compute": COMPUTE}  # the words connectors declare (eosc_categories)
DEFAULT_ORDER_TYPE = "order_type-open_access"  # no ordering procedure, but users sign in

V5_REQUIRED = ("abbreviation", "name", "resourceOrganisation", "webpage", "description", "tagline", "logo",
               "scientificDomains", "categories", "targetUsers", "geographicalAvailabilities",
               "languageAvailabilities", "mainContact.firstName", "mainContact.lastName", "mainContact.email",
               "publicContacts", "helpdeskEmail", "securityContactEmail", "trl", "termsOfUse", "privacyPolicy",
               "orderType")
V6_REQUIRED = ("name", "nodePID", "description", "publishingDate", "type", "resourceOwner", "webpage",
               "jurisdiction", "trl", "orderType", "mainContact.firstName", "mainContact.lastName",
               "mainContact.email", "publicContacts")
REQUIRED = V5_REQUIRED  # the v5.0 service profile's list, kept under its old name
RULE_SOURCE = {"v5": "mandatory in the catalogue's v5 Service (FieldValidator, resource-catalogue v5.4.0)",
               "v6": "mandatory in the v6 service model (m-b-service form, EOSC EU Node)"}
VOCABULARY_FIELDS = {"trl": "TRL", "lifeCycleStatus": "LIFE_CYCLE_STATUS", "orderType": "ORDER_TYPE",
                     "targetUsers": "TARGET_USER", "accessTypes": "ACCESS_TYPE", "accessModes": "ACCESS_MODE"}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
# where an operator fills each profile field in the broker's registry
SOURCE = {
    "resourceOrganisation": "facility.eosc_provider_id", "resourceOwner": "facility.eosc_provider_id",
    "webpage": "eosc_entry.webpage (default: the service URL)", "description": "service.description",
    "tagline": "eosc_entry.tagline", "logo": "eosc_entry.logo",
    "mainContact.firstName": "eosc_entry.main_contact or facility.eosc_main_contact",
    "mainContact.lastName": "eosc_entry.main_contact or facility.eosc_main_contact",
    "mainContact.email": "eosc_entry.main_contact or facility.eosc_main_contact",
    "publicContacts": "eosc_entry.public_contacts, facility.eosc_public_contacts or facility.contact_email",
    "helpdeskEmail": "eosc_entry.helpdesk_email, facility.eosc_helpdesk_email or facility.contact_email",
    "securityContactEmail": "eosc_entry.security_email or facility.eosc_security_email",
    "termsOfUse": "eosc_entry.terms_of_use", "privacyPolicy": "eosc_entry.privacy_policy",
    "trl": "eosc_entry.trl", "orderType": "eosc_entry.order_type", "nodePID": "eosc_entry.node_pid",
    "jurisdiction": "eosc_entry.jurisdiction", "publishingDate": "eosc_entry.publishing_date",
    "categories": "eosc_entry.categories", "scientificDomains": "eosc_entry.scientific_domains",
}


@dataclass(frozen=True)
class Finding:
    """One thing the catalogue would refuse (``missing``/``invalid``) or may refuse (``warning``)."""

    field: str
    problem: str
    rule: str
    fill: str | None = None

    def show(self) -> dict[str, Any]:
        return {"field": self.field, "problem": self.problem, "rule": self.rule, "fill": self.fill}


@dataclass(frozen=True)
class Profile:
    profile: dict[str, Any]
    findings: list[Finding] = field(default_factory=list)
    catalogue_version: str = "v5"

    @property
    def missing(self) -> list[str]:
        return [f.field for f in self.findings if f.problem == "missing"]

    @property
    def invalid(self) -> list[str]:
        return [f"{f.field}: {f.rule}" for f in self.findings if f.problem == "invalid"]

    @property
    def warnings(self) -> list[str]:
        return [f"{f.field}: {f.rule}" for f in self.findings if f.problem == "warning"]

    @property
    def valid(self) -> bool:
        return not self.missing and not self.invalid


def build_profile(service: ComputeService, facility: Facility, entry: EoscEntry | None, *,
                  catalogue_version: str = "v5", catalogue_id: str = "eosc") -> Profile:
    """The service in the catalogue's model for ``catalogue_version``, with every rule it breaks."""
    v6 = catalogue_version == "v6"
    lifecycle = Lifecycle(service.lifecycle)
    e = _EntryView(entry)
    main = {**(facility.eosc_main_contact or {}), **e.main_contact}
    public = e.public_contacts or list(facility.eosc_public_contacts or []) or (
        [facility.contact_email] if facility.contact_email else [])
    common: dict[str, Any] = {
        "name": service.title, "webpage": e.webpage or service.base_url, "description": service.description,
        "logo": e.logo, "scientificDomains": e.scientific_domains or [PAN_DOMAIN],
        "categories": e.categories or _categories(service.kind),
        "accessTypes": e.access_types or ["access_type-virtual"], "tags": ["photon and neutron", service.kind],
        "trl": e.trl or TRL[lifecycle], "termsOfUse": e.terms_of_use, "privacyPolicy": e.privacy_policy,
        "accessPolicy": e.access_policy, "orderType": e.order_type or DEFAULT_ORDER_TYPE, "order": e.order_url,
        "mainContact": {k: main.get(k) for k in ("firstName", "lastName", "email") if main.get(k)},
        "catalogueId": catalogue_id,
    }
    if v6:
        profile = {**common, "nodePID": e.node_pid, "publishingDate": e.publishing_date, "type": "Service",
                   "resourceOwner": facility.eosc_provider_id, "jurisdiction": e.jurisdiction,
                   "urls": [service.base_url] if service.base_url else [], "publicContacts": public}
    else:
        profile = {**common, "abbreviation": service.id, "resourceOrganisation": facility.eosc_provider_id,
                   "tagline": e.tagline, "targetUsers": ["target_user-researchers"],
                   "geographicalAvailabilities": ["EO"], "languageAvailabilities": ["en"],
                   "publicContacts": [{"email": address} for address in public],
                   "helpdeskEmail": e.helpdesk_email or facility.eosc_helpdesk_email or facility.contact_email,
                   "securityContactEmail": e.security_email or facility.eosc_security_email,
                   "lifeCycleStatus": LIFECYCLE[lifecycle], "accessModes": e.access_modes or None}
    if entry is not None and entry.resource_id:
        profile["id"] = entry.resource_id
    for key, value in (entry.profile if entry else {}).items():
        profile[key] = {**profile.get(key, {}), **value} if isinstance(value, dict) and isinstance(
            profile.get(key), dict) else value
    profile = {k: v for k, v in profile.items() if not _empty(v)}
    return Profile(profile, _findings(profile, catalogue_version, service, e), catalogue_version)


class _EntryView:
    """The entry's profile fields, or empties when the service has no EOSC entry yet."""

    def __init__(self, entry: EoscEntry | None):
        self.entry = entry

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.entry, name, None) if self.entry is not None else None
        if value is None and name in ("main_contact",):
            return {}
        if value is None and name in ("public_contacts", "access_types", "access_modes", "scientific_domains",
                                      "categories"):
            return []
        return value


def _findings(profile: dict[str, Any], version: str, service: ComputeService, e: _EntryView) -> list[Finding]:
    required = V6_REQUIRED if version == "v6" else V5_REQUIRED
    found = [Finding(name, "missing", RULE_SOURCE[version], SOURCE.get(name)) for name in required
             if _empty(_dig(profile, name))]
    for name, vocabulary in VOCABULARY_FIELDS.items():
        for value in _as_list(profile.get(name)):
            if value not in vocabularies.eosc(vocabulary):
                found.append(Finding(name, "invalid", f"{value!r} is not an id of the catalogue's {vocabulary} "
                                                      f"vocabulary", SOURCE.get(name)))
    for name, parent, child, parent_voc, child_voc in (
            ("scientificDomains", "scientificDomain", "scientificSubdomain", "SCIENTIFIC_DOMAIN",
             "SCIENTIFIC_SUBDOMAIN"),
            ("categories", "category", "subcategory", "CATEGORY", "SUBCATEGORY")):
        for pair in profile.get(name) or []:
            entry = vocabularies.eosc(child_voc).get((pair or {}).get(child, ""))
            if (pair or {}).get(parent) not in vocabularies.eosc(parent_voc) or entry is None:
                found.append(Finding(name, "invalid", f"{pair} is not a pair of ids of the catalogue's {parent_voc}"
                                                      f" and {child_voc} vocabularies", SOURCE.get(name)))
            elif entry["parentId"] != pair[parent]:
                found.append(Finding(name, "invalid", f"{pair[child]!r} belongs to {entry['parentId']!r}",
                                     SOURCE.get(name)))
    emails = {"mainContact.email": _dig(profile, "mainContact.email"), "helpdeskEmail": profile.get("helpdeskEmail"),
              "securityContactEmail": profile.get("securityContactEmail")}
    for i, contact in enumerate(profile.get("publicContacts") or []):
        emails[f"publicContacts[{i}]"] = contact.get("email") if isinstance(contact, dict) else contact
    found += [Finding(name, "invalid", f"{address!r} is not an e-mail address the catalogue accepts",
                      SOURCE.get(name.split("[")[0]))
              for name, address in emails.items() if address and not EMAIL.match(str(address))]
    if profile.get("webpage") and not e.webpage and profile.get("webpage") == service.base_url:
        found.append(Finding("webpage", "warning", "the service's own address stands in for an information page; "
                             "the catalogue fetches every URL and wants a 2xx within 5 s, which an application "
                             "behind a login does not give", SOURCE["webpage"]))
    return found


def _dig(data: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _categories(kind: str) -> list[dict[str, str]]:
    """The EOSC categories a service of ``kind`` is in, as its connector declares them."""
    connector = all_connectors().get(kind)
    words = connector.eosc_categories if connector is not None else ("analysis",)  # a kind no longer installed
    return [CATEGORIES[word] for word in words]
