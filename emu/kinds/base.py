"""What a node kind is, and the registry each kind module adds itself to."""
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Kind:
    name: str
    forwards: bool = False          # a switch: routes between its ports, no traffic of its own
    # attribute name -> (validator turning the YAML value into a Python value, default)
    attrs: dict[str, tuple[Callable, object]] = field(default_factory=dict)


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    KINDS[kind.name] = kind
    return kind


def positive_int(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be a positive integer, got {value!r}")
    return value
