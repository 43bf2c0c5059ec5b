"""The body of a launch request."""
from __future__ import annotations

from marshmallow import fields, validate

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
    kind = fields.String(validate=validate.OneOf(["jupyterhub", "visa", "binderhub", "remote-desktop"]))
    interface = fields.String(validate=validate.OneOf(["desktop", "notebook"]))
    resources = fields.Nested(ResourcesSchema, load_default=dict)


__all__ = ["LaunchRequestSchema", "ResourcesSchema"]
