"""Which datasets a DOI names, for the "Analyse this DOI" link any paper or catalogue can carry: the dataset
with that DOI, else every dataset of the proposal or publication with that DOI, across facilities."""
from __future__ import annotations

from dataclasses import dataclass

from broker.search.index import DatasetIndex
from panmodel.datasets import Dataset, SearchRequest, Sort

MAX_DATASETS = 100
MAX_DOI = 500
PREFIXES = ("https://doi.org/", "http://doi.org/", "https://dx.doi.org/", "doi:")


@dataclass(frozen=True)
class FacilityDatasets:
    """The datasets a DOI names at one facility (pid order)."""

    facility: str
    datasets: tuple[Dataset, ...]


def normalise(doi: str) -> str:
    """The DOI without the resolver or scheme it was written with."""
    doi = doi.strip()
    for prefix in PREFIXES:
        if doi.lower().startswith(prefix):
            return doi[len(prefix):]
    return doi


def datasets_of(index: DatasetIndex, doi: str) -> list[Dataset]:
    """The datasets the (normalised) DOI names, in pid order; none for an empty or overlong one."""
    if not doi or len(doi) > MAX_DOI:
        return []
    own = index.get(doi)
    if own is not None:
        return [own]
    return index.search(SearchRequest(documents=(doi,), limit=MAX_DATASETS, sort=Sort.PID)).items


def by_facility(datasets: list[Dataset]) -> tuple[FacilityDatasets, ...]:
    """The datasets grouped by facility, each facility where its first dataset comes."""
    grouped: dict[str, list[Dataset]] = {}
    for dataset in datasets:
        grouped.setdefault(dataset.facility, []).append(dataset)
    return tuple(FacilityDatasets(facility, tuple(found)) for facility, found in grouped.items())


__all__ = ["FacilityDatasets", "by_facility", "datasets_of", "normalise"]
