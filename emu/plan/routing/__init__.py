"""Routing engines: Topology -> per-node forwarding tables, as pure functions.

Switches get one route per destination address (the IB linear forwarding table:
destination -> port). Engines differ only in which of the shortest-path next hops
a switch uses for a destination; see `static`, `minhop` and `ecmp`. Hosts get a
default route through their NIC; multi-homed hosts also get source rules so a
reply leaves through the NIC that owns the address it answers from.
"""
from dataclasses import dataclass

import networkx as nx

from emu.plan.routing import ecmp, minhop, static
from emu.plan.addressing import AddressPlan, Port
from emu.topo.model import ROUTING_MODES, Topology, natural_key

MAIN_TABLE = 254
# adaptive: the switches start from d-mod-k tables and a controller (emu.control.adaptive) moves
# destinations among equal-cost uplinks from their own queues while the lab runs.
ENGINES = {"static": static.pick, "minhop": minhop.pick, "ecmp": ecmp.pick, "adaptive": static.pick}
assert tuple(ENGINES) == ROUTING_MODES, "every routing mode a topology may name has its engine"


@dataclass(frozen=True)
class Route:
    dst: str                                 # "198.18.0.3/32" or "default"
    nexthops: tuple[tuple[str, str], ...]    # (gateway, device); several = multipath
    table: int = MAIN_TABLE

    @classmethod
    def from_dict(cls, d: dict) -> "Route":
        return cls(d["dst"], tuple(tuple(h) for h in d["nexthops"]), d.get("table", MAIN_TABLE))


@dataclass(frozen=True)
class Rule:
    src: str
    table: int
    pref: int


@dataclass(frozen=True)
class Destination:
    addr: str
    host: str
    switch: str      # the switch this address hangs off (its NIC's peer)
    rank: int        # position in LID order: grouped by switch, hosts in topology order


@dataclass
class NodeRoutes:
    routes: list[Route]
    rules: list[Rule]


def destinations(topo: Topology, plan: AddressPlan) -> list[Destination]:
    switch_order = {s.name: i for i, s in enumerate(topo.switches())}
    host_order = {h.name: i for i, h in enumerate(topo.hosts())}
    ends = [(p.addr, p.node, p.peer) for h in topo.hosts() for p in plan.ports[h.name]]
    ends.sort(key=lambda e: (switch_order[e[2]], host_order[e[1]]))
    return [Destination(addr, host, switch, rank) for rank, (addr, host, switch) in enumerate(ends)]


def compute_routes(topo: Topology, plan: AddressPlan, mode: str | None = None,
                   down: frozenset = frozenset()) -> dict[str, NodeRoutes]:
    """Forwarding state of every node, for routing `mode` (default: the topology's), over the
    links that are up (`down`: frozensets {a, b} of links a subnet manager found down).
    Destinations behind a down link, or cut off from a switch, get no route there."""
    pick = ENGINES[mode or topo.routing]
    dests = [d for d in destinations(topo, plan) if frozenset((d.host, d.switch)) not in down]
    fabric = nx.Graph(topo.graph.subgraph(s.name for s in topo.switches()))
    fabric.remove_edges_from(tuple(link) for link in down if fabric.has_edge(*link))
    dist = {s: nx.single_source_shortest_path_length(fabric, s) for s in {d.switch for d in dests}}
    tables = {n.name: NodeRoutes([], []) for n in topo.nodes()}
    for sw in topo.switches():
        neighbours = sorted(fabric[sw.name], key=natural_key)
        towards: dict[str, tuple] = {}   # a destination's switch -> the neighbours one hop nearer it
        spread: dict[tuple, int] = {}    # candidate set -> destinations spread over it so far
        for d in dests:
            if d.switch == sw.name or sw.name not in dist[d.switch]:
                continue                 # attached (the connected route covers it), or unreachable
            candidates = towards.get(d.switch)
            if candidates is None:
                to_d = dist[d.switch]
                candidates = towards[d.switch] = tuple(y for y in neighbours if to_d[y] == to_d[sw.name] - 1)
            ordinal = spread.get(candidates, 0)
            spread[candidates] = ordinal + 1
            hops = pick(candidates, ordinal)
            ports = [plan.port_to(sw.name, y) for y in hops]
            tables[sw.name].routes.append(Route(f"{d.addr}/32", tuple((p.peer_addr, p.ifname) for p in ports)))
    for host in topo.hosts():
        tables[host.name] = _host_routes(plan.ports[host.name], dests, dist)
    return tables


def _host_routes(ports: list[Port], dests: list[Destination], dist) -> NodeRoutes:
    first = ports[0]
    routes = [Route("default", ((first.peer_addr, first.ifname),))]
    rules = []
    if len(ports) > 1:
        # Multi-homed: leave through the NIC nearest to each destination (ties: the first NIC) ...
        own = {p.addr for p in ports}
        nearest = {}                     # a destination's switch -> the NIC nearest it
        for d in dests:
            if d.addr in own:
                continue
            if d.switch not in nearest:
                nearest[d.switch] = nearest_port(ports, lambda switch: dist[d.switch].get(switch, float("inf")))
            best = nearest[d.switch]
            if best is not first:
                routes.append(Route(f"{d.addr}/32", ((best.peer_addr, best.ifname),)))
        # ... and answer from an address through the NIC that owns it.
        for i, p in enumerate(ports):
            table = 100 + i
            rules.append(Rule(p.addr, table, 100 + i))
            routes.append(Route("default", ((p.peer_addr, p.ifname),), table))
    return NodeRoutes(routes, rules)


def nearest_port(ports: list, hops) -> object:
    """The NIC a multi-homed host uses towards another host, and is reached on from it: the one
    whose switch is the fewest switch hops (`hops(switch)`) from the other end; ties go to the
    first NIC. Routes (above) and experiments choosing an address (port_towards) share it."""
    return min(ports, key=lambda p: (hops(p.peer), ports.index(p)))


def port_towards(topo: Topology, ports: list, src: str):
    """Which of a host's `ports` a host `src` reaches it on (see nearest_port)."""
    fabric = topo.graph.subgraph(s.name for s in topo.switches())
    src_switch = next(iter(topo.graph[src]))
    dist = nx.single_source_shortest_path_length(fabric, src_switch)
    return nearest_port(ports, lambda switch: dist.get(switch, float("inf")))
