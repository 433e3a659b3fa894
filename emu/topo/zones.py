"""Zones of a fabric: the parts of its switches that reach each other by up-down links, as the
paper's two zones do (each a two-layer fat-tree, joined by a few links between their spines).
One definition for the drawing (zones side by side) and the scheduler (where a job may run).
"""
from dataclasses import dataclass
from os.path import commonprefix

import networkx as nx

from emu.topo.model import Topology, natural_key


@dataclass
class Zone:
    label: str
    switches: list[str]
    x0: float = 0.0             # the drawing's horizontal span of the zone (set by graph.layout)
    x1: float = 0.0


def layers(topo: Topology) -> dict[str, int]:
    """0 for hosts, then each switch's hop count from the nearest host: 1 leaves, 2 spines, 3 cores."""
    hosts = [n.name for n in topo.hosts()]
    return dict(nx.multi_source_dijkstra_path_length(topo.graph, hosts, weight=lambda *_: 1))


def zones(topo: Topology, layer: dict[str, int] | None = None) -> list[Zone]:
    """The switches that reach each other by up-down links (the links between two layers), in the
    order of their first name: the paper's two zones, or the planes of a multi-plane network. Links
    inside one layer (between zones' spines) do not join zones."""
    layer = layer or layers(topo)
    switches = [n.name for n in topo.switches()]
    updown = nx.Graph()
    updown.add_nodes_from(switches)
    updown.add_edges_from((a, b) for a, b in topo.graph.subgraph(switches).edges if layer[a] != layer[b])
    parts = sorted((sorted(c, key=natural_key) for c in nx.connected_components(updown)),
                   key=lambda c: natural_key(c[0]))
    found = []
    for i, part in enumerate(parts):
        prefix = commonprefix(part)
        prefix = prefix[:prefix.rfind("-") + 1] if "-" in prefix else ""
        found.append(Zone(f"{prefix}* (zone {i + 1})" if prefix else f"zone {i + 1}", part))
    return found


def joined_zones(topo: Topology, found: list[Zone]) -> dict[str, tuple[int, ...]]:
    """host -> the zones its links reach (more than one: it is drawn between them), in name order."""
    zone_of = {s: i for i, z in enumerate(found) for s in z.switches}
    return {host: tuple(sorted({zone_of[s] for s in topo.graph[host]}))
            for host in sorted((n.name for n in topo.hosts()), key=natural_key)}


def compute_zones(topo: Topology) -> dict[str, int]:
    """compute node -> its zone for placement (0, 1, ... in the order of each zone's first node):
    nodes that join the same zones share one. Two zones joined by a few spine links are two; the
    pods of a three-layer fat-tree (full bisection through the cores) and the planes of a
    multi-plane network (every node on every plane) are one."""
    joined = joined_zones(topo, zones(topo))
    index: dict[tuple[int, ...], int] = {}
    compute = [n.name for n in topo.nodes() if n.kind == "compute"]
    for name in compute:
        index.setdefault(joined[name], len(index))
    return {name: index[joined[name]] for name in compute}
