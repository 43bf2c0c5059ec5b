"""The body of a launch request."""
from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from connectors import kinds_with
from connectors.base import Capability

from registry.schemas import SLUG, StrictSchema

MAX_BASKET = 50  # datasets analysed together in one session


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
    """One dataset (``dataset``) or several analysed together (``basket``), never both."""

    dataset = fields.String(validate=validate.Length(min=1, max=500))
    basket = fields.List(fields.String(validate=validate.Length(min=1, max=500)))
    service_id = fields.String(validate=SLUG)
    kind = fields.String(validate=lambda kind: _launch_kind(kind))
    interface = fields.String(validate=validate.OneOf(["desktop", "notebook"]))
    resources = fields.Nested(ResourcesSchema, load_default=dict)

    @validates_schema
    def _one_dataset_or_a_basket(self, data: dict[str, Any], **_: Any) -> None:
        if "dataset" in data and "basket" in data:
            raise ValidationError("send either dataset (one) or basket (several), not both", "basket")
        if "dataset" not in data and "basket" not in data:
            raise ValidationError("required: the dataset's pid or DOI (or basket, a list of them)", "dataset")
        basket = data.get("basket")
        if basket is None:
            return
        if not basket:
            raise ValidationError("an empty basket: put at least one dataset's pid or DOI in it", "basket")
        if len(basket) > MAX_BASKET:
            raise ValidationError(f"{len(basket)} datasets: a basket holds at most {MAX_BASKET}", "basket")
        errors = {}
        for index, pid in enumerate(basket):
            if basket.index(pid) != index:
                errors[f"basket.{index}"] = f"{pid!r} is already basket.{basket.index(pid)}; send each dataset once"
        if errors:
            raise ValidationError(errors)

def _launch_kind(kind: str) -> None:
    """A kind some installed connector launches (the kinds are the connectors', not a list here)."""
    known = kinds_with(Capability.LAUNCH)
    if kind not in known:
        raise ValidationError(f"Must be one of: {', '.join(known)}.")


__all__ = ["LaunchRequestSchema", "MAX_BASKET", "ResourcesSchema"]
