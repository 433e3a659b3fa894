"""Scenario files: a lab, a timeline of workloads and faults, checked whole before anything runs.

    name: hfreduce-vs-storage
    topology: ../topologies/fire-flyer-mini.yaml     # or an inline topology mapping
    duration: 8s
    sample: 50ms                                      # optional
    scale: 0.001                                      # optional overrides: scale, routing, qos,
    flow_control: {mode: lossless}                    #   flow_control
    workloads:
      - {type: allreduce, start: 0s, algo: hfreduce, nodes: [za-c0, zb-c0], size: 1M, iters: 20}
      - {type: storage-read, start: 1s, duration: 4s, clients: [za-c1]}
    faults:
      - {type: link-down, link: [za-leaf0, za-spine0], start: 3s, duration: 1s}
      - {type: kill, node: za-c1, after: {job: a, event: checkpoint}}   # at an event (start: a delay after it)

Every refusal is one line naming the file, the key and the reason (as topology files).
"""
from dataclasses import dataclass, field
from pathlib import Path

from cluster.collectives import ALLREDUCE
from emu.control.scheduler import POLICIES
from emu.errors import TopologyError
from emu.topo.loader import load_yaml, topology_from_dict
from emu.topo.model import NAME_RE, Topology
from emu.units import parse_size
from emu.workloads import TYPES
from emu.workloads.base import checkpoint_period as _checkpoint
from emu.workloads.base import duration as _time

TOP_KEYS = {"name", "topology", "duration", "sample", "scale", "routing", "qos", "flow_control", "workloads",
            "faults", "jobs", "scheduler"}
JOB_KEYS = {"name", "nodes", "model", "steps", "backend", "priority", "submit", "batch", "checkpoint"}
DEFAULT_SAMPLE = 0.1        # ~5% of a core on a 64-host leaf-spine (docs/results/sampler.md)
# Workload types are emu.workloads' (each a module: its keys, checks, lab runner, model builder).
# Fault type -> (required keys, optional keys with defaults); every fault also has type, start, name
FAULTS = {"link-down": ({"link"}, {"duration": None, "sweep_delay": "1s"}), "kill": ({"node"}, {}),
          "gpu": ({"node", "gpu"}, {"kind": "lost"})}
FAULT_NODES = {"kill": {"node": None}, "gpu": {"node": "compute"}}     # key naming nodes -> their kind


# What a fault may wait for: an event of a job or workload on the run's timeline (events.jsonl).
AFTER_EVENTS = ("start", "checkpoint", "end")


@dataclass
class Step:
    """One workload or fault of the timeline."""
    type: str
    name: str
    start: float                # seconds after the run starts, or after `after`'s event
    params: dict = field(default_factory=dict)
    duration: float | None = None
    after: tuple[str, str] | None = None      # (job or workload name, event): wait for it first


@dataclass
class Scenario:
    name: str
    source: str
    topology: Topology
    duration: float
    sample: float
    workloads: list[Step]
    faults: list[Step]
    doc: dict                   # the scenario as resolved, written to the run directory
    jobs: list[dict] = field(default_factory=list)     # for the scheduler: nodes needed, not named
    policy: str = "zone-aware"


def load_scenario(path_or_doc, source: str | None = None) -> Scenario:
    """A scenario from a file or a dict, every key checked."""
    if isinstance(path_or_doc, dict):
        doc, source, base = path_or_doc, source or "<scenario>", Path.cwd()
    else:
        source = str(path_or_doc)
        doc, base = load_yaml(path_or_doc), Path(path_or_doc).resolve().parent
    return scenario_from_dict(doc, source, base)


def scenario_from_dict(doc, source: str, base: Path) -> Scenario:
    def fail(key, reason):
        raise TopologyError(source, key, reason)

    if not isinstance(doc, dict):
        fail("-", "top level must be a mapping")
    for key in doc:
        if key not in TOP_KEYS:
            fail(key, f"unknown key (allowed: {', '.join(sorted(TOP_KEYS))})")
    for key in ("name", "topology", "duration"):
        if key not in doc:
            fail(key, "missing")
    topo_doc = doc["topology"]
    topo_source = source
    if isinstance(topo_doc, str):
        path = base / topo_doc
        topo_source = str(path)
        topo_doc = load_yaml(path)
    if not isinstance(topo_doc, dict):
        fail("topology", "must be a file path or a topology mapping")
    topo_doc = {**topo_doc, **{k: doc[k] for k in ("scale", "routing", "qos", "flow_control") if k in doc}}
    if isinstance(doc.get("routing"), str):             # `routing: ecmp` is short for {mode: ecmp}
        topo_doc["routing"] = {"mode": doc["routing"]}
    topology = topology_from_dict(topo_doc, topo_source, doc.get("name") if "name" not in topo_doc else None)
    duration = _time(doc["duration"], "duration", fail)
    if duration <= 0:
        fail("duration", "must be longer than 0 s")
    sample = _time(doc.get("sample", DEFAULT_SAMPLE), "sample", fail)
    if not 0.01 <= sample <= 1.0:
        fail("sample", "must be between 10ms and 1s")
    workloads = _steps(doc.get("workloads", []), "workloads", {t.name: (t.required, t.optional) for t in TYPES.values()},
                       topology, duration, fail, base)
    jobs = _jobs(doc.get("jobs", []), topology, duration, fail)
    if not workloads and not jobs:
        fail("workloads", "a scenario needs at least one workload or job")
    scheduler = doc.get("scheduler", {"policy": "zone-aware"})
    if not isinstance(scheduler, dict) or set(scheduler) != {"policy"} or scheduler["policy"] not in POLICIES:
        fail("scheduler", f"must be {{policy: {' | '.join(POLICIES)}}}")
    faults = _steps(doc.get("faults", []), "faults", FAULTS, topology, duration, fail)
    _check_after(faults, workloads, jobs, fail)
    resolved = {**doc, "topology": topology.to_dict()}
    return Scenario(str(doc["name"]), source, topology, duration, sample, workloads, faults, resolved, jobs,
                    scheduler["policy"])


