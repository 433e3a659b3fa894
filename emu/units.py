"""Parsing of rates (bits per second) and sizes (bytes) as written in topology files."""
import math
import re

from emu.errors import EmuError

_RATE_UNITS = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9, "tbit": 10**12}
# One size grammar for topology files and the CLI: K, KiB (and k) are 2**10, kB is 10**3, etc.
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9,
               "k": 2**10, "m": 2**20, "g": 2**30, "kib": 2**10, "mib": 2**20, "gib": 2**30}
_NUMBER_UNIT = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_rate(text) -> int:
    """'200Gbit' -> 200_000_000_000. Bits per second (a plain number too); 'bps' is refused
    (tc reads it as bytes)."""
    return int(_parse(text, _RATE_UNITS, "bit", "rate", "bit, Kbit, Mbit, Gbit, Tbit", 1, "1 bit/s"))


def parse_size(text) -> int:
    """'128KiB' and '128K' -> 131072, '128kB' -> 128000. Plain numbers are bytes."""
    return int(_parse(text, _SIZE_UNITS, "b", "size", "B, K/KiB, M/MiB, G/GiB, kB, MB, GB", 1, "1 byte"))


def parse_sizes(text: str) -> list[int]:
    """'1M:256M' -> 1M, 2M, 4M, ... 256M (doubling, as nccl-tests -b/-e/-f 2); '4M,64M' -> those two."""
    try:
        if ":" in text:
            lo, hi = (parse_size(x) for x in text.split(":", 1))
            if hi < lo:
                raise ValueError(f"bad size range {text!r}: the end is below the start")
            return [lo << k for k in range((hi // lo).bit_length())]
        return [parse_size(x) for x in text.split(",")]
    except ValueError as e:
        raise EmuError(str(e)) from None


def _parse(text, units: dict, bare_unit: str, what: str, names: str, least: float, least_text: str) -> float:
    """A number with an optional unit from `units` (a bare number is in `bare_unit`), at least `least`."""
    if isinstance(text, bool):
        raise ValueError(f"bad {what} {text!r}: use a number and one of {names}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = _NUMBER_UNIT.match(str(text))
        unit = (m.group(2).lower() or bare_unit) if m else ""
        if not m or unit not in units:
            raise ValueError(f"bad {what} {text!r}: use a number and one of {names}")
        value = float(m.group(1)) * units[unit]
    if not math.isfinite(value):
        raise ValueError(f"bad {what} {text!r}: must be finite")
    if value < least:
        raise ValueError(f"bad {what} {text!r}: must be at least {least_text}")
    return value


def format_rate(bps: float) -> str:
    for unit, factor in (("Tbit", 1e12), ("Gbit", 1e9), ("Mbit", 1e6), ("Kbit", 1e3)):
        if bps >= factor:
            return f"{bps / factor:.3g}{unit}"
    return f"{bps:.3g}bit"


def format_size(nbytes: float) -> str:
    """131072 -> '128K', as parse_size reads it back (binary units)."""
    for unit, factor in (("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if nbytes >= factor:
            return f"{nbytes / factor:.3g}{unit}"
    return f"{nbytes:.3g}B"


_DURATION_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0}


def parse_duration(text) -> float:
    """'2s', '500ms', '1.5m' or a plain number of seconds -> seconds (>= 0)."""
    return _parse(text, _DURATION_UNITS, "s", "duration", "ms, s, m", 0.0, "0 s")
