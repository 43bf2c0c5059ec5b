"""Input schemas of registry objects: what an operator may send, with the rules that make it valid.

The API, the CLI and the seed import all load through these, so one object is valid the same way
everywhere. Unknown fields are refused by name.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from apscheduler.triggers.cron import CronTrigger
from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates, validates_schema

from registry import vocabularies
from panmodel.states import EoscStatus, LaunchMode, Lifecycle

SLUG = validate.Regexp(
    r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$",
    error="use 1-64 lower-case letters, digits and inner hyphens (e.g. esrf-jupyterhub)",
)
ISSUER_NAME = validate.Regexp(r"^[a-z0-9][a-z0-9._-]{0,99}$", error="use a short lower-case issuer name")
ROR = re.compile(r"^(?:https://ror\.org/)?(0[a-hj-km-np-tv-z0-9]{6}[0-9]{2})$")
PROTOCOLS = ("guacamole", "fastx", "nomachine", "vnc", "xpra", "rdp", "webx")
INTERFACES = ("desktop", "jupyterlab", "notebook")


def one_of(enum_cls) -> validate.OneOf:  # noqa: ANN001 - any StrEnum
    return validate.OneOf([m.value for m in enum_cls], error="must be one of: {choices}")


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class HttpUrl(fields.Url):
    """An absolute http(s) URL without credentials in it."""

    def __init__(self, **kwargs: Any):
        super().__init__(schemes={"http", "https"}, require_tld=False, validate=validate.Length(max=2048), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):  # noqa: ANN001, ANN202 - marshmallow hook
        url = super()._deserialize(value, attr, data, **kwargs)
        parts = urlsplit(url)
        if parts.username or parts.password:
            raise ValidationError("must not contain a user name or password; use the credential field")
        if parts.fragment:
            raise ValidationError("must not contain a #fragment")
        return url


class FacilitySchema(StrictSchema):
    id = fields.String(required=True, validate=SLUG)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    country = fields.String(
        required=True, validate=validate.Regexp(r"^[A-Z]{2}$", error="use an ISO 3166-1 alpha-2 code such as FR")
    )
    ror_id = fields.String(allow_none=True)
    homepage = HttpUrl(allow_none=True)
    contact_email = fields.Email(allow_none=True, validate=validate.Length(max=320))
    accepted_issuers = fields.List(fields.String(validate=ISSUER_NAME), validate=validate.Length(max=50),
                                   load_default=list)
    eosc_provider_id = fields.String(allow_none=True, validate=validate.Regexp(
        r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)?$", error="use the provider's PID (21.xxxxx/AbC123) or v4 id"))
    eosc_main_contact = fields.Nested(lambda: EoscContactSchema(), load_default=dict)
    eosc_public_contacts = fields.List(fields.Email(), load_default=list, validate=validate.Length(max=10))
    eosc_helpdesk_email = fields.Email(allow_none=True)
    eosc_security_email = fields.Email(allow_none=True)
    eosc_client_id = fields.String(allow_none=True, validate=validate.Length(min=1, max=200))
    eosc_credential = fields.String(allow_none=True, load_only=True, validate=validate.Length(min=1, max=8192))
    federation_wide = fields.Boolean(load_default=False)

    @validates("ror_id")
    def _ror(self, value: str | None, **_: Any) -> None:
        if value is not None and not ROR.match(value):
            raise ValidationError("use a ROR id such as https://ror.org/02550n020")

    @post_load
    def _normalise(self, data: dict, **_: Any) -> dict:
        if data.get("ror_id"):
            data["ror_id"] = "https://ror.org/" + ROR.match(data["ror_id"]).group(1)
        if "accepted_issuers" in data:
            data["accepted_issuers"] = list(dict.fromkeys(data["accepted_issuers"]))
        return data


class PartitionSchema(StrictSchema):
    id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    title = fields.String(validate=validate.Length(max=200))
    gpu = fields.Boolean()
    max_cpus = fields.Integer(strict=True, validate=validate.Range(min=1, max=100000))
    max_memory_gb = fields.Float(validate=validate.Range(min=0, min_inclusive=False, max=1_000_000))
    # launch limits and vocabulary of a Slurm partition (or a plan): what routing checks before sending
    max_gpus = fields.Integer(strict=True, validate=validate.Range(min=0, max=1024))
    gres = fields.String(validate=validate.Regexp(
        r"^[A-Za-z0-9_:.-]*\{\}[A-Za-z0-9_:.-]*$",
        error="a Slurm gres with {{}} for the GPU count, e.g. gpu:{{}} or gpu:a100:{{}}"))
    max_runtime_hours = fields.Float(validate=validate.Range(min=0, min_inclusive=False, max=100_000))
    profiles = fields.List(fields.String(validate=validate.Length(min=1, max=200)), validate=validate.Length(max=100))


class FilePreviewSchema(StrictSchema):
    """An h5grove/HSDS endpoint serving the facility's open data, and the H5Web app viewing its files."""

    kind = fields.String(required=True, validate=validate.OneOf(["h5grove", "hsds"], error="must be h5grove or hsds"))
    url = HttpUrl(required=True)
    viewer_url = HttpUrl(required=True)


