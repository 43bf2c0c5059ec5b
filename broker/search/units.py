"""Physical quantities of dataset parameters, compared in SI units.

The PaNOSC Search API compares parameter values in SI (its spec converts with mathjs units); the
broker indexes every known parameter's value in SI and converts query bounds the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

# unit (as facilities write it) -> (SI unit, factor, offset): si = value * factor + offset
UNITS: dict[str, tuple[str, float, float]] = {
    "k": ("K", 1.0, 0.0), "kelvin": ("K", 1.0, 0.0), "mk": ("K", 1e-3, 0.0),
    "°c": ("K", 1.0, 273.15), "degc": ("K", 1.0, 273.15), "celsius": ("K", 1.0, 273.15),
    "°f": ("K", 5 / 9, 273.15 - 32 * 5 / 9), "degf": ("K", 5 / 9, 273.15 - 32 * 5 / 9),
    "m": ("m", 1.0, 0.0), "mm": ("m", 1e-3, 0.0), "um": ("m", 1e-6, 0.0), "µm": ("m", 1e-6, 0.0),
    "nm": ("m", 1e-9, 0.0), "pm": ("m", 1e-12, 0.0), "å": ("m", 1e-10, 0.0),
    "angstrom": ("m", 1e-10, 0.0), "ångström": ("m", 1e-10, 0.0),
    "j": ("J", 1.0, 0.0), "ev": ("J", 1.602176634e-19, 0.0), "mev": ("J", 1.602176634e-22, 0.0),
    "kev": ("J", 1.602176634e-16, 0.0), "gev": ("J", 1.602176634e-10, 0.0),
    "pa": ("Pa", 1.0, 0.0), "hpa": ("Pa", 100.0, 0.0), "kpa": ("Pa", 1e3, 0.0), "mpa": ("Pa", 1e6, 0.0),
    "gpa": ("Pa", 1e9, 0.0), "bar": ("Pa", 1e5, 0.0), "mbar": ("Pa", 100.0, 0.0), "kbar": ("Pa", 1e8, 0.0),
    "atm": ("Pa", 101325.0, 0.0), "torr": ("Pa", 133.322368, 0.0),
    "t": ("T", 1.0, 0.0), "tesla": ("T", 1.0, 0.0), "gauss": ("T", 1e-4, 0.0),
    "s": ("s", 1.0, 0.0), "ms": ("s", 1e-3, 0.0), "min": ("s", 60.0, 0.0), "h": ("s", 3600.0, 0.0),
    "hz": ("Hz", 1.0, 0.0), "khz": ("Hz", 1e3, 0.0), "mhz": ("Hz", 1e6, 0.0),
}
# Some symbols differ only by case: keep the SI prefix meaning where it matters.
CASE_SENSITIVE = {"mK": ("K", 1e-3, 0.0), "MeV": ("J", 1.602176634e-13, 0.0), "meV": ("J", 1.602176634e-22, 0.0),
                  "MPa": ("Pa", 1e6, 0.0), "mPa": ("Pa", 1e-3, 0.0), "MHz": ("Hz", 1e6, 0.0),
                  "mT": ("T", 1e-3, 0.0), "G": ("T", 1e-4, 0.0), "g": ("kg", 1e-3, 0.0), "kg": ("kg", 1.0, 0.0)}

#: parameters the index keeps as SI range fields, with the SI unit they must come out in
INDEXED_PARAMETERS = {
    "sample_temperature": "K",
    "incident_wavelength": "m",
    "incident_photon_energy": "J",
    "incident_energy": "J",
    "sample_pressure": "Pa",
    "magnetic_field": "T",
}


class UnknownUnit(ValueError):
    pass


@dataclass(frozen=True)
class Quantity:
    value: float
    unit: str  # SI


def to_si(value: float, unit: str | None) -> Quantity:
    """``value`` in ``unit`` as an SI quantity; ``UnknownUnit`` when the unit is not known."""
    if not unit:
        return Quantity(float(value), "")
    key = unit.strip()
    spec = CASE_SENSITIVE.get(key) or UNITS.get(key.lower())
    if spec is None:
        raise UnknownUnit(f"unknown unit {unit!r}")
    si_unit, factor, offset = spec
    return Quantity(float(value) * factor + offset, si_unit)


def si_for(parameter: str, value: float, unit: str | None) -> float | None:
    """The SI value of an indexed parameter, or None when the unit does not fit the parameter."""
    expected = INDEXED_PARAMETERS.get(parameter)
    if expected is None:
        return None
    try:
        quantity = to_si(value, unit)
    except UnknownUnit:
        return None
    return quantity.value if quantity.unit == expected else None
