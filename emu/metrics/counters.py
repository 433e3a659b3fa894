"""Counters of a running lab's nodes, one reading at a time, through the lab's backend (its
observe face: the one parser of per-VL FIFO and interface counters)."""
from concurrent.futures import ThreadPoolExecutor

LINK_KEYS = ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_dropped", "tx_dropped")


def _read(lab, node: str, what):
    reader = lab.backend.reader(node)
    try:
        return what(reader)
    finally:
        reader.close()


def interface_counters(lab, nodes) -> dict[str, dict[str, dict]]:
    """node -> ifname -> {tx_bytes, rx_bytes, tx_packets, rx_packets, tx_dropped, rx_dropped}."""
    def read(node):
        return node, _read(lab, node, lambda r: {ifname: dict(zip(LINK_KEYS, stats)) for _, ifname, stats in r.links()})
    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(read, nodes))


def fabric_drops(lab, hosts: bool = False) -> int:
    """Packets the switches' VL FIFOs of a lab have dropped so far (every egress port); with
    `hosts`, the hosts' own egress queues' too."""
    def read(node):
        return _read(lab, node, lambda r: sum(q[4] for q in r.queues()))
    with ThreadPoolExecutor(4) as pool:
        return sum(pool.map(read, [n.name for n in lab.plan.nodes if n.forwards or hosts]))


def queue_drops(lab, node: str, ifname: str) -> int:
    """Packets dropped by the VL FIFOs of one of a node's ports."""
    return _read(lab, node, lambda r: sum(q[4] for q in r.queues() if q[0] == ifname))


def vl_bytes(lab, node: str, ifname: str) -> dict[int, int]:
    """VL -> bytes sent by that VL's queue on one egress port."""
    return _read(lab, node, lambda r: {q[1]: q[2] for q in r.queues() if q[0] == ifname})
