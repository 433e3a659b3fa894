"""Composition of Experts serving, as numbers: experts' sizes, request traces, which node serves
which expert and where each is held, and the HBM's least-recently-used set (SN40L paper, arXiv
2405.07518: a router picks one expert a request; the node serving it keeps the experts its HBM
holds and copies a missing one in from its capacity tier, or from storage when the node holds
none of it). Pure: the serving agents (agents/coe.py), the workload (emu/workloads/coe.py) and
scripts/coe_claims.py share it.
"""
import csv
import math
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cluster.node import DTYPES

_PARAMS = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMBT]?)\s*$", re.IGNORECASE)
_SCALE = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}
HBM = "hbm"          # where a request's expert was: already in HBM, the node's capacity tier, storage
STORAGE = "storage"


def parameters(text) -> float:
    """'7B' -> 7e9 parameters (K, M, B, T; a plain number is a count)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool) and text > 0:
        return float(text)
    m = _PARAMS.match(str(text)) if isinstance(text, str) else None
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a parameter count such as 7B")
    return float(m.group(1)) * _SCALE[m.group(2).lower()]


def expert_bytes(params, dtype: str) -> int:
    return int(parameters(params) * DTYPES.itemsize(dtype))


@dataclass(frozen=True)
class Request:
    t: float            # real seconds after the start
    expert: int
    tokens: int


def zipf_trace(experts: int, rate: float, seconds: float, skew: float, tokens: int, seed: int = 0) -> list[Request]:
    """Poisson arrivals at `rate` a second for `seconds`; expert k (0 the most asked) with
    probability proportional to 1 / (k + 1) ** skew (skew 0: every expert alike)."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, experts + 1) ** skew
    out, t = [], rng.exponential(1 / rate)
    while t < seconds:
        out.append(Request(float(t), int(rng.choice(experts, p=weights / weights.sum())), tokens))
        t += rng.exponential(1 / rate)
    return out


def read_trace(path, experts: int) -> list[Request]:
    """A trace file: CSV lines `t,expert,tokens` (real seconds, expert index, tokens), '#' comments."""
    out = []
    with open(path, newline="") as f:
        for n, row in enumerate(csv.reader(line for line in f if line.strip() and not line.startswith("#")), 1):
            try:
                t, expert, tokens = float(row[0]), int(row[1]), int(row[2])
            except (ValueError, IndexError):
                raise ValueError(f"{path}: request {n}: must be t,expert,tokens, got {','.join(row)!r}") from None
            if not (t >= 0 and 0 <= expert < experts and tokens >= 1):
                raise ValueError(f"{path}: request {n}: t >= 0, expert in 0..{experts - 1}, tokens >= 1")
            out.append(Request(t, expert, tokens))
    if not out:
        raise ValueError(f"{path}: no requests")
    return sorted(out, key=lambda r: r.t)


def server_of(expert: int, servers: int) -> int:
    """The router's placement: expert e is served by server e mod S."""
    return expert % servers


@dataclass(frozen=True)
class Holding:
    """Where one serving node keeps its experts."""
    hbm_slots: int              # experts its HBM holds at once
    tier: str                   # the capacity tier: "local" (the accelerators' own DDR) or "host"
    held: tuple[int, ...]       # its experts the capacity tier holds
    stored: tuple[int, ...]     # its experts it holds nowhere: streamed from storage on a miss


def holding(profile, server: int, servers: int, experts: int, nbytes: int, hbm_slots: int | None = None,
            room: int | None = None) -> Holding:
    """How a node of `profile` serving its share of `experts` of `nbytes` each keeps them: as many
    in HBM as it holds whole (or `hbm_slots`), the capacity tier the first of them it has room
    for (or `room` of them), the rest live on storage."""
    mine = [e for e in range(experts) if server_of(e, servers) == server]
    tier, capacity = profile.capacity_tier
    room = int(capacity // nbytes) if room is None else room
    slots = hbm_slots if hbm_slots is not None else int(profile.hbm_total // nbytes)
    return Holding(slots, tier, tuple(mine[:room]), tuple(mine[room:]))


class Lru:
    """The experts in HBM: a hit moves one to the front; a miss loads it, evicting the least
    recently used when full."""

    def __init__(self, slots: int):
        self.slots, self.held = slots, OrderedDict()

    def touch(self, expert: int) -> tuple[bool, int | None]:
        """(hit, the expert evicted or None)."""
        if expert in self.held:
            self.held.move_to_end(expert)
            return True, None
        evicted = self.held.popitem(last=False)[0] if len(self.held) >= self.slots else None
        self.held[expert] = True
        return False, evicted


def replay(trace: list[Request], slots: int) -> tuple[int, int]:
    """(hits, misses) of one node's LRU over `trace` (what a serving agent must count)."""
    lru, hits = Lru(slots), 0
    for r in trace:
        hits += lru.touch(r.expert)[0]
    return hits, len(trace) - hits


def machines_to_hold(profile, experts: int, nbytes: int, tier: str) -> int:
    """Nodes of `profile` whose `tier` ("hbm" or the capacity tier) holds `experts` whole experts."""
    per_node = (profile.hbm_total if tier == HBM else profile.capacity_tier[1]) // nbytes
    return math.ceil(experts / per_node) if per_node else 0


def trace_file(path: Path, trace: list[Request]) -> None:
    with open(path, "w") as f:
        f.writelines(f"{r.t!r},{r.expert},{r.tokens}\n" for r in trace)
