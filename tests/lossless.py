"""Lossless settings and the incast lab the lossless tests share."""
from emu.topo import build
from emu.topo.loader import topology_from_dict

# Headroom above the default (20 ms of line rate per port): on a machine slower than this one the
# controller's worst steps are longer, and these tests are about the mechanism, not its sizing
# (scripts/bench_lossless.py measures how much of the default a burst uses).
LOSSLESS = {"mode": "lossless", "xoff": "64K", "xon": "32K", "headroom": "2M"}


def incast_star(name: str, flow_control: dict | None = None, **nodes):
    """2 hosts and 8 storage nodes on one switch of 32 KiB buffers; nodes: extra keys of nodes
    by name (e.g. c0={"machine": 1})."""
    doc = build("star", name, hosts=2, storage=8, scale=0.001, rate="200Gbit", buffer="32KiB").to_dict()
    for node, keys in nodes.items():
        doc["nodes"][node].update(keys)
    return topology_from_dict({**doc, **({"flow_control": flow_control} if flow_control else {})})
