"""A LabPlan, laid out in namespaces, as kernel batch lines (pure, testable without root).

One root `ip -batch` makes the namespaces and veth pairs; then per namespace one
`ip -batch` (ownership marks, addresses, static neighbours, rules, routes) and one
`tc -batch` (VL queues), plus the sysctls written in-process. The kernel's own facts live
here, not in the plan: the ownership mark, the GSO burst, the sysctls.
"""
from dataclasses import dataclass, field

from emu.backends import LOCAL, Layout, Place
from emu.plan import LabPlan, NodePlan, PortPlan
from emu.plan.queues import GSO_SEGS, render_port
from emu.plan.routing import Route

MARK_PREFIX = "emu:"


def lab_mark(lab: str) -> str:
    """The alias every interface of lab `lab` carries; cleanup trusts it only with the name."""
    return f"{MARK_PREFIX}{lab}"


def netns_name(lab: str, node: str) -> str:
    """The namespace the kernel backend gives node `node` of lab `lab`."""
    return f"emu-{lab}-{node}"


def kernel_layout(lab: str, nodes: list[str], containers=()) -> Layout:
    """Every node in a namespace of its own on this machine; a node in `containers` in the
    namespace of a container named as its namespace is (emu.fabric.containers)."""
    containers = set(containers)
    return Layout("kernel", lab, {n: Place(LOCAL, netns_name(lab, n), netns_name(lab, n) if n in containers else None)
                                  for n in nodes})


def sysctls(node: NodePlan, routing: str) -> dict[str, str]:
    values = {"net/ipv6/conf/all/disable_ipv6": "1",    # no IPv6 chatter in the VL queues
              "net/ipv6/conf/default/disable_ipv6": "1",
              "net/ipv4/ip_forward": "1" if node.forwards else "0"}
    if not node.forwards:
        # A TCP responder answers in the class it was asked in (as an IB responder's QP uses the
        # requester's SL): the SYN-ACK and every reply of an accepted connection carry the SYN's TOS.
        values["net/ipv4/tcp_reflect_tos"] = "1"
    if node.forwards and routing == "ecmp":
        values["net/ipv4/fib_multipath_hash_policy"] = "1"   # hash on the L4 5-tuple
    return values


@dataclass
class NamespaceLines:
    node: str
    netns: str
    ip_lines: list[str] = field(default_factory=list)
    tc_lines: list[str] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)


@dataclass
class FabricLines:
    lab: str
    create_lines: list[str]
    namespaces: list[NamespaceLines]

    def netns_names(self) -> list[str]:
        return [n.netns for n in self.namespaces]


def render(plan: LabPlan, layout: Layout | None = None, pids: dict[str, int] | None = None) -> FabricLines:
    """pids: node -> the PID of its running container, whose namespace the node's becomes (unknown
    before the containers start: the line then names the container)."""
    layout = layout or kernel_layout(plan.lab, [n.name for n in plan.nodes])
    netns = {n.name: layout.netns(n.name) for n in plan.nodes}
    create = [f"netns attach {netns[n.name]} {(pids or {}).get(n.name, f'<PID of container {container}>')}"
              if (container := layout.place(n.name).container) else f"netns add {netns[n.name]}"
              for n in plan.nodes]
    create += [f"link add name {a_if} netns {netns[a]} address {plan.node(a).port(a_if).mac} type veth "
               f"peer name {b_if} netns {netns[b]} address {plan.node(b).port(b_if).mac}"
               for a, a_if, b, b_if in plan.links]
    return FabricLines(plan.lab, create, [NamespaceLines(n.name, netns[n.name], ip_lines(plan, n), tc_lines(plan, n),
                                                         sysctls(n, plan.routing)) for n in plan.nodes])


def ip_lines(plan: LabPlan, node: NodePlan) -> list[str]:
    mark = lab_mark(plan.lab)
    lines = [f"link set dev lo alias {mark}:{node.name} up"]
    for p in node.ports:
        lines += [
            # Few segments per packet: HTB then releases bursts of a few MTUs at the link rate, as a
            # real port serialises frames, not 64 KB GSO bursts that no shallow buffer absorbs.
            f"link set dev {p.ifname} alias {mark} gso_max_segs {GSO_SEGS} {'up' if p.up else 'down'}",
            f"addr add {p.addr}/31 dev {p.ifname}",
            neighbour_line(p),
        ]
    lines += [f"rule add from {r.src} lookup {r.table} pref {r.pref}" for r in node.rules]
    lines += [route_line("add", r) for r in node.routes]
    return lines


def tc_lines(plan: LabPlan, node: NodePlan) -> list[str]:
    return [line for p in node.ports for line in render_port(p.ifname, p.rate_bps, p.queues, plan.filters,
                                                             plan.default_vl)]


def neighbour_line(port: PortPlan) -> str:
    """The peer's permanent neighbour entry: no ARP in a lab, at any size."""
    return f"neigh replace {port.peer_addr} lladdr {port.peer_mac} dev {port.ifname} nud permanent"


def route_line(verb: str, route: Route) -> str:
    """`ip route` line (without `ip`): verb add, replace or del."""
    table = "" if route.table == 254 else f" table {route.table}"
    if len(route.nexthops) == 1:
        gw, dev = route.nexthops[0]
        return f"route {verb} {route.dst}{table} via {gw} dev {dev} onlink"
    hops = " ".join(f"nexthop via {gw} dev {dev} onlink" for gw, dev in route.nexthops)
    return f"route {verb} {route.dst}{table} {hops}"
