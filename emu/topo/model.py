"""The typed Topology: the one source of truth a lab is built from.

A networkx graph holds nodes (with their kind and attributes) and links (rate,
buffer); the lab-wide settings (scale, routing mode, QoS policy) sit beside it.
Every check that can refuse input lives here, so builders, the YAML loader and
Python users all get the same errors before anything is created.
"""
import math
import re
from dataclasses import dataclass, field

import networkx as nx

from cluster import hardware
from emu.errors import TopologyError
from emu.kinds import KINDS
from emu.qos import DEFAULT_QOS, QosPolicy
from emu.qos.flow_control import LOSSY, FlowControl
from emu.units import format_rate, parse_rate, parse_size

NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]*")     # whole names only (fullmatch): no trailing newline
MAX_LAB_NAME = 12       # lab names prefix namespaces and state files; keep them short
MAX_NODE_NAME = 24
# What one lab may hold. Nodes: each is a namespace with its processes and queues (4096 is
# twice the Fire-Flyer 2 network's ~1,600 hosts and switches). Ports: veths in one namespace,
# each with 14 tc objects. Links: every link is a /31 of 198.18.0.0/15, which holds 65,536.
MAX_NODES = 4096
MAX_PORTS = 1024
MAX_LINKS = 2**16
# Emulated (scaled) link rates: below 100 Kbit a full frame takes over 0.12 s on the wire and
# TCP's timers fight the link; tc shapes up to 10 Tbit. VL buffers hold at least two full
# frames (4 KiB) and at most 1 GiB (tc's limit is 4 GiB, memory runs out first).
MIN_RATE, MAX_RATE = 100_000, 10 * 10**12
MIN_BUFFER, MAX_BUFFER = 4096, 2**30
DEFAULT_RATE = "200Gbit"    # the paper's NIC and switch port speed
DEFAULT_BUFFER = "128KiB"
ADAPTIVE_PERIOD = 0.5


@dataclass(frozen=True)
class Node:
    name: str
    kind: str
    attrs: dict = field(default_factory=dict)

    @property
    def forwards(self) -> bool:
        return KINDS[self.kind].forwards


@dataclass(frozen=True)
class Link:
    a: str
    b: str
    rate_bps: int           # the real rate; the lab shapes to rate_bps * scale
    buffer_bytes: int       # FIFO per VL queue on each egress port


