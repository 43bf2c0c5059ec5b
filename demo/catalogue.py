"""Realistic synthetic dataset metadata for the simulated facilities: real instruments and the PaNET
techniques they run, proposals with DOIs, samples, parameters with units. Deterministic for a seed.

Records are in the PaNOSC Search API's shape (Dataset with documents, techniques, instrument,
parameters), so the simulated Search APIs serve them as a facility would.
Technique names: PaNET — ExPaNDS and PaNOSC projects, CC BY 4.0.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

PANET = "http://purl.org/pan-science/PaNET/"

# facility -> (DOI prefix, proposal pattern, [(instrument, PaNET id, technique name, parameter kinds)])
FACILITIES: dict[str, tuple[str, str, list[tuple[str, str, str, tuple[str, ...]]]]] = {
    "sim-ill": ("10.5291/ILL-DATA", "{a}-{b:02d}-{n}", [
        ("D22", "PaNET01189", "small angle neutron scattering", ("temperature", "wavelength")),
        ("D11", "PaNET01189", "small angle neutron scattering", ("temperature", "wavelength")),
        ("IN5", "PaNET01245", "inelastic neutron spectroscopy", ("temperature", "wavelength", "field")),
        ("D20", "PaNET01100", "neutron powder diffraction", ("temperature", "wavelength", "pressure")),
        ("D17", "PaNET01239", "neutron reflectometry", ("temperature", "wavelength")),
        ("D19", "PaNET01217", "neutron diffraction", ("temperature", "wavelength")),
    ]),
    "sim-esrf": ("10.15151/ESRF-ES", "{c}-{n}", [
        ("BM29", "PaNET01188", "small angle x-ray scattering", ("temperature", "energy")),
        ("ID02", "PaNET01188", "small angle x-ray scattering", ("temperature", "energy")),
        ("ID23-1", "PaNET01164", "macromolecular crystallography", ("temperature", "energy")),
        ("ID31", "PaNET01101", "x-ray powder diffraction", ("temperature", "energy", "pressure")),
        ("ID21", "PaNET01196", "x-ray absorption spectroscopy", ("temperature", "energy")),
        ("ID19", "PaNET01207", "x-ray tomography", ("energy",)),
    ]),
    "sim-european-xfel": ("10.22003/XFEL.EU-DATA", "{n:06d}", [
        ("SPB/SFX", "PaNET01168", "serial femtosecond crystallography", ("energy", "temperature")),
        ("FXE", "PaNET01200", "x-ray emission spectroscopy", ("energy",)),
        ("MID", "PaNET01174", "coherent diffraction imaging", ("energy",)),
        ("MID-XPCS", "PaNET01205", "x-ray photon correlation spectroscopy", ("energy", "temperature")),
    ]),
    "sim-ess": ("10.17199/ESS-DATA", "ESS-{y}-{n:04d}", [
        ("LoKI", "PaNET01189", "small angle neutron scattering", ("temperature", "wavelength")),
        ("ESTIA", "PaNET01239", "neutron reflectometry", ("temperature", "wavelength")),
        ("DREAM", "PaNET01100", "neutron powder diffraction", ("temperature", "wavelength", "pressure")),
        ("BIFROST", "PaNET01245", "inelastic neutron spectroscopy", ("temperature", "field")),
    ]),
}

SAMPLES = [
    ("lysozyme", "hen egg-white lysozyme in D2O buffer", ["protein", "enzyme"]),
    ("apoferritin", "horse spleen apoferritin", ["protein", "cage"]),
    ("myoglobin", "sperm whale myoglobin crystals", ["protein", "heme"]),
    ("silver behenate", "calibration standard", ["calibration", "standard"]),
    ("SDS micelles", "sodium dodecyl sulfate micelles in water", ["surfactant", "micelle"]),
    ("PS-PMMA blend", "polystyrene / poly(methyl methacrylate) thin film", ["polymer", "thin film"]),
    ("LiFePO4 cathode", "lithium iron phosphate battery cathode, operando cycling", ["battery", "energy"]),
    ("YBa2Cu3O7", "high-temperature superconductor single crystal", ["superconductor", "cuprate"]),
    ("MOF-5", "zinc metal-organic framework powder", ["MOF", "porous"]),
    ("graphene oxide", "graphene oxide membranes", ["2D material", "membrane"]),
    ("ice VII", "high-pressure water ice", ["ice", "high pressure"]),
    ("Fe3O4 nanoparticles", "magnetite nanoparticles in toluene", ["magnetism", "nanoparticle"]),
    ("photosystem II", "photosystem II microcrystals", ["photosynthesis", "protein"]),
    ("liposomes", "DPPC lipid vesicles", ["lipid", "membrane"]),
    ("CeO2 catalyst", "ceria-supported platinum catalyst", ["catalysis", "oxide"]),
    ("bone tissue", "human trabecular bone biopsy", ["biomedical", "tissue"]),
]
STUDIES = ["structure of", "kinetics of", "in situ study of", "temperature dependence of", "dynamics of",
           "phase behaviour of", "self-assembly of", "strain in", "magnetic order in", "hydration of"]


def _parameters(rng: random.Random, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for kind in kinds:
        if kind == "temperature":
            if rng.random() < 0.3:
                out.append({"name": "sample_temperature", "value": round(rng.uniform(5, 80), 1), "unit": "°C"})
            else:
                out.append({"name": "sample_temperature", "value": rng.choice([1.5, 4.2, 10, 77, 150, 295, 300, 310, 350]),
                            "unit": "K"})
        elif kind == "wavelength":
            unit = rng.choice(["Å", "nm"])
            value = round(rng.uniform(1.0, 12.0), 2)
            out.append({"name": "incident_wavelength", "value": value if unit == "Å" else round(value / 10, 3),
                        "unit": unit})
        elif kind == "energy":
            unit = rng.choice(["keV", "eV"])
            value = round(rng.uniform(6.0, 30.0), 3)
            out.append({"name": "incident_photon_energy", "value": value if unit == "keV" else round(value * 1000, 1),
                        "unit": unit})
        elif kind == "pressure":
            out.append({"name": "sample_pressure", "value": rng.choice([1, 10, 100, 1000, 5000]), "unit": "bar"})
        elif kind == "field":
            out.append({"name": "magnetic_field", "value": rng.choice([0, 0.5, 2, 5, 9]), "unit": "T"})
    return out


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def generate(facility: str, count: int, seed: int = 2026) -> list[dict[str, Any]]:
    """``count`` dataset records of ``facility`` (a key of FACILITIES), newest last."""
    prefix, proposal_pattern, instruments = FACILITIES[facility]
    rng = random.Random(f"{facility}:{seed}")
    start = datetime(2016, 1, 1, tzinfo=timezone.utc)
    records = []
    proposals: list[dict[str, Any]] = []
    used: set[str] = set()
    for n in range(count):
        if not proposals or rng.random() < 0.35:  # a proposal has a few datasets
            year = rng.randint(2016, 2025)
            number = proposal_pattern.format(a=rng.randint(1, 9), b=rng.randint(1, 31), n=rng.randint(100, 2999),
                                             c=rng.choice(["MX", "SC", "HC", "LS", "CH", "EV"]), y=year,
                                             ).replace("{", "").replace("}", "")
            while number in used:  # a proposal number names one proposal
                number += "0"
            used.add(number)
            sample, sample_text, keywords = rng.choice(SAMPLES)
            begins = datetime(year, rng.randint(1, 12), rng.randint(1, 28), tzinfo=timezone.utc)
            proposals.append({"pid": f"{prefix}.{number}".replace("/", "-"), "type": "proposal",
                              "title": f"{rng.choice(STUDIES).capitalize()} {sample}", "doi": f"{prefix}.{number}",
                              "summary": f"Proposal {number}: {sample_text}.", "keywords": keywords,
                              "isPublic": True, "startDate": _iso(begins), "endDate": _iso(begins + timedelta(days=3)),
                              "releaseDate": _iso(begins + timedelta(days=3 * 365)), "license": "CC-BY-4.0",
                              "_sample": sample, "_sample_text": sample_text, "_year": year})
        proposal = proposals[-1]
        instrument, panet_id, technique, kinds = rng.choice(instruments)
        created = max(start, datetime(proposal["_year"], 1, 1, tzinfo=timezone.utc)) + timedelta(
            days=rng.randint(0, 360), seconds=rng.randint(0, 86399))
        is_public = created < datetime(2023, 1, 1, tzinfo=timezone.utc) or rng.random() < 0.3
        pid = f"{proposal['doi']}/{n:05d}" if "XFEL" not in prefix else f"{prefix}/{proposal['doi'].split('.')[-1]}/{n:05d}"
        records.append({
            "pid": pid,
            "title": f"{technique.capitalize()} of {proposal['_sample']} on {instrument}, run {rng.randint(1, 900)}",
            "isPublic": is_public,
            "creationDate": created.isoformat().replace("+00:00", "Z"),
            "size": rng.randint(10**6, 5 * 10**11),
            "documents": [{k: v for k, v in proposal.items() if not k.startswith("_")}],
            "techniques": [{"pid": PANET + panet_id, "name": technique}],
            "instrument": {"pid": f"{facility}/{instrument}", "name": instrument,
                           "facility": facility.removeprefix("sim-").upper()},
            "parameters": _parameters(rng, kinds),
            "files": [{"name": f"run_{n:05d}_{i}.nxs", "path": f"/data/{proposal['pid']}/raw",
                       "size": rng.randint(10**6, 10**9)} for i in range(rng.randint(1, 4))],
            "samples": [{"pid": f"{facility}/sample/{proposal['pid']}", "name": proposal["_sample"],
                         "description": proposal["_sample_text"]}],
        })
    records.sort(key=lambda r: r["creationDate"])
    return records