class CapabilitiesSchema(StrictSchema):
    max_cpus = fields.Integer(strict=True, validate=validate.Range(min=1, max=100000))
    max_memory_gb = fields.Float(validate=validate.Range(min=0, min_inclusive=False, max=1_000_000))
    gpu = fields.Boolean()
    partitions = fields.List(fields.Nested(PartitionSchema), validate=validate.Length(max=100))
    profiles = fields.List(fields.String(validate=validate.Length(min=1, max=200)), validate=validate.Length(max=100))
    plans = fields.List(fields.String(validate=validate.Length(min=1, max=200)), validate=validate.Length(max=100))
    protocols = fields.List(fields.String(validate=validate.OneOf(PROTOCOLS, error="must be one of: {choices}")))
    interfaces = fields.List(fields.String(validate=validate.OneOf(INTERFACES, error="must be one of: {choices}")))
    software = fields.List(fields.String(validate=validate.Length(min=1, max=200)), validate=validate.Length(max=200))
    file_preview = fields.Nested(FilePreviewSchema)


class ComputeServiceSchema(StrictSchema):
    id = fields.String(validate=SLUG)
    facility_id = fields.String(required=True, validate=SLUG)
    kind = fields.String(required=True)
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True, validate=validate.Length(max=5000))
    base_url = HttpUrl(allow_none=True)
    launch_mode = fields.String(load_default=LaunchMode.DEEPLINK.value, validate=one_of(LaunchMode))
    lifecycle = fields.String(load_default=Lifecycle.PRODUCTION.value, validate=one_of(Lifecycle))
    capabilities = fields.Nested(CapabilitiesSchema, load_default=dict)
    connector_config = fields.Dict(keys=fields.String(), load_default=dict)
    credential = fields.String(allow_none=True, load_only=True, validate=validate.Length(min=1, max=4096))

    @validates_schema
    def _url_unless_planned(self, data: dict, partial: bool = False, **_: Any) -> None:
        if not partial and not data.get("base_url") and data.get("lifecycle") != Lifecycle.PLANNED.value:
            raise ValidationError("required unless lifecycle is planned", "base_url")


class SearchEndpointSchema(StrictSchema):
    id = fields.String(validate=SLUG)
    facility_id = fields.String(required=True, validate=SLUG)
    kind = fields.String(required=True)
    base_url = HttpUrl(required=True)
    harvest_schedule = fields.String(allow_none=True, validate=validate.Length(max=100))
    connector_config = fields.Dict(keys=fields.String(), load_default=dict)

    @validates("harvest_schedule")
    def _cron(self, value: str | None, **_: Any) -> None:
        if value is None:
            return
        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValidationError(f"not a crontab expression (minute hour day month weekday): {exc}") from exc


def _vocabulary_id(name: str, example: str):  # noqa: ANN202 - a marshmallow validator
    """Membership of the EOSC vocabulary ``name``, as the catalogue ships it (not a pattern)."""

    def check(value: str) -> None:
        if value not in vocabularies.eosc(name):
            raise ValidationError(f"not an id of the EOSC {name} vocabulary (e.g. {example})")

    return check


class _PairSchema(StrictSchema):
    """A vocabulary pair whose child must belong to its parent (the catalogue checks both)."""

    parent_field: str
    child_field: str
    child_vocabulary: str

    @validates_schema
    def _child_of_parent(self, data: dict, **_: Any) -> None:
        parent, child = data.get(self.parent_field), data.get(self.child_field)
        entry = vocabularies.eosc(self.child_vocabulary).get(child or "")
        if parent and entry and entry["parentId"] != parent:
            raise ValidationError(f"{child!r} belongs to {entry['parentId']!r}, not to {parent!r}", self.child_field)


