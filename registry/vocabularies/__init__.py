"""Controlled vocabularies the broker's records use, as data files with their source (see SOURCES.md)."""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

EOSC = Path(__file__).resolve().parent / "eosc"


@cache
def eosc(name: str) -> dict[str, dict[str, Any]]:
    """The EOSC Resource Catalogue vocabulary ``name`` (e.g. ``SUBCATEGORY``): id -> entry (name, parentId)."""
    return {entry["id"]: entry for entry in json.loads((EOSC / f"{name}.json").read_text("utf-8"))}
