"""An OpenFlow app of your own: the controller places each new flow on an equal-cost next hop.

Where the lab's routing gives a destination one path (static d-mod-k: every flow to a host
takes the same spine), this app lets each switch spread flows over all the shortest paths:
destinations with several equal-cost next hops get no entry; the first packet of each flow
(5-tuple) comes to the controller, which pins the flow to the next hop that has the fewest flows
pinned so far and sends the packet on. A pinned flow's entry ends 10 s after its last packet.

    backend: {name: openflow, app: per_flow_ecmp.py}      # in a topology (path beside it)
    emu up examples/openflow/leaf-spine.yaml

Kept simple on purpose: the candidates are computed once, over every link (after a link goes
down, flows pinned to it wait for their idle timeout; the default FabricApp's sweep still
installs the single-path destinations anew), and "fewest flows" counts flows, not bytes.
"""
from collections import Counter

from os_ken.lib.packet import ipv4, packet, tcp, udp

from emu.fabric.openflow import flows
from emu.fabric.openflow.app import ETH_IP, FabricApp
from emu.plan.addressing import AddressPlan
from emu.plan.routing import compute_routes

PINNED = 300        # above every table entry (emu.fabric.openflow.flows)
IDLE_SECONDS = 10


class PerFlowECMP(FabricApp):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        topo, plan = self.lab_state()
        ecmp = compute_routes(topo, AddressPlan(topo), mode="ecmp")
        # switch -> destination address -> its equal-cost next hops (two or more)
        self.spread = {s: {r.dst.split("/")[0]: flows.hops(plan.node(s), r.nexthops)
                           for r in ecmp[s].routes if len(r.nexthops) > 1}
                       for s in self.routes}
        self.pinned = Counter()         # (switch, port) -> flows pinned to it

    def table(self, switch, routes):
        return [e for e in super().table(switch, routes) if e.dst[0] not in self.spread[switch]]

    def connected(self, switch, dp):
        parser, ofp = dp.ofproto_parser, dp.ofproto
        self.add_flow(dp, 0, parser.OFPMatch(), [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)])

    def packet_in(self, switch, dp, msg):
        pkt = packet.Packet(msg.data)
        ip = pkt.get_protocol(ipv4.ipv4)
        hops = self.spread[switch].get(ip.dst) if ip else None
        if not hops:
            return          # nowhere to go: dropped, as a router without a route drops it
        l4 = pkt.get_protocol(tcp.tcp) or pkt.get_protocol(udp.udp)
        hop = min(hops, key=lambda h: (self.pinned[(switch, h.port)], h.port))
        self.pinned[(switch, hop.port)] += 1
        parser = dp.ofproto_parser
        fields = {"eth_type": ETH_IP, "ipv4_src": ip.src, "ipv4_dst": ip.dst, "ip_proto": ip.proto}
        if isinstance(l4, tcp.tcp):
            fields.update(tcp_src=l4.src_port, tcp_dst=l4.dst_port)
        elif isinstance(l4, udp.udp):
            fields.update(udp_src=l4.src_port, udp_dst=l4.dst_port)
        actions = self.hop_actions(dp, hop)
        self.add_flow(dp, PINNED, parser.OFPMatch(**fields), actions, idle_timeout=IDLE_SECONDS)
        dp.send_msg(parser.OFPPacketOut(dp, buffer_id=dp.ofproto.OFP_NO_BUFFER, in_port=msg.match["in_port"],
                                        actions=actions, data=msg.data))
