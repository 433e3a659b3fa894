"""Which machine each node of a topology runs on, when one lab spans several machines.

A node may be pinned (`machine: K` in the topology, 0-based). The others go by zone
(emu.topo.zones: the paper's zones): whole zones onto machines while that keeps the machines
within BALANCE of an equal share; else by unit (a switch with the hosts it holds, a zone's
leaves before its spines, zones in order), cut into contiguous runs of about equal node counts.
So the links that cross machines are few: between zones' spines, the extra NICs of hosts homed
in several zones, and a zone's leaf-spine links where a zone must be cut. The plan does not change; only where each node
is realised does, and a link whose ends land on different machines becomes a tunnel.
"""
from dataclasses import dataclass

from emu.errors import TopologyError
from emu.topo.model import Topology, natural_key
from emu.topo.zones import layers, zones


@dataclass(frozen=True)
class Placement:
    machines: int
    of: dict[str, int]                      # node -> machine index

    def nodes_on(self, machine: int) -> list[str]:
        return sorted((n for n, m in self.of.items() if m == machine), key=natural_key)

    def crossing(self, topo: Topology) -> list[tuple[str, str]]:
        """The links whose ends are on different machines, as (node, node) in the topology's order."""
        return [(l.a, l.b) for l in topo.links() if self.of[l.a] != self.of[l.b]]


BALANCE = 1.25       # whole zones go to machines if no machine then holds more than this times its share


def zone_units(topo: Topology) -> list[list[list[str]]]:
    """Each zone's units, in zone order: a switch with the hosts it holds (a host belongs to the
    first switch it links to), leaves first; then hosts on no switch, a unit each, as one zone."""
    layer = layers(topo) if topo.switches() else {}
    found = zones(topo, layer) if layer else []
    switches = {n.name for n in topo.switches()}
    held: dict[str, list[str]] = {s: [] for s in switches}
    loose = []
    for host in sorted((n.name for n in topo.hosts()), key=natural_key):
        first = next((p for p in sorted(topo.graph[host], key=natural_key) if p in switches), None)
        (held[first] if first else loose).append(host)
    out = [[[s] + held[s] for s in sorted(z.switches, key=lambda s: (layer[s], natural_key(s)))] for z in found]
    return out + ([[[h] for h in loose]] if loose else [])


def place(topo: Topology, machines: int) -> Placement:
    """Every node on one of `machines` machines; pinned nodes where they are pinned."""
    if isinstance(machines, bool) or not isinstance(machines, int) or machines < 1:
        raise TopologyError(topo.source, "machines", f"must be a positive number of machines, got {machines!r}")
    of: dict[str, int] = {}
    for node in topo.nodes():
        pinned = node.attrs.get("machine")
        if pinned is not None:
            if pinned >= machines:
                raise TopologyError(topo.source, f"nodes.{node.name}.machine",
                                    f"machine {pinned} is not among the {machines} (0..{machines - 1})")
            of[node.name] = pinned
    load = [sum(1 for m in of.values() if m == k) for k in range(machines)]
    zoned = [[[n for n in unit if n not in of] for unit in zone] for zone in zone_units(topo)]
    zoned = [[u for u in zone if u] for zone in zoned]
    zoned = [zone for zone in zoned if zone]
    share = (sum(load) + sum(len(u) for zone in zoned for u in zone)) / machines
    whole = _whole_zones(zoned, load, share)
    if whole is not None:
        for zone, k in whole:
            of.update((n, k) for unit in zone for n in unit)
        return Placement(machines, of)
    free = [u for zone in zoned for u in zone]
    k = 0
    for i, unit in enumerate(free):
        left = len(free) - i                    # units still to place, this one included
        # move on once this machine is full, or when the machines still empty need every unit left
        while k < machines - 1 and load[k] and (load[k] + len(unit) / 2 > share or machines - 1 - k >= left):
            k += 1
        for node in unit:
            of[node] = k
        load[k] += len(unit)
    return Placement(machines, of)


def _whole_zones(zoned, load: list[int], share: float):
    """[(zone, machine)]: the largest zone first onto the least loaded machine, if that leaves no
    machine empty nor above BALANCE times its share; else None (zones are cut)."""
    if len(zoned) < len(load):
        return None
    load, out = list(load), []
    for zone in sorted(zoned, key=lambda z: -sum(len(u) for u in z)):
        k = min(range(len(load)), key=lambda m: (load[m], m))
        load[k] += sum(len(u) for u in zone)
        out.append((zone, k))
    return out if min(load) and max(load) <= BALANCE * share else None
