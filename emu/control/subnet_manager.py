"""The subnet manager of a statically routed fabric: after a link goes down (or comes back), it
sweeps the fabric and installs routing tables computed over the links that are up.

As on an InfiniBand fabric, nothing reroutes by itself: between the cut and the sweep, traffic
whose route crosses the dead link is lost (the kernel drops it: the route through the link is
gone). The sweep delay is lab time (a real SM sweeps every few seconds; at a lab's scale the
same wall time is a longer time in the emulated fabric, as every time is). The lab's daemon
runs the sweep (Lab.sweep, Lab.link_event), so it installs over the link states its single
writer holds.
"""
from emu.plan.diff import diff
from emu.plan.routing import compute_routes
from emu.plan.addressing import AddressPlan

DEFAULT_SWEEP_DELAY = 1.0


def down_links(lab) -> frozenset:
    """The links the kept plan says are down (either end)."""
    return frozenset(frozenset((n.name, p.peer)) for n in lab.plan.nodes for p in n.ports if not p.up)


def sweep(lab) -> list[str]:
    """Install switch tables computed over the links that are up; returns what changed."""
    topo = lab.topology
    with lab.batch():       # one sweep at a time, over the link states as they are while it installs
        tables = compute_routes(topo, AddressPlan(topo), down=down_links(lab))
        before = lab.plan
        for node in before.nodes:
            if node.forwards and tuple(tables[node.name].routes) != node.routes:
                lab.replace_routes(node.name, tables[node.name].routes)
        return diff(before, lab.plan)
