"""A LabPlan, laid out in namespaces, as kernel batch lines (pure, testable without root).

One root `ip -batch` makes the namespaces and veth pairs; then per namespace one
`ip -batch` (ownership marks, addresses, static neighbours, rules, routes) and one
`tc -batch` (VL queues), plus the sysctls written in-process. The kernel's own facts live
here, not in the plan: the ownership mark, the GSO burst, the sysctls.

A lab over several machines (Layout.machines) has machine namespaces too, made and set up
before the nodes': where machines are emulated on this one, each machine is a namespace with an
underlay port on a bridge (the underlay namespace's), and a link whose ends are on two machines
is a VXLAN tunnel instead of a veth pair. Each end is made in its machine's namespace, over its
underlay port, and moved into its node's at once (it keeps its UDP socket where it was made);
from there on it is a port like any other: the same address, neighbour, HTB and VL queues.
"""
from dataclasses import dataclass, field, replace

from emu.backends import LOCAL, Layout, Machine, Place, machine_name
from emu.plan import LabPlan, NodePlan, PortPlan
from emu.plan.queues import GSO_SEGS, at_rate, render_port, root_class_line, vl_class_line
from emu.plan.routing import Route

MARK_PREFIX = "emu:"
UNDERLAY_MTU = 1550         # a tunnel's 50 bytes of headers over it leave the emulated 1500 whole
UNDERLAY_PORT = Machine.device      # an emulated machine's port on the underlay
VXLAN_PORT = 4789


def lab_mark(lab: str) -> str:
    """The alias every interface of lab `lab` carries; cleanup trusts it only with the name."""
    return f"{MARK_PREFIX}{lab}"


def netns_name(lab: str, node: str) -> str:
    """The namespace the kernel backend gives node `node` of lab `lab`."""
    return f"emu-{lab}-{node}"


def machine_netns(lab: str, machine: str) -> str:
    """The namespace standing for emulated machine `machine` of lab `lab` ('@' is in no node's name)."""
    return netns_name(lab, f"@{machine}")


def underlay_netns(lab: str) -> str:
    """The namespace of the bridge that joins a lab's emulated machines."""
    return netns_name(lab, "@underlay")


def underlay_address(index: int) -> str:
    """Emulated machine `index`'s address on the underlay (a /16 of its own namespaces: no lab address clashes)."""
    return f"172.31.{index // 250}.{index % 250 + 1}"


def kernel_layout(lab: str, nodes: list[str], containers=(), machines: dict[str, int] | None = None) -> Layout:
    """Every node in a namespace of its own on this machine; a node in `containers` in the
    namespace of a container named as its namespace is (emu.fabric.containers). With `machines`
    (node -> machine index, more than one machine), each node on its emulated machine."""
    containers = set(containers)
    count = 1 + max(machines.values(), default=0) if machines else 1
    on = (lambda n: machine_name(machines[n])) if count > 1 else (lambda n: LOCAL)
    return Layout("kernel", lab,
                  {n: Place(on(n), netns_name(lab, n), netns_name(lab, n) if n in containers else None) for n in nodes},
                  tuple(Machine(machine_name(k), machine_netns(lab, machine_name(k)), underlay_address(k))
                        for k in range(count)) if count > 1 else ())


NO_IPV6 = {"net/ipv6/conf/all/disable_ipv6": "1",     # no IPv6 chatter in the VL queues (nor the underlay)
           "net/ipv6/conf/default/disable_ipv6": "1"}


def kernel_forwards(layout: Layout) -> bool:
    """Whether the kernel's routing forwards between a switch's ports; not where the backend
    forwards in a switch of its own (openflow: an OVS bridge reads the ports, and the kernel,
    which sees every packet too, must drop what is not its own)."""
    return layout.backend == "kernel"


def sysctls(node: NodePlan, routing: str, forwards: bool = True) -> dict[str, str]:
    values = {**NO_IPV6, "net/ipv4/ip_forward": "1" if node.forwards and forwards else "0"}
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
    machines: list[NamespaceLines] = field(default_factory=list)    # set up before the nodes' (tunnels)

    def netns_names(self) -> list[str]:
        return [n.netns for n in self.machines + self.namespaces]


