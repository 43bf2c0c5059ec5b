"""The body of a launch request."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate

from connectors import kinds_with
from connectors.base import Capability

from registry.schemas import SLUG, StrictSchema


class ResourcesSchema(StrictSchema):
    cpus = fields.Integer(strict=True, validate=validate.Range(min=1, max=1024))
    memory_gb = fields.Float(validate=validate.Range(min=0.1, max=16384))
    gpu = fields.Boolean()
    gpus = fields.Integer(strict=True, validate=validate.Range(min=0, max=64))
    runtime_hours = fields.Float(validate=validate.Range(min=0.01, max=10_000))
    partition = fields.String(validate=validate.Length(min=1, max=100))
    profile = fields.String(validate=validate.Length(min=1, max=200))
    plan = fields.String(validate=validate.Length(min=1, max=200))


class LaunchRequestSchema(StrictSchema):
    dataset = fields.String(required=True, validate=validate.Length(min=1, max=500))
    service_id = fields.String(validate=SLUG)
    kind = fields.String(validate=lambda kind: _launch_kind(kind))
    interface = fields.String(validate=validate.OneOf(["desktop", "notebook"]))
    resources = fields.Nested(ResourcesSchema, load_default=dict)


def _launch_kind(kind: str) -> None:
    """A kind some installed connector launches (the kinds are the connectors', not a list here)."""
    known = kinds_with(Capability.LAUNCH)
    if kind not in known:
        raise ValidationError(f"Must be one of: {', '.join(known)}.")


__all__ = ["LaunchRequestSchema", "ResourcesSchema"]
