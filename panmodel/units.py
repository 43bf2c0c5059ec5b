"""Physical quantities of dataset parameters, compared in SI base units.

Units are read by pint (the PaNOSC reference documents mathjs units; pint knows the same names and
more). Every parameter with a unit pint knows is kept in SI beside its dimension, so a query in any
compatible unit (K or °C, eV or keV, Å or nm, bar or GPa, T or G) matches values stored in any other.
Facilities name the same quantity differently (the reference's examples say ``temperature``, the PaNOSC
portal ``sample_temperature``): ``ALIASES`` maps such names to one, at harvest and at query time alike.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import pint

_REGISTRY = pint.UnitRegistry()

#: parameter names that stand for the same quantity -> the name the broker keeps (the PaNOSC portal's)
ALIASES = {
    "temperature": "sample_temperature",
    "wavelength": "incident_wavelength",
    "photon_energy": "incident_photon_energy",
    "energy": "incident_energy",
    "pressure": "sample_pressure",
    "field": "magnetic_field",
}

# Spellings PaN facilities use that pint reads otherwise: pint's gauss and oersted are Gaussian-CGS units
# of another dimension; at facilities they mean 1e-4 T (B and mu0*H alike). value -> (factor, SI unit)
_PAN_SPELLINGS = {"G": (1e-4, "T"), "gauss": (1e-4, "T"), "Gs": (1e-4, "T"), "Oe": (1e-4, "T"),
                  "oersted": (1e-4, "T"), "°": (1.0, "deg"), "Angstrom": (1.0, "Å"), "A°": (1.0, "Å")}
MAX_UNIT_CHARS = 40
_NAME = re.compile(r"[^a-z0-9_]+")

#: the names of the dimensions the search page offers ranges for, with the unit it shows first
COMMON = {"sample_temperature": "K", "incident_wavelength": "Å", "incident_photon_energy": "eV",
          "incident_energy": "meV", "sample_pressure": "bar", "magnetic_field": "T"}


class UnknownUnit(ValueError):
    pass


@dataclass(frozen=True)
class Quantity:
    value: float  # in SI base units
    dimension: str  # a key for the dimension, e.g. "K" or "kg.m2.s-2"; "1" when dimensionless


@lru_cache(maxsize=16_384)  # a harvest asks for the same few names millions of times
def canonical_name(name: str) -> str:
    """The name under which a parameter is kept and searched (lower case, aliases resolved)."""
    key = _NAME.sub("_", name.strip().lower()).strip("_")
    return ALIASES.get(key, key)


def to_si(value: float, unit: str | None) -> Quantity:
    """``value`` in ``unit`` as an SI quantity; ``UnknownUnit`` when the unit is not known."""
    factor, offset, dimension = _conversion((unit or "").strip())
    return Quantity(float(value) * factor + offset, dimension)


def dimension_of(unit: str | None) -> str:
    """The dimension key of ``unit``; ``UnknownUnit`` when the unit is not known."""
    return _conversion((unit or "").strip())[2]


@lru_cache(maxsize=4096)
def _conversion(unit: str) -> tuple[float, float, str]:
    """(factor, offset, dimension) with si = value * factor + offset, worked out once per spelling."""
    if not unit:
        return 1.0, 0.0, "1"
    if len(unit) > MAX_UNIT_CHARS:
        raise UnknownUnit(f"unit {unit[:MAX_UNIT_CHARS]!r}… is too long")
    scale, spelled = _PAN_SPELLINGS.get(unit, (1.0, unit))
    try:
        zero = _REGISTRY.Quantity(0.0, spelled).to_base_units()
        one = _REGISTRY.Quantity(1.0, spelled).to_base_units()
    except Exception as exc:  # pint raises several kinds for text it cannot read  # noqa: BLE001
        raise UnknownUnit(f"unknown unit {unit!r}") from exc
    return (float(one.magnitude) - float(zero.magnitude)) * scale, float(zero.magnitude) * scale, \
        _dimension_key(one.units)


def _dimension_key(units: pint.Unit) -> str:
    symbols = {"kelvin": "K", "meter": "m", "kilogram": "kg", "second": "s", "ampere": "A", "mole": "mol",
               "candela": "cd", "radian": "rad", "bit": "bit"}
    parts = []
    for name, power in sorted(units._units.items()):  # noqa: SLF001 - the unit's exponents, as pint keeps them
        symbol = symbols.get(name, name)
        parts.append(symbol if power == 1 else f"{symbol}{power:g}")
    return ".".join(parts) or "1"


@lru_cache(maxsize=16_384)
def parameter_key(name: str, dimension: str) -> str:
    """The index key of a parameter's SI value: its canonical name and dimension (letters, digits, _)."""
    return f"{canonical_name(name)}__{re.sub(r'[^A-Za-z0-9]', '_', dimension.replace('-', 'n'))}"
