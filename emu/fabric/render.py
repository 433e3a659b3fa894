"""What the kernel must hold for a lab, rendered as batch lines (pure, testable without root).

Topology -> addressing, routing and QoS plans -> one root `ip -batch` that makes the
namespaces and veth pairs, then per namespace one `ip -batch` (ownership marks,
addresses, static neighbours, rules, routes) and one `tc -batch` (VL queues).
"""
from dataclasses import dataclass, field

from emu.qos.htb import GSO_SEGS, port_commands
from emu.routing import NodeRoutes, Route, compute_routes
from emu.topo.addressing import AddressPlan
from emu.topo.model import Topology

MARK_PREFIX = "emu:"
# A host's own egress queue models its NIC's send queue, which on InfiniBand never drops (the HCA
# waits for link credits). Deep enough for several TCP sockets' small-queue allowance (1 MiB each);
# switch ports keep the topology's `buffer`, where drops are what an experiment looks at.
HOST_QUEUE_BYTES = 8 * 2**20


def lab_mark(lab: str) -> str:
    """The alias every interface of lab `lab` carries; cleanup trusts nothing else."""
    return f"{MARK_PREFIX}{lab}"


def netns_name(lab: str, node: str) -> str:
    return f"emu-{lab}-{node}"


@dataclass
class NamespacePlan:
    node: str
    netns: str
    ip_lines: list[str] = field(default_factory=list)
    tc_lines: list[str] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)


@dataclass
class FabricPlan:
    lab: str
    create_lines: list[str]
    namespaces: list[NamespacePlan]

    def netns_names(self) -> list[str]:
        return [n.netns for n in self.namespaces]


def render(topo: Topology, lab: str | None = None) -> FabricPlan:
    lab = lab or topo.name
    addressing = AddressPlan(topo)
    routes = compute_routes(topo, addressing)
    mark = lab_mark(lab)
    create = [f"netns add {netns_name(lab, n.name)}" for n in topo.nodes()]
    for node in topo.nodes():
        for p in addressing.ports[node.name]:
            if p.link.a == node.name:   # each veth pair once, from its `a` end
                create.append(f"link add name {p.ifname} netns {netns_name(lab, p.node)} address {p.mac} "
                              f"type veth peer name {p.peer_ifname} netns {netns_name(lab, p.peer)} address {p.peer_mac}")
    plans = []
    for node in topo.nodes():
        ns = NamespacePlan(node.name, netns_name(lab, node.name))
        ns.ip_lines.append(f"link set dev lo alias {mark}:{node.name} up")
        for p in addressing.ports[node.name]:
            ns.ip_lines += [
                # Few segments per packet: HTB then releases bursts of a few MTUs at the link rate, as a
                # real port serialises frames, not 64 KB GSO bursts that no shallow buffer absorbs.
                f"link set dev {p.ifname} alias {mark} gso_max_segs {GSO_SEGS} up",
                f"addr add {p.addr}/31 dev {p.ifname}",
                f"neigh replace {p.peer_addr} lladdr {p.peer_mac} dev {p.ifname} nud permanent",
            ]
            queue = p.link.buffer_bytes if node.forwards else max(p.link.buffer_bytes, HOST_QUEUE_BYTES)
            ns.tc_lines += port_commands(p.ifname, topo.emulated_rate(p.link), queue, topo.qos)
        ns.ip_lines += _route_lines(routes[node.name])
        ns.sysctls = _sysctls(node.forwards, topo.routing)
        plans.append(ns)
    return FabricPlan(lab, create, plans)


def _route_lines(table: NodeRoutes) -> list[str]:
    lines = [f"rule add from {r.src} lookup {r.table} pref {r.pref}" for r in table.rules]
    lines += [_route_line(r) for r in table.routes]
    return lines


def _route_line(route: Route) -> str:
    table = "" if route.table == 254 else f" table {route.table}"
    if len(route.nexthops) == 1:
        gw, dev = route.nexthops[0]
        return f"route add {route.dst}{table} via {gw} dev {dev} onlink"
    hops = " ".join(f"nexthop via {gw} dev {dev} onlink" for gw, dev in route.nexthops)
    return f"route add {route.dst}{table} {hops}"


def _sysctls(forwards: bool, routing: str) -> dict[str, str]:
    values = {"net/ipv6/conf/all/disable_ipv6": "1",    # no IPv6 chatter in the VL queues
              "net/ipv6/conf/default/disable_ipv6": "1",
              "net/ipv4/ip_forward": "1" if forwards else "0"}
    if not forwards:
        # A TCP responder answers in the class it was asked in (as an IB responder's QP uses the
        # requester's SL): the SYN-ACK and every reply of an accepted connection carry the SYN's TOS.
        values["net/ipv4/tcp_reflect_tos"] = "1"
    if forwards and routing == "ecmp":
        values["net/ipv4/fib_multipath_hash_policy"] = "1"   # hash on the L4 5-tuple
    return values