class ScientificDomainSchema(_PairSchema):
    parent_field, child_field, child_vocabulary = "scientificDomain", "scientificSubdomain", "SCIENTIFIC_SUBDOMAIN"
    scientificDomain = fields.String(required=True, validate=_vocabulary_id(
        "SCIENTIFIC_DOMAIN", "scientific_domain-natural_sciences"))
    scientificSubdomain = fields.String(required=True, validate=_vocabulary_id(
        "SCIENTIFIC_SUBDOMAIN", "scientific_subdomain-natural_sciences-physical_sciences"))


class CategorySchema(_PairSchema):
    parent_field, child_field, child_vocabulary = "category", "subcategory", "SUBCATEGORY"
    category = fields.String(required=True, validate=_vocabulary_id(
        "CATEGORY", "category-processing_and_analysis-data_analysis"))
    subcategory = fields.String(required=True, validate=_vocabulary_id(
        "SUBCATEGORY", "subcategory-processing_and_analysis-data_analysis-image_data_analysis"))


class EoscContactSchema(StrictSchema):
    firstName = fields.String(validate=validate.Length(min=1, max=100))
    lastName = fields.String(validate=validate.Length(min=1, max=100))
    email = fields.Email()


class EoscEntrySchema(StrictSchema):
    service_id = fields.String(required=True, validate=SLUG)
    resource_id = fields.String(allow_none=True, validate=validate.Regexp(
        r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)?$", error="use a v5 PID (prefix/suffix) or a v4 id (provider.service)"))
    marketplace_url = HttpUrl(allow_none=True)
    status = fields.String(load_default=EoscStatus.NOT_REGISTERED.value, validate=one_of(EoscStatus))
    last_synced_at = fields.AwareDateTime(allow_none=True, default_timezone=None)
    scientific_domains = fields.List(fields.Nested(ScientificDomainSchema), load_default=list,
                                     validate=validate.Length(max=20))
    categories = fields.List(fields.Nested(CategorySchema), load_default=list, validate=validate.Length(max=20))
    trl = fields.String(allow_none=True, validate=_vocabulary_id("TRL", "trl-9"))
    profile = fields.Dict(keys=fields.String(validate=validate.Regexp(r"^[a-zA-Z]+$")), load_default=dict,
                          metadata={"description": "EOSC service profile fields to set or override on export"})
    logo = HttpUrl(allow_none=True)
    tagline = fields.String(allow_none=True, validate=validate.Length(min=1, max=200))
    webpage = HttpUrl(allow_none=True)
    main_contact = fields.Nested(lambda: EoscContactSchema(), load_default=dict)
    public_contacts = fields.List(fields.Email(), load_default=list, validate=validate.Length(max=10))
    helpdesk_email = fields.Email(allow_none=True)
    security_email = fields.Email(allow_none=True)
    terms_of_use = HttpUrl(allow_none=True)
    privacy_policy = HttpUrl(allow_none=True)
    access_policy = HttpUrl(allow_none=True)
    access_types = fields.List(fields.String(validate=_vocabulary_id("ACCESS_TYPE", "access_type-remote")),
                               load_default=list, validate=validate.Length(max=5))
    access_modes = fields.List(fields.String(validate=_vocabulary_id("ACCESS_MODE", "access_mode-peer_reviewed")),
                               load_default=list, validate=validate.Length(max=5))
    order_type = fields.String(allow_none=True, validate=_vocabulary_id("ORDER_TYPE", "order_type-open_access"))
    order_url = HttpUrl(allow_none=True)
    node_pid = fields.String(allow_none=True, validate=validate.Length(min=1, max=200))
    jurisdiction = fields.String(allow_none=True, validate=validate.Length(min=1, max=100))
    publishing_date = fields.String(allow_none=True, validate=validate.Regexp(
        r"^\d{4}-\d{2}-\d{2}$", error="use a date such as 2026-01-31"))


def literal_ip_refused(url: str | None, is_allowed) -> bool:  # noqa: ANN001 - AddressPolicy.is_allowed
    """True when ``url``'s host is an IP literal the SSRF policy refuses (names are not resolved here)."""
    if not url:
        return False
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return not is_allowed(host)


def flatten(messages: Any, prefix: str = "") -> list[tuple[str, str]]:
    """marshmallow's nested error dict as (dotted.field, message) pairs."""
    if isinstance(messages, dict):
        pairs = []
        for key, value in messages.items():
            name = "(body)" if key == "_schema" else str(key)
            pairs.extend(flatten(value, f"{prefix}.{name}" if prefix else name))
        return pairs
    if isinstance(messages, list):
        if all(isinstance(m, str) for m in messages):
            return [(prefix or "(body)", " ".join(messages))]
        return [pair for m in messages for pair in flatten(m, prefix)]
    return [(prefix or "(body)", str(messages))]
