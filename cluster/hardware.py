"""Node hardware profiles: what a compute node is made of, as data (cluster/profiles/NAME.yaml).

A profile lists a node's accelerators, their memory tiers (capacity and bandwidth), host memory,
the PCIe layout (each accelerator's link, the shared uplinks: "root complexes"), its NICs and
the accelerators' own network, every figure with its source. A topology's compute node names
one (`hardware: dgx-h100`); cluster.node.NodeParams.from_profile turns it into the resources the
agents' node model, the footprints and the flow model share. A new node kind is a new file here.
"""
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

DIR = Path(__file__).with_name("profiles")
DEFAULT = "ff2-a100-pcie"

COUNTS = ("accelerators", "accelerators_per_root_complex", "numa_nodes", "nics")
SIZES = ("hbm_capacity", "host_memory_capacity")
RATES = ("hbm_bandwidth", "host_memory_bandwidth", "pcie_bandwidth", "root_complex_bandwidth",
         "root_complex_duplex_bandwidth", "gpu_nic_p2p_bandwidth", "interconnect_bandwidth")
# a tier of the accelerator's own beyond HBM (SN40L's DDR), and on-chip SRAM: both or neither of
# the first two; SRAM alone
OPTIONAL = {"local_memory_capacity": "size", "local_memory_bandwidth": "rate", "sram_capacity": "size"}
_UNITS = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40}
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]+)(/s)?\s*$")


class ProfileError(ValueError):
    """A profile that cannot be used, in one line: which file, which key, why."""


def quantity(text, rate: bool) -> float:
    """'1.5 TB' -> 1.5e12 bytes; '3.35 TB/s' -> bytes per second (rate=True needs the '/s')."""
    m = _QUANTITY.match(str(text)) if isinstance(text, str) else None
    if not m or m.group(2).lower() not in _UNITS or bool(m.group(3)) != rate:
        raise ValueError(f"{text!r} is not a {'rate such as 200 GB/s' if rate else 'size such as 64 GB'}")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if value <= 0:
        raise ValueError(f"{text!r} must be above zero")
    return value


@dataclass(frozen=True)
class Profile:
    name: str
    title: str
    accelerator: str
    figures: dict            # figure -> number (counts as int, sizes in bytes, rates in bytes/s)
    sources: dict            # figure -> where it comes from, or the assumption it is

    def __getattr__(self, key):
        try:
            return self.__dict__["figures"][key]
        except KeyError:
            raise AttributeError(key) from None

    def get(self, key: str, default=None):
        return self.figures.get(key, default)

    @property
    def hbm_total(self) -> float:
        return self.hbm_capacity * self.accelerators

    @property
    def capacity_tier(self) -> tuple[str, float]:
        """(name, bytes) of the tier a switch copies experts from: the accelerators' own memory
        beyond HBM where they have one (SN40L's DDR), else host memory over PCIe."""
        if "local_memory_capacity" in self.figures:
            return "local", self.local_memory_capacity * self.accelerators
        return "host", self.host_memory_capacity


def names() -> list[str]:
    return sorted(p.stem for p in DIR.glob("*.yaml"))


@cache
def load(name: str = DEFAULT) -> Profile:
    """The profile called `name` (cluster/profiles/NAME.yaml), or one line naming the known ones."""
    path = DIR / f"{name}.yaml"
    if not isinstance(name, str) or "/" in name or not path.is_file():
        raise ProfileError(f"no hardware profile {name!r} (one of {', '.join(names())})")
    return load_file(path)


def load_file(path: Path) -> Profile:
    """A profile file, checked whole: every figure known, of its kind, above zero, with a source."""
    path = Path(path)

    def fail(key: str, why: str):
        raise ProfileError(f"{path}: {key}: {why}")
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ProfileError(f"{path}: {str(e).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        fail("(top)", "must be a mapping with name, title, accelerator, figures and sources")
    unknown = set(doc) - {"name", "title", "accelerator", "figures", "sources"}
    if unknown:
        fail(sorted(unknown)[0], "unknown key (name, title, accelerator, figures, sources)")
    for key in ("name", "title", "accelerator"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            fail(key, "must be a non-empty string")
    if doc["name"] != path.stem:
        fail("name", f"must be the file's name, {path.stem!r}")
    raw, sources = doc.get("figures"), doc.get("sources")
    if not isinstance(raw, dict) or not isinstance(sources, dict):
        fail("figures" if not isinstance(raw, dict) else "sources", "must be a mapping")
    figures = {}
    for key in COUNTS + SIZES + RATES:
        if key not in raw:
            fail(f"figures.{key}", "missing")
    for key, value in raw.items():
        kind = ("count" if key in COUNTS else "size" if key in SIZES else "rate" if key in RATES
                else OPTIONAL.get(key))
        if kind is None:
            fail(f"figures.{key}", "unknown figure")
        if kind == "count":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                fail(f"figures.{key}", f"must be a whole number of at least 1, got {value!r}")
            figures[key] = value
        else:
            try:
                figures[key] = quantity(value, rate=kind == "rate")
            except ValueError as e:
                fail(f"figures.{key}", str(e))
        if not isinstance(sources.get(key), str) or not sources[key].strip():
            fail(f"sources.{key}", "every figure needs its source (or the assumption it is)")
    extra = set(sources) - set(raw)
    if extra:
        fail(f"sources.{sorted(extra)[0]}", "a source of no figure")
    if ("local_memory_capacity" in figures) != ("local_memory_bandwidth" in figures):
        fail("figures.local_memory_bandwidth", "a local memory tier needs both its capacity and its bandwidth")
    if figures["nics"] not in (1, figures["accelerators"]):
        fail("figures.nics", f"a node has one NIC or one per accelerator ({figures['accelerators']})")
    if figures["accelerators"] % figures["accelerators_per_root_complex"]:
        fail("figures.accelerators_per_root_complex", "must divide the accelerators")
    return Profile(doc["name"], doc["title"], doc["accelerator"], figures, dict(sources))
