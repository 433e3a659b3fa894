"""Kernel counters of lab nodes, one reading at a time, through the sampler's netlink reader
(the one parser of per-VL FIFO and interface counters)."""
from concurrent.futures import ThreadPoolExecutor

from emu.metrics.sampler import NamespaceReader

LINK_KEYS = ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_dropped", "tx_dropped")


def _read(name: str, what):
    reader = NamespaceReader(name)
    try:
        return what(reader)
    finally:
        reader.close()


def interface_counters(names) -> dict[str, dict[str, dict]]:
    """netns -> ifname -> {tx_bytes, rx_bytes, tx_packets, rx_packets, tx_dropped, rx_dropped}."""
    def read(name):
        return name, _read(name, lambda r: {ifname: dict(zip(LINK_KEYS, stats)) for _, ifname, stats in r.links()})
    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(read, names))


def fabric_drops(plan) -> int:
    """Packets the switches' VL FIFOs of a lab have dropped so far (every egress port)."""
    def read(node):
        return _read(node.netns, lambda r: sum(q[4] for q in r.queues()))
    with ThreadPoolExecutor(4) as pool:
        return sum(pool.map(read, [n for n in plan.nodes if n.forwards]))


def queue_drops(name: str, ifname: str) -> int:
    """Packets dropped by the VL FIFOs of one interface in namespace `name`."""
    return _read(name, lambda r: sum(q[4] for q in r.queues() if q[0] == ifname))


def vl_bytes(name: str, ifname: str) -> dict[int, int]:
    """VL -> bytes sent by that VL's queue on one egress port."""
    return _read(name, lambda r: {q[1]: q[2] for q in r.queues() if q[0] == ifname})
