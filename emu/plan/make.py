"""make_plan(topology) -> LabPlan: addressing, routes, VL queues and sysctls composed once (pure)."""
from emu.plan.model import LabPlan, NodePlan, PortPlan
from emu.plan.queues import BURST_BYTES, GSO_SEGS, port_queues, tos_filters
from emu.plan.routing import compute_routes
from emu.plan.addressing import AddressPlan
from emu.topo.model import Topology

MARK_PREFIX = "emu:"
# A host's own egress queue models its NIC's send queue, which on InfiniBand never drops (the HCA
# waits for link credits). Deep enough for several TCP sockets' small-queue allowance (1 MiB each);
# switch ports keep the topology's `buffer`, where drops are what an experiment looks at.
HOST_QUEUE_BYTES = 8 * 2**20


def lab_mark(lab: str) -> str:
    """The alias every interface of lab `lab` carries; cleanup trusts it only with the name."""
    return f"{MARK_PREFIX}{lab}"


def netns_name(lab: str, node: str) -> str:
    return f"emu-{lab}-{node}"


def make_plan(topo: Topology, lab: str | None = None) -> LabPlan:
    lab = lab or topo.name
    addressing = AddressPlan(topo)
    routes = compute_routes(topo, addressing)
    fc = topo.flow_control
    nodes = []
    for node in topo.nodes():
        ports = []
        rates = [topo.emulated_rate(p.link) for p in addressing.ports[node.name]]
        for p, rate in zip(addressing.ports[node.name], rates):
            queue = p.link.buffer_bytes if node.forwards else max(p.link.buffer_bytes, HOST_QUEUE_BYTES)
            if node.forwards and fc.lossless:       # every other port's allowance (XOFF and headroom)
                queue = max(queue, sum(fc.allowance(r, BURST_BYTES) for r in rates) - fc.allowance(rate, BURST_BYTES))
            ports.append(PortPlan(p.ifname, p.addr, p.mac, p.peer, p.peer_ifname, p.peer_addr, p.peer_mac,
                                  rate, p.link.rate_bps, port_queues(rate, queue, topo.qos, gate=fc.lossless)))
        table = routes[node.name]
        nodes.append(NodePlan(node.name, node.kind, node.forwards, netns_name(lab, node.name), tuple(ports),
                              tuple(table.routes), tuple(table.rules), _sysctls(node.forwards, topo.routing)))
    links = tuple((l.a, addressing.port_to(l.a, l.b).ifname, l.b, addressing.port_to(l.b, l.a).ifname)
                  for l in topo.links())
    return LabPlan(lab, topo.scale, topo.routing, lab_mark(lab), GSO_SEGS, tos_filters(topo.qos),
                   topo.qos.vl_of_sl(0), tuple(nodes), links, fc)


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
