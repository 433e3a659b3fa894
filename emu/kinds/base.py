"""What a node kind is, and the registry each kind module adds itself to."""
import shlex
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Kind:
    name: str
    forwards: bool = False          # a switch: routes between its ports, no traffic of its own
    # attribute name -> (validator turning the YAML value into a Python value, default; None: absent
    # unless given)
    attrs: dict[str, tuple[Callable, object]] = field(default_factory=dict)


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    KINDS[kind.name] = kind
    return kind


def image_name(value) -> str:
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
        raise ValueError(f"must be a container image's name (as `docker images` lists it), got {value!r}")
    return value


def command_line(value) -> list[str]:
    """A program and its arguments: a list of strings, or one string split as a shell would."""
    if isinstance(value, str):
        value = shlex.split(value)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError(f"must be a command: a list of strings or one string, got {value!r}")
    return value


def environment(value) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, (str, int, float, bool))
                                              for k, v in value.items()):
        raise ValueError(f"must be a mapping of variable names to values, got {value!r}")
    return {k: str(v) for k, v in value.items()}


# Any host may be a container: the lab runs the image (with `cmd` and `env`, if given) and wires its
# network namespace as it wires every node's (emu.fabric.containers).
CONTAINER_ATTRS = {"image": (image_name, None), "cmd": (command_line, None), "env": (environment, None)}


def machine_index(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be a machine's index (0, 1, ...), got {value!r}")
    return value


# Every node may be pinned to a machine of a lab that spans several (emu.topo.placement).
PLACE_ATTRS = {"machine": (machine_index, None)}


def positive_int(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be a positive integer, got {value!r}")
    return value