def render(plan: LabPlan, layout: Layout | None = None, pids: dict[str, int] | None = None) -> FabricLines:
    """The whole lab's lines, as one process builds it: for a lab over machines, the emulated
    machines and their underlay, then every machine's part (a tunnel end's lines run in its
    machine's namespace after the machine's own). pids: node -> the PID of its running container,
    whose namespace the node's becomes (unknown before the containers start: the line then names
    the container)."""
    layout = layout or kernel_layout(plan.lab, [n.name for n in plan.nodes])
    if not layout.machines:
        return part(plan, layout, None, pids)
    parts = [emulated_machines(plan.lab, layout)] if layout.cluster is None else []
    parts += [part(plan, layout, m.name, pids) for m in layout.machines]
    machines: dict[str, NamespaceLines] = {}
    for m in (m for p in parts for m in p.machines):     # one batch a machine: its set-up, then its tunnels
        machines.setdefault(m.node, NamespaceLines(m.node, m.netns, sysctls=m.sysctls)).ip_lines.extend(m.ip_lines)
    return FabricLines(plan.lab, [line for p in parts for line in p.create_lines],
                       [ns for p in parts for ns in p.namespaces], list(machines.values()))


def part(plan: LabPlan, layout: Layout, machine: str | None, pids: dict[str, int] | None = None) -> FabricLines:
    """Machine `machine`'s part of the lab (every node's if None), self-contained as its worker
    builds it: its nodes' namespaces, the veths among them, its ends of the tunnels to other
    machines (run in its machine's namespace, which exists: emulated_machines()), its nodes' batches."""
    netns = {n.name: layout.netns(n.name) for n in plan.nodes}
    on = {n.name: layout.place(n.name).machine for n in plan.nodes}
    nodes = [n for n in plan.nodes if machine in (None, on[n.name])]
    create = [f"netns attach {netns[n.name]} {(pids or {}).get(n.name, f'<PID of container {container}>')}"
              if (container := layout.place(n.name).container) else f"netns add {netns[n.name]}"
              for n in nodes]
    create += [f"link add name {a_if} netns {netns[a]} address {plan.node(a).port(a_if).mac} type veth "
               f"peer name {b_if} netns {netns[b]} address {plan.node(b).port(b_if).mac}"
               for a, a_if, b, b_if in plan.links if not layout.crosses(a, b) and machine in (None, on[a])]
    forwards = kernel_forwards(layout)
    return FabricLines(plan.lab, create, [NamespaceLines(n.name, netns[n.name], ip_lines(plan, n, forwards),
                                                         tc_lines(plan, n, forwards), sysctls(n, plan.routing, forwards))
                                          for n in nodes],
                       tunnel_ends(plan, layout, netns, machine))


def emulated_machines(lab: str, layout: Layout) -> FabricLines:
    """The machines a lab spans, emulated on this one: a namespace each, its underlay port (marked,
    addressed, with a permanent neighbour entry for every other machine: a lab's first packets
    to a machine must not wait on ARP, whose queue a burst of new connections overflows) on the
    bridge in the underlay's namespace. What a real machine has already."""
    mark, bridge = lab_mark(lab), underlay_netns(lab)
    mac = {m.name: f"02:ee:00:00:{i // 256:02x}:{i % 256:02x}" for i, m in enumerate(layout.machines)}
    create = [f"netns add {ns}" for ns in [bridge] + [m.netns for m in layout.machines]]
    create += [f"link add name {UNDERLAY_PORT} netns {m.netns} address {mac[m.name]} mtu {UNDERLAY_MTU} type veth "
               f"peer name {m.name} netns {bridge} mtu {UNDERLAY_MTU}" for m in layout.machines]
    underlay = NamespaceLines("@underlay", bridge, ["link add name br0 type bridge", f"link set dev br0 alias {mark}:@underlay up"]
                              + [f"link set dev {m.name} master br0 up" for m in layout.machines], [], dict(NO_IPV6))
    return FabricLines(lab, create, [], [underlay] + [
        NamespaceLines(f"@{m.name}", m.netns, [f"link set dev lo alias {mark}:@{m.name} up",
                                               f"link set dev {UNDERLAY_PORT} alias {mark} up",
                                               f"addr add {m.underlay}/16 dev {UNDERLAY_PORT}"]
                       + [f"neigh replace {o.underlay} lladdr {mac[o.name]} dev {UNDERLAY_PORT} nud permanent"
                          for o in layout.machines if o != m], [], dict(NO_IPV6))
        for m in layout.machines])


