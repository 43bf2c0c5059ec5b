"""File preview of open data: where a facility registered an h5grove/HSDS endpoint (a service's
``capabilities.file_preview``), a public dataset's HDF5/NeXus files link to that facility's H5Web view."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from panmodel.datasets import Dataset
from web.common import blueprint, broker

HDF5 = (".h5", ".hdf5", ".hdf", ".he5", ".nxs", ".nx5", ".nexus", ".cxi")
MAX_LINKS = 50


def file_path(name: str, path: str | None) -> str:
    """The file's path as the facility serves it (a folder path is completed with the name)."""
    if not path:
        return name
    return path if path.rstrip("/").endswith(name) else f"{path.rstrip('/')}/{name}"


@blueprint.app_template_global()
def file_previews(dataset: Dataset) -> list[dict[str, Any]]:
    """(file, link, viewer title) for each HDF5 file of an open dataset that its facility can preview."""
    if not dataset.is_public:
        return []
    files = [f for f in dataset.files if f.name.lower().endswith(HDF5)][:MAX_LINKS]
    if not files:
        return []
    viewers = [s for s in broker().catalogue.services(facility=[dataset.facility])
               if (s["capabilities"].get("file_preview") or {}).get("viewer_url")]
    if not viewers:
        return []
    service = viewers[0]
    viewer = service["capabilities"]["file_preview"]["viewer_url"]
    joiner = "&" if "?" in viewer else "?"
    return [{"name": f.name, "size": f.size, "service": service["title"],
             "url": viewer + joiner + urlencode({"file": file_path(f.name, f.path)})} for f in files]
