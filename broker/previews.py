"""File preview of open data: where a facility registered an h5grove/HSDS endpoint (a service's
``capabilities.file_preview``), a public dataset's HDF5/NeXus files link to that facility's H5Web view.
An embargoed dataset's files get no link: they are its proposal team's alone."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from broker.catalogue import CatalogueService
from panmodel.datasets import Dataset

HDF5 = (".h5", ".hdf5", ".hdf", ".he5", ".nxs", ".nx5", ".nexus", ".cxi")
MAX_LINKS = 50


@dataclass(frozen=True)
class FilePreview:
    """One file and the link to its view."""

    name: str
    size: int | None
    service: str  # the title of the service whose viewer shows it
    url: str


def file_path(name: str, path: str | None) -> str:
    """The file's path as the facility serves it (a folder path is completed with the name)."""
    if not path:
        return name
    return path if path.rstrip("/").endswith(name) else f"{path.rstrip('/')}/{name}"


def file_previews(catalogue: CatalogueService, dataset: Dataset) -> tuple[FilePreview, ...]:
    """Each HDF5/NeXus file of an open dataset that its facility can preview, with its link."""
    if not dataset.is_public:
        return ()
    files = [f for f in dataset.files if f.name.lower().endswith(HDF5)][:MAX_LINKS]
    if not files:
        return ()
    viewers = [s for s in catalogue.services(facility=[dataset.facility])
               if (s["capabilities"].get("file_preview") or {}).get("viewer_url")]
    if not viewers:
        return ()
    service = viewers[0]
    viewer = service["capabilities"]["file_preview"]["viewer_url"]
    joiner = "&" if "?" in viewer else "?"
    return tuple(FilePreview(f.name, f.size, service["title"],
                             viewer + joiner + urlencode({"file": file_path(f.name, f.path)})) for f in files)


__all__ = ["FilePreview", "file_path", "file_previews"]