def natural_key(name: str):
    """Sort 'leaf10' after 'leaf9'."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


# What a topology may ask of routing; the plan stage's engines (emu.plan.routing.ENGINES) pick by these.
ROUTING_MODES = ("static", "minhop", "ecmp", "adaptive")
BACKEND_OPTIONS = {"kernel": (), "openflow": ("app",)}   # what makes a lab's fabric real (emu.backends), its options


class Topology:
    def __init__(self, name: str, *, scale: float = 1.0, routing: str = "static",
                 qos: QosPolicy = DEFAULT_QOS, rate=DEFAULT_RATE, buffer=DEFAULT_BUFFER,
                 flow_control: FlowControl = LOSSY, routing_period: float | None = None,
                 backend: str = "kernel", backend_options: dict | None = None, source: str = "<topology>"):
        self.source = source
        self.name = self._check_name(name, "name", MAX_LAB_NAME)
        self.scale = _scale(scale, source)
        if routing not in ROUTING_MODES:
            raise TopologyError(source, "routing.mode", f"unknown mode {routing!r} (one of {', '.join(ROUTING_MODES)})")
        self.routing = routing
        if routing_period is not None and routing != "adaptive":
            raise TopologyError(source, "routing.period", "applies to adaptive routing only")
        if routing_period is not None and not 0.01 <= routing_period <= 10:
            raise TopologyError(source, "routing.period", f"must be between 10ms and 10s, got {routing_period:g} s")
        # adaptive routing: how often each switch decides (default 0.5 s: five 100 ms samples)
        self.routing_period = routing_period or ADAPTIVE_PERIOD
        self.qos = qos
        self.flow_control = flow_control
        if backend not in BACKEND_OPTIONS:
            raise TopologyError(source, "backend", f"unknown backend {backend!r} (one of {', '.join(BACKEND_OPTIONS)})")
        for option in backend_options or {}:
            if option not in BACKEND_OPTIONS[backend]:
                raise TopologyError(source, f"backend.{option}", f"not an option of the {backend} backend (its options: "
                                                                 f"{', '.join(BACKEND_OPTIONS[backend]) or 'none'})")
        self.backend, self.backend_options = backend, dict(backend_options or {})
        self.default_rate = self._rate(rate, "defaults.rate")
        self.default_buffer = self._size(buffer, "defaults.buffer")
        self.graph = nx.Graph()
        self._links: list[Link] = []

    # -- building -------------------------------------------------------------------

    def add_node(self, name: str, kind: str, *, key: str | None = None, **attrs) -> Node:
        key = key or f"nodes.{name}"
        self._check_name(name, key, MAX_NODE_NAME)
        if self.graph.number_of_nodes() >= MAX_NODES:
            raise TopologyError(self.source, key, f"a lab holds at most {MAX_NODES} nodes")
        if name in self.graph:
            raise TopologyError(self.source, key, f"duplicate node {name!r}")
        if kind not in KINDS:
            raise TopologyError(self.source, f"{key}.kind", f"unknown kind {kind!r} (one of {', '.join(sorted(KINDS))})")
        spec = KINDS[kind].attrs
        values = {}
        for attr, value in attrs.items():
            if attr not in spec:
                allowed = ", ".join(["kind", *spec]) or "kind"
                raise TopologyError(self.source, f"{key}.{attr}", f"unknown key for a {kind} node (allowed: {allowed})")
            try:
                values[attr] = spec[attr][0](value)
            except ValueError as e:
                raise TopologyError(self.source, f"{key}.{attr}", str(e)) from None
        for attr, (_, default) in spec.items():
            if default is not None:
                values.setdefault(attr, default)
        for attr in ("cmd", "env"):
            if attr in values and "image" not in values:
                raise TopologyError(self.source, f"{key}.{attr}", "a container's: give the node an image too")
        node = Node(name, kind, values)
        self.graph.add_node(name, node=node)
        return node

    def add_link(self, a: str, b: str, *, rate=None, buffer=None, key: str | None = None) -> Link:
        key = key or f"links[{len(self._links)}]"
        for end in (a, b):
            if end not in self.graph:
                raise TopologyError(self.source, f"{key}.endpoints", f"unknown node {end!r}")
        if a == b:
            raise TopologyError(self.source, f"{key}.endpoints", f"a link needs two different nodes, got {a!r} twice")
        if self.graph.has_edge(a, b):
            raise TopologyError(self.source, f"{key}.endpoints", f"duplicate link {a} <-> {b}")
        if len(self._links) >= MAX_LINKS:
            raise TopologyError(self.source, key, f"a lab holds at most {MAX_LINKS} links "
                                                  f"(one /31 each in 198.18.0.0/15)")
        for end in (a, b):
            if self.graph.degree(end) >= MAX_PORTS:
                raise TopologyError(self.source, f"{key}.endpoints", f"{end} would have more than {MAX_PORTS} ports")
        link = Link(a, b,
                    self._rate(rate, f"{key}.rate") if rate is not None else self.default_rate,
                    self._size(buffer, f"{key}.buffer") if buffer is not None else self.default_buffer)
        self.graph.add_edge(a, b, link=link)
        self._links.append(link)
        return link

    def validate(self) -> "Topology":
        """Whole-graph checks, once all nodes and links are in."""
        if self.graph.number_of_nodes() < 2:
            raise TopologyError(self.source, "nodes", "a lab needs at least two nodes")
        if not nx.is_connected(self.graph):
            parts = sorted((sorted(c, key=natural_key) for c in nx.connected_components(self.graph)), key=len)
            raise TopologyError(self.source, "links", f"graph is disconnected: {', '.join(parts[0][:5])} cannot reach the rest")
        for node in self.nodes():
            if node.forwards:
                continue
            for peer in self.graph[node.name]:
                if not self.node(peer).forwards:
                    raise TopologyError(self.source, "links",
                                        f"{node.name} <-> {peer}: hosts connect to switches, not to each other")
        for node in self.hosts():
            if self.graph.degree(node.name) % self.ports_per_nic(node.name):
                raise TopologyError(self.source, f"nodes.{node.name}.ports_per_nic",
                                    f"{node.name} has {self.graph.degree(node.name)} ports, not a whole number of "
                                    f"NICs of {self.ports_per_nic(node.name)}")
        switches = [n.name for n in self.switches()]
        planes = list(nx.connected_components(self.graph.subgraph(switches))) if switches else []
        hosts = {n.name for n in self.hosts()}
        # several fabrics (planes) are fine when each reaches every host: hosts do not forward
        for plane in planes if len(planes) > 1 else []:
            if {h for s in plane for h in self.graph[s]} & hosts != hosts:
                raise TopologyError(self.source, "links", "the switches must form one connected fabric, or planes "
                                                          "that each reach every host (hosts do not forward)")
        return self

    # -- reading --------------------------------------------------------------------

    def node(self, name: str) -> Node:
        return self.graph.nodes[name]["node"]

    def nodes(self) -> list[Node]:
        return [data["node"] for _, data in self.graph.nodes(data=True)]

    def hosts(self) -> list[Node]:
        return [n for n in self.nodes() if not n.forwards]

    def switches(self) -> list[Node]:
        return [n for n in self.nodes() if n.forwards]

    def links(self) -> list[Link]:
        return list(self._links)

    def link(self, a: str, b: str) -> Link:
        return self.graph.edges[a, b]["link"]

    def ports_per_nic(self, name: str) -> int:
        """How many of a host's ports (in order) make one NIC: 2 where each NIC is dual-homed."""
        return self.node(name).attrs.get("ports_per_nic") or 1

    def nics(self, name: str) -> int:
        return self.graph.degree(name) // self.ports_per_nic(name)

    def hardware(self, name: str):
        """A compute node's hardware profile (cluster.hardware): the one it names, else the default."""
        return hardware.load(self.node(name).attrs.get("hardware") or hardware.DEFAULT)

    def emulated_rate(self, link: Link) -> int:
        return max(1, int(link.rate_bps * self.scale))

    def to_dict(self) -> dict:
        """The explicit YAML form (nodes + links); topology_from_dict() reads it back."""
        return {
            "name": self.name, "scale": self.scale,
            "routing": {"mode": self.routing, **({"period": self.routing_period} if self.routing == "adaptive" else {})},
            "defaults": {"rate": f"{self.default_rate}bit", "buffer": self.default_buffer},
            "qos": self.qos.to_dict(), "flow_control": self.flow_control.to_dict(),
            **({"backend": {"name": self.backend, **self.backend_options}} if self.backend != "kernel" else {}),
            "nodes": {n.name: {"kind": n.kind, **n.attrs} for n in self.nodes()},
            "links": [{"endpoints": [l.a, l.b], "rate": f"{l.rate_bps}bit", "buffer": l.buffer_bytes}
                      for l in self._links],
        }

    def summary(self) -> str:
        kinds = {}
        for n in self.nodes():
            kinds[n.kind] = kinds.get(n.kind, 0) + 1
        parts = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        return (f"{self.name}: {parts}, {len(self._links)} links, scale {self.scale:g}, routing {self.routing}, "
                f"{self.flow_control.mode}")

    # -- helpers --------------------------------------------------------------------

    def _check_name(self, name, key, limit):
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise TopologyError(self.source, key, f"bad name {name!r}: use lowercase letters, digits and '-'")
        if len(name) > limit:
            raise TopologyError(self.source, key, f"name {name!r} is too long ({len(name)} > {limit} characters)")
        return name

    def _rate(self, value, key):
        """A real link rate whose emulated rate (times scale) tc can shape and TCP can use."""
        try:
            bps = parse_rate(value)
        except ValueError as e:
            raise TopologyError(self.source, key, str(e)) from None
        emulated = bps * self.scale
        if not MIN_RATE <= emulated <= MAX_RATE:
            raise TopologyError(self.source, key, f"{value} at scale {self.scale:g} is {format_rate(emulated)} "
                                                  f"emulated; links are shaped to {format_rate(MIN_RATE)}.."
                                                  f"{format_rate(MAX_RATE)}")
        return bps

    def _size(self, value, key):
        try:
            size = parse_size(value)
        except ValueError as e:
            raise TopologyError(self.source, key, str(e)) from None
        if not MIN_BUFFER <= size <= MAX_BUFFER:
            raise TopologyError(self.source, key, f"{value}: a VL buffer holds {MIN_BUFFER} B..{MAX_BUFFER // 2**30} GiB")
        return size


def _scale(value, source) -> float:
    """`scale` in (0, 1]; a string such as '1e-3' (YAML 1.1 reads exponents without a dot as text) counts."""
    try:
        scale = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        scale = math.nan
    if not 0 < scale <= 1:
        raise TopologyError(source, "scale", f"must be a number in (0, 1], got {value!r}")
    return scale