def _jobs(items, topology, duration, fail) -> list[dict]:
    """Jobs for the scheduler: how many compute nodes each needs, not which."""
    if not isinstance(items, list):
        fail("jobs", "must be a list")
    jobs, names = [], set()
    for i, item in enumerate(items):
        where = f"jobs[{i}]"
        job = check_job(item, where, topology, fail, f"job-{i}")
        if job["submit"] >= duration:
            fail(f"{where}.submit", f"{job['submit']:g} s is not within the scenario's {duration:g} s")
        if job["name"] in names:
            fail(f"{where}.name", f"duplicate name {job['name']!r}")
        names.add(job["name"])
        jobs.append(job)
    return jobs


def check_job(item, where: str, topology, fail, default_name: str = "job") -> dict:
    """One job for the scheduler (a scenario's `jobs` entry or `emu jobs submit`), checked, with
    its defaults; `fail(key, why)` raises."""
    from cluster.models import MODELS
    if not isinstance(item, dict):
        fail(where, "must be a mapping")
    for k in item:
        if k not in JOB_KEYS:
            fail(f"{where}.{k}", f"unknown key (allowed: {', '.join(sorted(JOB_KEYS))})")
    compute = sum(1 for n in topology.nodes() if n.kind == "compute")
    job = {"name": str(item.get("name", default_name)), "model": item.get("model", "vgg16"),
           "steps": item.get("steps", 10), "backend": item.get("backend", "hfreduce"),
           "priority": item.get("priority", 0), "batch": item.get("batch", 32), "nodes": item.get("nodes")}
    if not NAME_RE.fullmatch(job["name"]):
        fail(f"{where}.name", f"{job['name']!r} must match {NAME_RE.pattern} (it names files)")
    for k in ("nodes", "steps", "batch"):
        if isinstance(job[k], bool) or not isinstance(job[k], int) or job[k] < 1:
            fail(f"{where}.{k}", f"must be a positive integer, got {job[k]!r}")
    if job["steps"] < 2:
        fail(f"{where}.steps", "a job needs at least 2 steps (the first pays the connections' set-up)")
    if job["nodes"] > compute:
        fail(f"{where}.nodes", f"{job['nodes']} nodes asked, the topology has {compute} compute nodes")
    if job["model"] not in MODELS:
        fail(f"{where}.model", f"unknown model {job['model']!r} (one of {', '.join(MODELS)})")
    if job["backend"] not in ALLREDUCE:
        fail(f"{where}.backend", f"unknown backend {job['backend']!r} (one of {', '.join(ALLREDUCE)})")
    if isinstance(job["priority"], bool) or not isinstance(job["priority"], int):
        fail(f"{where}.priority", "must be an integer")
    job["submit"] = _time(item.get("submit", 0), f"{where}.submit", fail)
    job["checkpoint"] = _checkpoint(item.get("checkpoint"), f"{where}.checkpoint", topology, fail)
    return job


