"""A switch's routing table as OpenFlow entries (pure: no os-ken, no root; tested as data).

An OVS bridge forwards as the kernel's router did: a packet to an address of the table leaves
through the route's port with the port's MAC as source, the next hop's as destination and its
TTL one less. A route with several next hops becomes a select group: OVS hashes each flow's
5-tuple onto one bucket (as the kernel's multipath hash policy 1 does), and a bucket watches its
port, so a port that goes down leaves the group as a dead next hop leaves a kernel route. A
port's peer is reached directly (the kernel's connected route), and a source rule (`ip rule
from SRC lookup T`) becomes a higher priority with a source match.

Ports are numbered by their place in the plan, from 1 (OVS's ofport_request), so the same plan
gives the same entries on every build.
"""
import ipaddress
from dataclasses import dataclass

from emu.plan import NodePlan
from emu.plan.routing import MAIN_TABLE, Route

CONNECTED, ROUTED, BY_SOURCE = 100, 100, 200    # priority bases; + prefix length: the longest match wins


@dataclass(frozen=True)
class Hop:
    """One next hop: out of this port, rewritten for the neighbour behind it."""
    port: int
    eth_src: str
    eth_dst: str


@dataclass(frozen=True)
class Entry:
    priority: int
    dst: tuple[str, str]                 # (address, mask)
    hops: tuple[Hop, ...]                # several: a select group
    src: tuple[str, str] | None = None   # a source rule's (address, mask)

    @property
    def match(self) -> tuple:
        """What identifies the entry in the switch's table (with its priority)."""
        return self.priority, self.dst, self.src


def port_numbers(node: NodePlan) -> dict[str, int]:
    """ifname -> OpenFlow port number."""
    return {p.ifname: i for i, p in enumerate(node.ports, 1)}


def prefix(dst: str) -> tuple[str, str, int]:
    net = ipaddress.ip_network("0.0.0.0/0" if dst == "default" else dst, strict=False)
    return str(net.network_address), str(net.netmask), net.prefixlen


def hops(node: NodePlan, nexthops) -> tuple[Hop, ...]:
    numbers = port_numbers(node)
    return tuple(Hop(numbers[dev], node.port(dev).mac, node.port(dev).peer_mac) for _, dev in nexthops)


def entries(node: NodePlan, routes: tuple[Route, ...] | None = None) -> list[Entry]:
    """The entries of switch `node` with `routes` (its planned ones if None) and its rules."""
    routes = node.routes if routes is None else routes
    out = [Entry(CONNECTED + 32, (p.peer_addr, "255.255.255.255"), hops(node, [(p.peer_addr, p.ifname)]))
           for p in node.ports]
    sources = {}
    for rule in node.rules:
        sources.setdefault(rule.table, []).append(rule.src)
    for r in routes:
        addr, mask, length = prefix(r.dst)
        if r.table == MAIN_TABLE:
            out.append(Entry(ROUTED + length, (addr, mask), hops(node, r.nexthops)))
        for src in sources.get(r.table, ()):
            s_addr, s_mask, _ = prefix(src)
            out.append(Entry(BY_SOURCE + length, (addr, mask), hops(node, r.nexthops), (s_addr, s_mask)))
    return out


@dataclass
class Change:
    """What brings a switch from its installed entries to a new table, in the order to send it:
    new groups first (entries refer to them), then entries added or overwritten, then entries and
    groups no longer used. Group ids are kept for the life of a switch's connection, one per set
    of next hops, so no id ever means other hops while an entry still refers to it."""
    add_groups: list[tuple[int, tuple[Hop, ...]]]
    put: list[Entry]
    delete: list[Entry]
    delete_groups: list[int]


def change(installed: dict[tuple, Entry], group_ids: dict[tuple[Hop, ...], int], table: list[Entry]) -> Change:
    """The change from `installed` (match -> entry) to `table`; updates both to the new state."""
    new = {e.match: e for e in table}
    add_groups = []
    for e in table:
        if len(e.hops) > 1 and e.hops not in group_ids:
            group_ids[e.hops] = max(group_ids.values(), default=0) + 1
            add_groups.append((group_ids[e.hops], e.hops))
    put = [e for m, e in new.items() if installed.get(m) != e]
    delete = [e for m, e in installed.items() if m not in new]
    used = {e.hops for e in table}
    delete_groups = [group_ids.pop(h) for h in list(group_ids) if h not in used]
    installed.clear()
    installed.update(new)
    return Change(add_groups, put, delete, delete_groups)