def tunnel_ends(plan: LabPlan, layout: Layout, netns: dict[str, str], machine: str | None) -> list[NamespaceLines]:
    """Each machine's (only `machine`'s, if given) ends of the links to other machines, made in its
    namespace (a real machine's: its worker's own) over its underlay device and moved into their nodes' (VNI: the link's place in the plan, from 1)."""
    underlay = {m.name: m.underlay for m in layout.machines}
    out = []
    for m in layout.machines:
        if machine not in (None, m.name):
            continue
        lines = []
        for vni, (a, a_if, b, b_if) in enumerate(plan.links, 1):
            ends = {layout.place(a).machine: (a, a_if, b), layout.place(b).machine: (b, b_if, a)}
            if layout.crosses(a, b) and m.name in ends:
                node, ifname, peer = ends[m.name]
                lines.append(f"link add name {ifname} netns {netns[node]} address {plan.node(node).port(ifname).mac} "
                             f"type vxlan id {vni} local {m.underlay} remote {underlay[layout.place(peer).machine]} "
                             f"dstport {VXLAN_PORT} dev {m.device}")
        out.append(NamespaceLines(f"@{m.name}", m.netns, lines))
    return out


def ip_lines(plan: LabPlan, node: NodePlan, forwards: bool = True) -> list[str]:
    """forwards: False where a switch's routes are not the kernel's (kernel_forwards)."""
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
    if forwards or not node.forwards:
        lines += [f"rule add from {r.src} lookup {r.table} pref {r.pref}" for r in node.rules]
        lines += [route_line("add", r) for r in node.routes]
    return lines


def tc_lines(plan: LabPlan, node: NodePlan, forwards: bool = True) -> list[str]:
    """forwards: False where a switch's packets come from its own bridge (kernel_forwards)."""
    return [line for p in node.ports for line in render_port(p.ifname, p.rate_bps, p.queues, plan.filters,
                                                             plan.default_vl, node.forwards and not forwards)]


def neighbour_line(port: PortPlan) -> str:
    """The peer's permanent neighbour entry: no ARP in a lab, at any size."""
    return f"neigh replace {port.peer_addr} lladdr {port.peer_mac} dev {port.ifname} nud permanent"


def route_line(verb: str, route: Route) -> str:
    """`ip route` line (without `ip`): verb add or replace, or del (also done when the kernel has
    removed the route already: a link down flushes the routes through it)."""
    table = "" if route.table == 254 else f" table {route.table}"
    if verb == "del":
        return f"route flush exact {route.dst}{table}"
    if len(route.nexthops) == 1:
        gw, dev = route.nexthops[0]
        return f"route {verb} {route.dst}{table} via {gw} dev {dev} onlink"
    hops = " ".join(f"nexthop via {gw} dev {dev} onlink" for gw, dev in route.nexthops)
    return f"route {verb} {route.dst}{table} {hops}"


# -- changes to a running lab -----------------------------------------------------------

# Runtime changes, as (tool, batch lines) for the node's namespace; the backend runs them where
# the node is (emu.fabric.kernel: in this process, or by the node's machine's worker).

def routes_change(old: tuple, new: tuple) -> tuple[str, list[str]]:
    """Install `new` as a node's routes: replace what changed, delete what is gone."""
    keep = {(r.dst, r.table) for r in new}
    lines = [route_line("del", r) for r in old if (r.dst, r.table) not in keep]
    return "ip", lines + [route_line("replace", r) for r in new if r not in set(old)]


def link_change(node: NodePlan, port: PortPlan, up: bool) -> tuple[str, list[str]]:
    """One end of a link up or down. Down makes the kernel flush the routes and the (permanent)
    neighbour entry through it; up puts the planned ones back."""
    lines = [f"link set dev {port.ifname} {'up' if up else 'down'}"]
    if up:
        lines.append(neighbour_line(port))
        lines += [route_line("replace", r) for r in node.routes
                  if any(dev == port.ifname for _, dev in r.nexthops)]
    return "ip", lines


def vl_rate_change(port: PortPlan, vl: int, rate_bps: int, ceil_bps: int) -> tuple[str, list[str]]:
    """Change one VL class's guaranteed rate and ceiling on a port (controllers)."""
    q = next(q for q in port.queues if q.vl == vl)
    return "tc", [vl_class_line("change", port.ifname, replace(q, rate_bps=rate_bps, ceil_bps=ceil_bps))]


def port_rate_change(port: PortPlan, rate_bps: int) -> tuple[str, list[str]]:
    """Run a port at `rate_bps` (a degraded link, or back to its planned rate)."""
    queues = at_rate(port.queues, rate_bps)
    return "tc", [root_class_line("change", port.ifname, rate_bps, queues)] + [
        vl_class_line("change", port.ifname, q) for q in queues]
