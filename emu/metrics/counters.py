"""Kernel counters of lab nodes, read over netlink from sockets opened inside each namespace."""
from concurrent.futures import ThreadPoolExecutor

from pyroute2 import IPRoute

from emu.fabric import netns


def interface_counters(names) -> dict[str, dict[str, dict]]:
    """netns -> ifname -> {tx_bytes, rx_bytes, tx_packets, rx_packets, ...}."""
    def read(name):
        with netns.inside(name), IPRoute() as ipr:
            return name, {l.get_attr("IFLA_IFNAME"): dict(l.get_attr("IFLA_STATS64") or {})
                          for l in ipr.get_links()}
    # netns.inside() switches the calling thread only, so reading in threads is safe.
    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(read, names))


def queue_drops(name: str, ifname: str) -> int:
    """Packets dropped by the VL FIFOs (bfifo leaves) of one interface in namespace `name`."""
    with netns.inside(name), IPRoute() as ipr:
        index = ipr.link_lookup(ifname=ifname)[0]
        return sum(q.get_attr("TCA_STATS")["drop"] for q in ipr.get_qdiscs(index)
                   if q.get_attr("TCA_KIND") == "bfifo")


def vl_bytes(name: str, ifname: str) -> dict[int, int]:
    """VL -> bytes sent by that VL's queue on one egress port (the HTB class of each VL)."""
    from emu.qos.htb import VL_CLASS_BASE
    with netns.inside(name), IPRoute() as ipr:
        index = ipr.link_lookup(ifname=ifname)[0]
        found = {}
        for c in ipr.get_classes(index):
            minor = c["handle"] & 0xFFFF
            if minor >= VL_CLASS_BASE:
                found[minor - VL_CLASS_BASE] = c.get_attr("TCA_STATS")["bytes"]
        return found
