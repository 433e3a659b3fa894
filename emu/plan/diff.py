"""What differs between two plans of one lab: the installed one (with its runtime changes) and
another, say a freshly made one. One line a difference, for people and for controllers' logs."""
from emu.plan.model import LabPlan


def diff(installed: LabPlan, other: LabPlan) -> list[str]:
    changes = []
    names = [n.name for n in installed.nodes]
    if names != [n.name for n in other.nodes] or installed.links != other.links:
        return ["the plans are of different fabrics (nodes or links differ)"]
    for a, b in zip(installed.nodes, other.nodes):
        old, new = {(r.dst, r.table): r for r in a.routes}, {(r.dst, r.table): r for r in b.routes}
        for key in sorted(old.keys() | new.keys()):
            if old.get(key) != new.get(key):
                changes.append(f"{a.name}: route {key[0]} (table {key[1]}): {_hops(old.get(key))} -> {_hops(new.get(key))}")
        for p, q in zip(a.ports, b.ports):
            if p.up != q.up:
                changes.append(f"{a.name}:{p.ifname}: {'up' if p.up else 'down'} -> {'up' if q.up else 'down'}")
            for x, y in zip(p.queues, q.queues):
                if (x.rate_bps, x.ceil_bps) != (y.rate_bps, y.ceil_bps):
                    changes.append(f"{a.name}:{p.ifname} VL{x.vl}: rate/ceil {x.rate_bps}/{x.ceil_bps} -> "
                                   f"{y.rate_bps}/{y.ceil_bps} bit/s")
    return changes


def _hops(route) -> str:
    return "none" if route is None else " + ".join(f"{gw} dev {dev}" for gw, dev in route.nexthops)
