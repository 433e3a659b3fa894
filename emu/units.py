"""Parsing of rates (bits per second) and sizes (bytes) as written in topology files."""
import re

_RATE_UNITS = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9, "tbit": 10**12}
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9,
               "kib": 2**10, "mib": 2**20, "gib": 2**30}
_NUMBER_UNIT = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_rate(text) -> int:
    """'200Gbit' -> 200_000_000_000. Bits per second; 'bps' is refused (tc reads it as bytes)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool) and text > 0:
        return int(text)
    m = _NUMBER_UNIT.match(str(text))
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _RATE_UNITS:
        raise ValueError(f"bad rate {text!r}: use a number and one of bit, Kbit, Mbit, Gbit, Tbit")
    value = float(m.group(1)) * _RATE_UNITS[unit]
    if value < 1:
        raise ValueError(f"bad rate {text!r}: must be positive")
    return int(value)


def parse_size(text) -> int:
    """'128KiB' -> 131072. Plain integers are bytes."""
    if isinstance(text, int) and not isinstance(text, bool) and text > 0:
        return text
    m = _NUMBER_UNIT.match(str(text))
    unit = (m.group(2).lower() or "b") if m else ""
    if not m or unit not in _SIZE_UNITS:
        raise ValueError(f"bad size {text!r}: use a number and one of B, KiB, MiB, GiB, kB, MB, GB")
    value = float(m.group(1)) * _SIZE_UNITS[unit]
    if value < 1:
        raise ValueError(f"bad size {text!r}: must be positive")
    return int(value)


def format_rate(bps: float) -> str:
    for unit, factor in (("Tbit", 1e12), ("Gbit", 1e9), ("Mbit", 1e6), ("Kbit", 1e3)):
        if bps >= factor:
            return f"{bps / factor:.3g}{unit}"
    return f"{bps:.3g}bit"
