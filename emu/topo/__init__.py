"""What a lab is: the typed Topology, its builders and its YAML form."""
from emu.topo.builders import build
from emu.topo.loader import load_topology, topology_from_dict
from emu.topo.model import Link, Node, Topology

__all__ = ["Topology", "Node", "Link", "build", "load_topology", "topology_from_dict"]
