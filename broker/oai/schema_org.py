"""A dataset as schema.org ``Dataset`` JSON-LD, for the dataset page (what Google Dataset Search and other
crawlers read). Google requires ``name`` and a ``description`` of 50 to 5000 characters; the rest is what
it recommends and the broker knows."""
from __future__ import annotations

import json
from typing import Any

from broker.oai.metadata import creators, licence
from panmodel.datasets import Dataset

MIN_DESCRIPTION, MAX_DESCRIPTION = 50, 5000


def description(dataset: Dataset, publisher: str) -> str:
    """The dataset's summary, completed with what was measured where when it is missing or too short."""
    facts = [f"Dataset \"{dataset.title}\" measured at {publisher}"]
    if dataset.instrument:
        facts.append(f"on the instrument {dataset.instrument}")
    if dataset.techniques:
        facts.append("by " + ", ".join(t.name for t in dataset.techniques))
    sentence = " ".join(facts) + "."
    text = (dataset.summary or "").strip()
    if len(text) < MIN_DESCRIPTION:
        text = f"{text} {sentence}".strip() if text else sentence
    if len(text) < MIN_DESCRIPTION:
        text += " Open photon and neutron science data, found through the PaN Broker federation."
    return text if len(text) <= MAX_DESCRIPTION else text[:MAX_DESCRIPTION - 1].rstrip() + "…"


def dataset_jsonld(dataset: Dataset, url: str, publisher: str, catalogue_url: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "@context": "https://schema.org/", "@type": "Dataset", "name": dataset.title,
        "description": description(dataset, publisher), "url": url,
        "identifier": [f"https://doi.org/{dataset.doi}"] if dataset.doi else [dataset.pid],
        "isAccessibleForFree": dataset.is_public,
        "publisher": {"@type": "Organization", "name": publisher},
        "provider": {"@type": "Organization", "name": publisher},
        "includedInDataCatalog": {"@type": "DataCatalog", "name": "PaN Broker", "url": catalogue_url},
    }
    if dataset.doi:
        data["identifier"].append(dataset.pid)
    if dataset.keywords:
        data["keywords"] = list(dataset.keywords)
    if dataset.techniques:
        data["measurementTechnique"] = [t.iri or t.name for t in dataset.techniques]
    if dataset.creation_date:
        data["dateCreated"] = dataset.creation_date.date().isoformat()
    people = creators(dataset)
    if people:
        data["creator"] = [{"@type": "Person", "name": name} for name in people]
    if licence(dataset):
        data["license"] = licence(dataset)
    measured = [{"@type": "PropertyValue", "name": p.name, "value": p.value, **({"unitText": p.unit} if p.unit else {})}
                for p in dataset.parameters]
    if measured:
        data["variableMeasured"] = measured
    return data


def script_json(data: dict[str, Any]) -> str:
    """JSON safe inside an HTML ``<script>`` element (no ``</script>``, no ``<!--``)."""
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
