"""What a workload type is: its keys, the nodes it names, its own checks, how the lab runs it and
how the flow model plays it; and the registry each type module adds itself to."""
from dataclasses import dataclass, field
from typing import Callable

from emu.units import parse_duration


@dataclass(frozen=True)
class WorkloadType:
    name: str
    required: frozenset[str]            # keys a scenario must give (besides type, start, name, duration)
    optional: dict                      # keys it may give, with their defaults
    run: Callable                       # (run, step, index) -> figures: plays the step on a lab run
    nodes: dict = field(default_factory=dict)     # key naming nodes -> the kind they must be (None: any host)
    check: Callable | None = None       # (params, topology, where, fail): its own checks, in place
    model: Callable | None = None       # (step, params, topology, storage nodes) -> a model Workload
    storage: bool = False               # it needs the lab's 3FS cluster (so storage nodes)
    paths: tuple[str, ...] = ("file",)  # keys whose text is a file's path, from the scenario file's directory


TYPES: dict[str, WorkloadType] = {}


def register(*types: WorkloadType) -> None:
    for t in types:
        TYPES[t.name] = t


def duration(value, key: str, fail) -> float:
    """Seconds from a duration (`2s`, `500ms`, 1.5), or one line through `fail(key, why)`."""
    try:
        return parse_duration(value)
    except ValueError as e:
        fail(key, str(e))


def checkpoint_period(value, where: str, topology, fail) -> float | None:
    """`{period: DURATION}` -> seconds (None: no checkpoints); needs storage nodes."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"period"}:
        fail(where, "must be {period: DURATION}")
    if not any(n.kind == "storage" for n in topology.nodes()):
        fail(where, "checkpoints need storage nodes and the topology has none")
    return duration(value["period"], f"{where}.period", fail)
