"""YAML -> Topology. Every refusal names the file, the key and the reason."""
from pathlib import Path

import yaml

from emu.errors import TopologyError
from emu.qos import QosPolicy
from emu.qos.flow_control import FlowControl
from emu.units import parse_duration, parse_size
from emu.topo.builders import BUILDERS, apply_builder
from emu.topo.model import BACKEND_OPTIONS, Topology

TOP_KEYS = {"name", "scale", "defaults", "routing", "qos", "flow_control", "nodes", "links", "fabric", "backend"}
DEFAULT_KEYS = {"rate", "buffer"}
LINK_KEYS = {"endpoints", "rate", "buffer"}
QOS_KEYS = {"classes", "sl2vl", "vlarb", "isolation"}
FLOW_CONTROL_KEYS = {"mode", "xoff", "xon", "headroom"}


# A topology file is small: a 4096-node lab in the explicit form is a few hundred KB. The
# value budget counts what the document expands to (an alias counts each time it is used),
# so an alias bomb is refused before anything walks it.
MAX_FILE_BYTES = 8 * 2**20
MAX_VALUES = 500_000


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):     # libyaml parses ~4x faster
    """Safe YAML that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key_node.value!r}",
                                                            key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


def load_topology(path, name: str | None = None) -> Topology:
    """Read and check a topology file; `name` overrides the lab name in the file."""
    return topology_from_dict(load_yaml(path), str(path), name)


def load_yaml(path):
    """A small YAML file (topologies, scenarios), read with every guard above; one-line errors."""
    source = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise TopologyError(source, "-", f"cannot read: {e.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise TopologyError(source, "-", f"larger than {MAX_FILE_BYTES // 2**20} MiB; a topology file is far smaller")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise TopologyError(source, f"line {line}", f"not UTF-8 text (byte {e.start})") from None
    try:
        doc = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f"line {where.line + 1}" if where else "-"
        raise TopologyError(source, line, f"not valid YAML: {getattr(e, 'problem', None) or e}") from None
    except RecursionError:
        raise TopologyError(source, "-", "nested too deeply") from None
    _within_budget(doc, source)
    return doc


def _within_budget(doc, source) -> None:
    """Refuse a document that expands to more than MAX_VALUES values (walked without recursion)."""
    stack, seen = [doc], 0
    while stack:
        value = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise TopologyError(source, "-", f"expands to more than {MAX_VALUES} values (YAML aliases?)")
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def topology_from_dict(doc, source: str = "<dict>", name: str | None = None) -> Topology:
    if not isinstance(doc, dict):
        raise TopologyError(source, "-", "top level must be a mapping")
    _no_unknown(doc, TOP_KEYS, "", source)
    if "name" not in doc and name is None:
        raise TopologyError(source, "name", "missing (or pass --name)")
    defaults = _mapping(doc.get("defaults", {}), "defaults", source)
    _no_unknown(defaults, DEFAULT_KEYS, "defaults.", source)
    routing = _mapping(doc.get("routing", {}), "routing", source)
    _no_unknown(routing, {"mode", "period"}, "routing.", source)
    try:
        period = parse_duration(routing["period"]) if "period" in routing else None
    except ValueError as e:
        raise TopologyError(source, "routing.period", str(e)) from None
    backend, options = _backend(doc.get("backend", "kernel"), source)
    topo = Topology(name or doc["name"], scale=doc.get("scale", 1.0), routing=routing.get("mode", "static"),
                    routing_period=period, backend=backend, backend_options=options,
                    qos=_qos(doc.get("qos"), source), flow_control=_flow_control(doc.get("flow_control"), source),
                    rate=defaults.get("rate", "200Gbit"), buffer=defaults.get("buffer", "128KiB"),
                    source=source)
    if "fabric" in doc:
        if "nodes" in doc or "links" in doc:
            raise TopologyError(source, "fabric", "use either a fabric generator or nodes/links, not both")
        fabric = dict(_mapping(doc["fabric"], "fabric", source))
        if "type" not in fabric:
            raise TopologyError(source, "fabric.type", f"missing (one of {', '.join(BUILDERS)})")
        return apply_builder(topo, fabric.pop("type"), fabric)

    nodes = _mapping(doc.get("nodes"), "nodes", source)
    for node_name, spec in nodes.items():
        spec = _mapping(spec, f"nodes.{node_name}", source)
        if "kind" not in spec:
            raise TopologyError(source, f"nodes.{node_name}.kind", "missing")
        attrs = {k: v for k, v in spec.items() if k != "kind"}
        topo.add_node(str(node_name), spec["kind"], **attrs)
    links = doc.get("links")
    if not isinstance(links, list):
        raise TopologyError(source, "links", "must be a list of {endpoints: [a, b]}")
    for i, spec in enumerate(links):
        key = f"links[{i}]"
        spec = _mapping(spec, key, source)
        _no_unknown(spec, LINK_KEYS, f"{key}.", source)
        ends = spec.get("endpoints")
        if not isinstance(ends, list) or len(ends) != 2:
            raise TopologyError(source, f"{key}.endpoints", "must be a list of two node names")
        topo.add_link(str(ends[0]), str(ends[1]), rate=spec.get("rate"), buffer=spec.get("buffer"), key=key)
    return topo.validate()


def _qos(spec, source) -> QosPolicy:
    if spec is None:
        return QosPolicy()
    spec = _mapping(spec, "qos", source)
    _no_unknown(spec, QOS_KEYS, "qos.", source)
    base = QosPolicy()
    try:
        return QosPolicy(
            classes={str(k): v for k, v in _mapping(spec.get("classes", base.classes), "qos.classes", source).items()},
            sl2vl=_int_keys(_mapping(spec.get("sl2vl", base.sl2vl), "qos.sl2vl", source)),
            vlarb=_int_keys(_mapping(spec.get("vlarb", base.vlarb), "qos.vlarb", source)),
            isolation=_bool(spec.get("isolation", True), "qos.isolation", source))
    except ValueError as e:
        key, _, reason = str(e).partition(": ")
        raise TopologyError(source, f"qos.{key}" if reason else "qos", reason or str(e)) from None


def _flow_control(spec, source) -> FlowControl:
    if spec is None:
        return FlowControl()
    spec = _mapping(spec, "flow_control", source)
    _no_unknown(spec, FLOW_CONTROL_KEYS, "flow_control.", source)
    sizes = {}
    for key in ("xoff", "xon", "headroom"):
        if key in spec:
            try:
                sizes[key] = parse_size(spec[key])
            except ValueError as e:
                raise TopologyError(source, f"flow_control.{key}", str(e)) from None
    try:
        return FlowControl(mode=spec.get("mode", "lossy"), **sizes)
    except ValueError as e:
        key, _, reason = str(e).partition(": ")
        raise TopologyError(source, f"flow_control.{key}", reason) from None


def _int_keys(mapping: dict) -> dict:
    # JSON (the state file) turns integer keys into strings; read "3" as SL/VL 3.
    return {int(k) if isinstance(k, str) and k.isdigit() else k: v for k, v in mapping.items()}


def _mapping(value, key, source) -> dict:
    if not isinstance(value, dict):
        raise TopologyError(source, key, f"must be a mapping, got {type(value).__name__}")
    return value


def _bool(value, key, source) -> bool:
    if not isinstance(value, bool):
        raise TopologyError(source, key, f"must be true or false, got {value!r}")
    return value


def _backend(spec, source: str) -> tuple[str, dict]:
    """`backend: NAME` or `backend: {name: NAME, OPTION: VALUE...}`; an app file (openflow's `app`)
    is found beside the topology file."""
    if isinstance(spec, str):
        return spec, {}
    spec = dict(_mapping(spec, "backend", source))
    if "name" not in spec:
        raise TopologyError(source, "backend.name", "missing (kernel or openflow)")
    name = spec.pop("name")
    app = spec.get("app")
    if app is not None and "app" in BACKEND_OPTIONS.get(name, ()):       # (else Topology names the key)
        if not isinstance(app, str) or not app:
            raise TopologyError(source, "backend.app", f"must be a file (path.py[:Class]) or module:Class, got {app!r}")
        where, sep, cls = app.partition(":")
        if where.endswith(".py"):
            path = Path(where) if Path(where).is_absolute() or not Path(source).is_file() else \
                Path(source).parent / where
            if not path.is_file():
                raise TopologyError(source, "backend.app", f"no such file: {path}")
            spec["app"] = f"{path.resolve()}{sep}{cls}"
    return name, spec


def _no_unknown(spec: dict, allowed: set, prefix: str, source: str) -> None:
    for key in spec:
        if key not in allowed:
            raise TopologyError(source, f"{prefix}{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})")
