"""The LabPlan: what a lab is (nodes, ports, addresses, routes, VL queues, flow control), as
plain values that round-trip JSON. Where and how each node is realised is not here: that is the
backend's Layout (emu.backends), kept beside the plan.

Made once by make_plan(topology), kept in the lab's state file, read by the backend, the Lab,
experiments and controllers: nothing downstream recomputes it.
"""
from dataclasses import dataclass, fields, is_dataclass, replace
from functools import cached_property

from emu.errors import EmuError
from emu.qos.flow_control import LOSSY, FlowControl
from emu.plan.queues import VLQueue
from emu.plan.routing import Route, Rule
from emu.plan.addressing import LinkEnd


class NotInPlan(EmuError, KeyError):
    """A node, port or link the plan does not have (a KeyError that prints as one plain line)."""
    __str__ = EmuError.__str__


@dataclass(frozen=True)
class PortPlan(LinkEnd):
    """One end of a link, seen from its node; the queues are this port's egress."""
    rate_bps: int           # emulated (shaped) rate
    real_rate_bps: int
    queues: tuple[VLQueue, ...]
    up: bool = True         # a runtime change may set it down


@dataclass(frozen=True)
class Container:
    """The image a node runs as (a topology node's `image:`), with its command and environment."""
    image: str
    cmd: tuple[str, ...] = ()                   # empty: the image's own
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class NodePlan:
    name: str
    kind: str
    forwards: bool
    ports: tuple[PortPlan, ...]
    routes: tuple[Route, ...]
    rules: tuple[Rule, ...]
    container: Container | None = None

    @property
    def addrs(self) -> list[str]:
        return [p.addr for p in self.ports]

    def port(self, ifname: str) -> PortPlan:
        for p in self.ports:
            if p.ifname == ifname:
                return p
        raise NotInPlan(f"{self.name} has no port {ifname}")

    def port_to(self, peer: str) -> PortPlan:
        for p in self.ports:
            if p.peer == peer:
                return p
        raise NotInPlan(f"{self.name} has no link to {peer}")


@dataclass(frozen=True)
class LabPlan:
    lab: str
    scale: float
    routing: str
    filters: tuple[tuple[int, int], ...]  # (TOS class selector, VL) steered off the default VL
    default_vl: int                      # unmarked traffic and unlisted SLs
    nodes: tuple[NodePlan, ...]
    links: tuple[tuple[str, str, str, str], ...]   # (a, a_ifname, b, b_ifname), topology order
    flow_control: FlowControl = LOSSY

    @cached_property
    def _by_name(self) -> dict[str, NodePlan]:      # kept beside the fields (a plan never changes)
        return {n.name: n for n in self.nodes}

    def node(self, name: str) -> NodePlan:
        try:
            return self._by_name[name]
        except KeyError:
            raise NotInPlan(f"lab {self.lab!r} has no node {name!r}") from None

    def nic_bps(self, name: str) -> int:
        """What a node's NICs can send at once (emulated): the sum of its ports' rates."""
        return sum(p.rate_bps for p in self.node(name).ports)

    def slowest_bps(self, names=None) -> int:
        """The slowest port (emulated rate) of the named nodes, or of the whole lab."""
        nodes = self.nodes if names is None else [self.node(n) for n in names]
        return min(p.rate_bps for n in nodes for p in n.ports)

    def with_node(self, node: NodePlan) -> "LabPlan":
        """This plan with one node replaced (runtime changes record themselves this way)."""
        return replace(self, nodes=tuple(node if n.name == node.name else n for n in self.nodes))

    def to_dict(self) -> dict:
        return _plain(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LabPlan":
        nodes = tuple(
            NodePlan(n["name"], n["kind"], n["forwards"],
                     tuple(PortPlan(**{**p, "queues": tuple(VLQueue(**q) for q in p["queues"])}) for p in n["ports"]),
                     tuple(map(Route.from_dict, n["routes"])),
                     tuple(Rule(**r) for r in n["rules"]),
                     _container(n.get("container")))
            for n in d["nodes"])
        return cls(d["lab"], d["scale"], d["routing"],
                   tuple(tuple(f) for f in d["filters"]), d["default_vl"], nodes,
                   tuple(tuple(link) for link in d["links"]), FlowControl(**d.get("flow_control", {})))


def _container(d: dict | None) -> Container | None:
    if d is None:
        return None
    return Container(d["image"], tuple(d["cmd"]), tuple(tuple(kv) for kv in d["env"]))


_FIELDS: dict[type, tuple[str, ...]] = {}


def _plain(value):
    """`dataclasses.asdict` without its deep copy of every leaf (which took 2.9 s for the whole
    paper cluster's plan, 330,000 routes): the plan's values are immutable, so they are shared,
    and a tuple is rebuilt only when it holds dataclasses (nodes, ports, queues, routes)."""
    if is_dataclass(value):
        names = _FIELDS.get(type(value))
        if names is None:
            names = _FIELDS[type(value)] = tuple(f.name for f in fields(value))
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value) if value and is_dataclass(value[0]) else value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