def _steps(items, key, kinds, topology, duration, fail, base: Path | None = None) -> list[Step]:
    """The steps of `items`; a step's files (its type's `paths`) are found from `base`, the scenario
    file's directory."""
    if not isinstance(items, list):
        fail(key, "must be a list")
    steps, names = [], set()
    for i, item in enumerate(items):
        where = f"{key}[{i}]"
        if not isinstance(item, dict):
            fail(where, "must be a mapping")
        kind = item.get("type")
        if kind not in kinds:
            fail(f"{where}.type", f"unknown type {kind!r} (one of {', '.join(kinds)})")
        required, optional = kinds[kind]
        allowed = required | set(optional) | {"type", "start", "name", "duration"} | ({"after"} if key == "faults" else set())
        for k in item:
            if k not in allowed:
                fail(f"{where}.{k}", f"unknown key for {kind} (allowed: {', '.join(sorted(allowed))})")
        for k in sorted(required):
            if k not in item:
                fail(f"{where}.{k}", "missing")
        start = _time(item.get("start", 0), f"{where}.start", fail)
        if start >= duration:
            fail(f"{where}.start", f"{start:g} s is not within the scenario's {duration:g} s")
        span = _time(item["duration"], f"{where}.duration", fail) if item.get("duration") is not None else None
        if span is not None and span <= 0:
            fail(f"{where}.duration", "must be longer than 0 s")
        params = {**optional, **{k: v for k, v in item.items()
                                 if k not in ("type", "start", "name", "duration", "after")}}
        for k in TYPES[kind].paths if kind in TYPES else ():
            if isinstance(params.get(k), str) and base is not None:
                params[k] = str(base / params[k])
        _check_params(kind, params, topology, where, fail)
        name = str(item.get("name", f"{kind}-{i}"))
        if name in names:
            fail(f"{where}.name", f"duplicate name {name!r}")
        names.add(name)
        after = item.get("after")
        if after is not None and (not isinstance(after, dict) or set(after) != {"job", "event"}):
            fail(f"{where}.after", "must be {job: NAME, event: EVENT}")
        steps.append(Step(kind, name, start, params, span, after and (str(after["job"]), after["event"])))
    return steps


def _check_after(faults: list[Step], workloads: list[Step], jobs: list[dict], fail) -> None:
    """A fault's `after` names a job or workload of this scenario and an event it has."""
    checkpoints = {j["name"] for j in jobs if j["checkpoint"]} | {
        w.name for w in workloads if w.type == "train" and w.params["checkpoint"]}
    names = {j["name"] for j in jobs} | {w.name for w in workloads}
    for i, fault in enumerate(faults):
        if fault.after is None:
            continue
        name, event = fault.after
        if name not in names:
            fail(f"faults[{i}].after.job", f"no job or workload named {name!r} (names: {', '.join(sorted(names))})")
        if event not in AFTER_EVENTS:
            fail(f"faults[{i}].after.event", f"unknown event {event!r} (one of {', '.join(AFTER_EVENTS)})")
        if event == "checkpoint" and name not in checkpoints:
            fail(f"faults[{i}].after.event", f"{name} takes no checkpoints")


def _check_params(kind, params, topology, where, fail) -> None:
    """The checks every step shares (node names, sizes, durations, counts), then its type's own."""
    workload = TYPES.get(kind)
    if workload and workload.storage and not any(n.kind == "storage" for n in topology.nodes()):
        fail(f"{where}.type", f"{kind} needs storage nodes and the topology has none")
    for k, want in (workload.nodes if workload else FAULT_NODES.get(kind, {})).items():
        if k not in params or params[k] is None:
            continue
        names = params[k] if isinstance(params[k], list) else [params[k]]
        if not names or not all(isinstance(n, str) for n in names):
            fail(f"{where}.{k}", "must name nodes of the topology")
        for n in names:
            if n not in topology.graph:
                fail(f"{where}.{k}", f"no node {n!r} in the topology")
            node = topology.node(n)
            if node.forwards:
                fail(f"{where}.{k}", f"{n} is a switch, not a host")
            if want and node.kind != want:
                fail(f"{where}.{k}", f"{n} is a {node.kind} node, not a {want} node")
    if "size" in params or "state" in params:
        k = "size" if "size" in params else "state"
        try:
            params[k] = parse_size(params[k])
        except ValueError as e:
            fail(f"{where}.{k}", str(e))
    if "class" in params and params["class"] not in topology.qos.classes:
        fail(f"{where}.class", f"unknown traffic class {params['class']!r} (one of {', '.join(topology.qos.classes)})")
    for k in ("period", "sweep_delay"):
        if k in params:
            params[k] = _time(params[k], f"{where}.{k}", fail)
    for k in ("iters", "saves", "rounds", "rts_limit", "steps", "batch", "iterations"):
        if k in params and (isinstance(params[k], bool) or not isinstance(params[k], int) or params[k] < 1):
            fail(f"{where}.{k}", f"must be a positive integer, got {params[k]!r}")
    if "rts" in params and not isinstance(params["rts"], bool):
        fail(f"{where}.rts", "must be true or false")
    if workload and workload.check:
        workload.check(params, topology, where, fail)
    if kind == "gpu":
        from emu.lab import GPU_FAULTS
        if params["kind"] not in GPU_FAULTS:
            fail(f"{where}.kind", f"unknown GPU fault {params['kind']!r} (one of {', '.join(GPU_FAULTS)})")
        gpus = topology.node(params["node"]).attrs["gpus"]
        if isinstance(params["gpu"], bool) or not isinstance(params["gpu"], int) or not 0 <= params["gpu"] < gpus:
            fail(f"{where}.gpu", f"must be a GPU of {params['node']} (0..{gpus - 1}), got {params['gpu']!r}")
    if kind == "link-down":
        link = params["link"]
        if not (isinstance(link, list) and len(link) == 2 and all(isinstance(n, str) for n in link)):
            fail(f"{where}.link", "must be a list of two node names")
        if not topology.graph.has_edge(*link):
            fail(f"{where}.link", f"no link {link[0]} <-> {link[1]} in the topology")

