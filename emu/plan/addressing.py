"""Addressing plan: a pure function of the Topology.

Every link is a point-to-point /31 from 198.18.0.0/15 (the range RFC 2544 sets
aside for benchmarking), so a namespace only ever talks to its direct peers at
layer 2: neighbour entries stay few and are installed statically (the kernel's
neighbour table limit is global across namespaces). A host's addresses are the
addresses of its NICs; a multi-homed node has one per link.
"""
import ipaddress
from dataclasses import dataclass

from emu.topo.model import Link, Topology

NETWORK = ipaddress.IPv4Network("198.18.0.0/15")     # every lab address is in it
BASE = NETWORK.network_address
MAX_LINKS = NETWORK.num_addresses // 2              # one /31 a link


@dataclass(frozen=True)
class LinkEnd:
    """One end of a link as its node sees it: its interface and address, and the other end's."""
    ifname: str
    addr: str
    mac: str
    peer: str
    peer_ifname: str
    peer_addr: str
    peer_mac: str


@dataclass(frozen=True)
class Port(LinkEnd):
    """A LinkEnd of `node`, with the link it ends."""
    node: str
    link: Link


class AddressPlan:
    def __init__(self, topo: Topology):
        if len(topo.links()) > MAX_LINKS:
            raise ValueError(f"{len(topo.links())} links do not fit in {NETWORK} ({MAX_LINKS} at most)")
        self.ports: dict[str, list[Port]] = {n.name: [] for n in topo.nodes()}
        for k, link in enumerate(topo.links()):
            a_addr, b_addr = str(BASE + 2 * k), str(BASE + 2 * k + 1)
            a_mac, b_mac = _mac(k, 0), _mac(k, 1)
            a_if = _ifname(topo, link.a, len(self.ports[link.a]))
            b_if = _ifname(topo, link.b, len(self.ports[link.b]))
            self.ports[link.a].append(Port(a_if, a_addr, a_mac, link.b, b_if, b_addr, b_mac, node=link.a, link=link))
            self.ports[link.b].append(Port(b_if, b_addr, b_mac, link.a, a_if, a_addr, a_mac, node=link.b, link=link))
        self.owner: dict[str, Port] = {p.addr: p for ports in self.ports.values() for p in ports}
        self._towards: dict[tuple[str, str], Port] = {}       # (node, peer) -> its first port there
        for ports in self.ports.values():
            for p in reversed(ports):
                self._towards[(p.node, p.peer)] = p

    def addrs(self, node: str) -> list[str]:
        return [p.addr for p in self.ports[node]]

    def port_to(self, node: str, peer: str) -> Port:
        return self._towards[(node, peer)]


def _ifname(topo: Topology, node: str, index: int) -> str:
    # Names are per namespace, so they need no lab prefix: eth<i> on hosts, swp<i> on switches.
    return f"{'swp' if topo.node(node).forwards else 'eth'}{index}"


def _mac(link_index: int, side: int) -> str:
    # Locally administered, unique per link end: 02:e0:<link index, 3 bytes>:<side>.
    b = link_index.to_bytes(3, "big")
    return f"02:e0:{b[0]:02x}:{b[1]:02x}:{b[2]:02x}:{side:02x}"
