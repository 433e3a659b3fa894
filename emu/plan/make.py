"""make_plan(topology) -> LabPlan: addressing, routes and VL queues composed once (pure)."""
from emu.plan.model import Container, LabPlan, NodePlan, PortPlan
from emu.plan.queues import BURST_BYTES, port_queues, tos_filters
from emu.plan.routing import compute_routes
from emu.plan.addressing import AddressPlan
from emu.topo.model import Topology

# A host's own egress queue models its NIC's send queue, which on InfiniBand never drops (the HCA
# waits for link credits). Deep enough for several TCP sockets' small-queue allowance (1 MiB each);
# switch ports keep the topology's `buffer`, where drops are what an experiment looks at.
HOST_QUEUE_BYTES = 8 * 2**20


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
        nodes.append(NodePlan(node.name, node.kind, node.forwards, tuple(ports), tuple(table.routes),
                              tuple(table.rules), container_of(node)))
    links = tuple((l.a, addressing.port_to(l.a, l.b).ifname, l.b, addressing.port_to(l.b, l.a).ifname)
                  for l in topo.links())
    return LabPlan(lab, topo.scale, topo.routing, tos_filters(topo.qos),
                   topo.qos.vl_of_sl(0), tuple(nodes), links, fc)


def container_of(node) -> Container | None:
    """A topology node's image, command and environment, if it names an image."""
    if "image" not in node.attrs:
        return None
    return Container(node.attrs["image"], tuple(node.attrs.get("cmd") or ()),
                     tuple(sorted((node.attrs.get("env") or {}).items())))
