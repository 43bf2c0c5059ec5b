"""The metadata formats the OAI-PMH provider disseminates, each rendered from the broker's ``Dataset``:
simple Dublin Core (``oai_dc``) and DataCite kernel 4 in DataCite's OAI envelope (``oai_datacite``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from xml.etree.ElementTree import Element, SubElement, register_namespace

from panmodel.datasets import Dataset

OAI_DC = "http://www.openarchives.org/OAI/2.0/oai_dc/"
DC = "http://purl.org/dc/elements/1.1/"
OAI_DATACITE = "http://schema.datacite.org/oai/oai-1.1/"
KERNEL = "http://datacite.org/schema/kernel-4"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
for _prefix, _uri in (("oai_dc", OAI_DC), ("dc", DC), ("oai_datacite", OAI_DATACITE), ("datacite", KERNEL)):
    register_namespace(_prefix, _uri)
UNKNOWN = "(:unav)"  # DataCite's standard value for "unavailable"


@dataclass(frozen=True)
class MetadataFormat:
    prefix: str
    schema: str
    namespace: str
    render: Callable[[Dataset, str, str], Element]  # (dataset, publisher name, landing page URL)


def creators(dataset: Dataset) -> list[str]:
    """The people named on the dataset's documents, each once, principal investigators first."""
    members = [m for d in dataset.documents for m in d.members]
    members.sort(key=lambda m: 0 if (m.role or "").lower() in ("principal investigator", "pi") else 1)
    return list(dict.fromkeys(m.name for m in members if m.name))


def licence(dataset: Dataset) -> str | None:
    return next((d.license for d in dataset.documents if d.license), None)


def _dc(dataset: Dataset, publisher: str, landing: str) -> Element:
    root = Element(f"{{{OAI_DC}}}dc")
    root.set(f"{{{XSI}}}schemaLocation", f"{OAI_DC} http://www.openarchives.org/OAI/2.0/oai_dc.xsd")

    def add(name: str, value: str | None) -> None:
        if value:
            SubElement(root, f"{{{DC}}}{name}").text = value

    add("title", dataset.title)
    for name in creators(dataset):
        add("creator", name)
    for subject in [*dataset.keywords, *(t.name for t in dataset.techniques)]:
        add("subject", subject)
    add("description", dataset.summary)
    add("publisher", publisher)
    add("date", dataset.creation_date.date().isoformat() if dataset.creation_date else None)
    add("type", "Dataset")
    add("identifier", f"https://doi.org/{dataset.doi}" if dataset.doi else None)
    add("identifier", landing)
    for document in dataset.documents:
        add("relation", f"https://doi.org/{document.doi}" if document.doi else None)
    add("rights", "info:eu-repo/semantics/openAccess" if dataset.is_public else "info:eu-repo/semantics/embargoedAccess")
    add("rights", licence(dataset))
    return root


def _datacite(dataset: Dataset, publisher: str, landing: str) -> Element:
    root = Element(f"{{{OAI_DATACITE}}}oai_datacite")
    root.set(f"{{{XSI}}}schemaLocation", f"{OAI_DATACITE} http://schema.datacite.org/oai/oai-1.1/oai.xsd")
    SubElement(root, f"{{{OAI_DATACITE}}}schemaVersion").text = "4"
    SubElement(root, f"{{{OAI_DATACITE}}}datacentreSymbol").text = dataset.facility.upper()
    resource = SubElement(SubElement(root, f"{{{OAI_DATACITE}}}payload"), f"{{{KERNEL}}}resource")
    resource.set(f"{{{XSI}}}schemaLocation", f"{KERNEL} http://schema.datacite.org/meta/kernel-4/metadata.xsd")

    def node(parent: Element, name: str, text: str | None = None, **attrs: str) -> Element:
        child = SubElement(parent, f"{{{KERNEL}}}{name}", attrs)
        if text is not None:
            child.text = text
        return child

    node(resource, "identifier", dataset.doi or "", identifierType="DOI")
    people = node(resource, "creators")
    for name in creators(dataset) or [UNKNOWN]:
        node(node(people, "creator"), "creatorName", name)
    node(node(resource, "titles"), "title", dataset.title)
    node(resource, "publisher", publisher)
    year = dataset.creation_date.year if dataset.creation_date else None
    node(resource, "publicationYear", str(year) if year else UNKNOWN)
    node(resource, "resourceType", "Experimental data", resourceTypeGeneral="Dataset")
    subjects = [*dataset.keywords, *(t.name for t in dataset.techniques)]
    if subjects:
        listed = node(resource, "subjects")
        for subject in subjects:
            node(listed, "subject", subject)
    if dataset.creation_date:
        node(node(resource, "dates"), "date", dataset.creation_date.date().isoformat(), dateType="Created")
    node(node(resource, "alternateIdentifiers"), "alternateIdentifier", dataset.pid,
         alternateIdentifierType="PaNOSC pid")
    related = [d.doi for d in dataset.documents if d.doi]
    if related:
        listed = node(resource, "relatedIdentifiers")
        for doi in related:
            node(listed, "relatedIdentifier", doi, relatedIdentifierType="DOI", relationType="IsSupplementTo")
    rights = node(resource, "rightsList")
    node(rights, "rights", "Open access" if dataset.is_public else "Embargoed access",
         rightsURI="info:eu-repo/semantics/" + ("openAccess" if dataset.is_public else "embargoedAccess"))
    if licence(dataset):
        node(rights, "rights", licence(dataset))
    if dataset.summary:
        node(node(resource, "descriptions"), "description", dataset.summary, descriptionType="Abstract")
    return root


OAI_DC_FORMAT = MetadataFormat("oai_dc", "http://www.openarchives.org/OAI/2.0/oai_dc.xsd", OAI_DC, _dc)
DATACITE_FORMAT = MetadataFormat("oai_datacite", "http://schema.datacite.org/oai/oai-1.1/oai.xsd", OAI_DATACITE,
                                 _datacite)
