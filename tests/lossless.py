"""Lossless settings and the incast lab the lossless tests share."""
from emu.topo import build
from emu.topo.loader import topology_from_dict

# Headroom above the default (20 ms of line rate per port): on a machine slower than this one the
# controller's worst steps are longer, and these tests are about the mechanism, not its sizing
# (scripts/bench_lossless.py measures how much of the default a burst uses).
LOSSLESS = {"mode": "lossless", "xoff": "64K", "xon": "32K", "headroom": "2M"}


def incast_star(name: str, flow_control: dict | None = None, scale: float = 0.001, **nodes):
    """2 hosts and 8 storage nodes on one switch of 32 KiB buffers; nodes: extra keys of nodes
    by name (e.g. c0={"machine": 1})."""
    doc = build("star", name, hosts=2, storage=8, scale=scale, rate="200Gbit", buffer="32KiB").to_dict()
    for node, keys in nodes.items():
        doc["nodes"][node].update(keys)
    return topology_from_dict({**doc, **({"flow_control": flow_control} if flow_control else {})})


# the senders on another machine than their switch: sw0 and the clients on machine 0, the storage nodes on 1
ACROSS = {"sw0": {"machine": 0}, "c0": {"machine": 0}, "c1": {"machine": 0},
          **{f"st{i}": {"machine": 1} for i in range(8)}}


def write_incast(directory, name: str, across: bool, rounds: int) -> tuple:
    """The lossless incast star (its senders across machines if `across`) and a scenario of one
    incast from all 8 at once, without request-to-send, written in `directory`: (topology, scenario)."""
    import yaml
    topology, scenario = directory / "incast-star.yaml", directory / "incast.yaml"
    topology.write_text(yaml.safe_dump(incast_star(name, LOSSLESS, **(ACROSS if across else {})).to_dict()))
    scenario.write_text(yaml.safe_dump({
        "name": "incast", "topology": topology.name, "duration": f"{2 * rounds}s", "sample": "100ms",
        "workloads": [{"name": "incast", "type": "incast", "client": "c0", "senders": [8], "rts": False,
                       "rounds": rounds}]}))
    return topology, scenario
