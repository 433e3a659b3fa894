"""emu: a packet-level network emulator for AI training clusters.

The small API:

    from emu import Lab, load_topology
    lab = Lab.up(load_topology("topologies/leaf-spine.yaml"))
    print(lab.node("c0").run(["ip", "-br", "addr"]).stdout)
    lab.down()
"""
from emu.errors import EmuError, TopologyError
from emu.topo import Topology, load_topology

__all__ = ["EmuError", "TopologyError", "Topology", "load_topology", "Lab"]


def __getattr__(name):
    # Lab pulls in the fabric; keep `import emu` light for pure topology work.
    if name == "Lab":
        from emu.lab import Lab
        return Lab
    raise AttributeError(name)
