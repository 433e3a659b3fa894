"""aicb: a training workload from an AICB file (the text format SimAI replays), on named compute
nodes, in the lab (agents/aicb.py on each node) or in the flow model.

    - {type: aicb, file: gpt-8n.txt, nodes: [c0, c1, c2, c3], iterations: 3, compute: as-written}

The file's GPUs are the nodes' GPUs, node-major (c0 holds ranks 0..G-1). `compute`: as-written,
or a factor on the file's compute times. `dilation`: how many times slower than the real system
the lab runs (bytes x scale x dilation on links at scale), as `emu bench` sizes do.
`node_speed`: the node model's rates times this (1000: the nodes out of the network's way). `classes`:
the traffic class of each group's collectives (dp, ep, dp_ep, pp; tp stays inside the nodes),
by default NCCL's.

Figures, all in the real system's time (the lab's / dilation): iteration_s, compute_s, comm_s
(every collective's own time, overlapped or not), exposed_comm_s (the iteration less compute)
and collectives: per type, group and bytes a rank, the count an iteration, seconds (one call)
and busbw (GB/s, nccl-tests' factor over the group's ranks). Iterations after the first are averaged (the first
pays the connections' set-up).
"""
from collections import Counter

from cluster.aicb import ALGO, FormatError, iteration, load, pp_bytes, timeline
from cluster.collectives import TRAFFIC_CLASS, lab_size
from cluster.footprint import footprint, limits, node_bound
from cluster.node import NodeParams
from cluster.parallel import KINDS, groups, member_params, node_groups, pp_peers
from emu.experiments.aicb import GROUPS, ITEMSIZE, figures, run_aicb
from emu.experiments.nccl_flags import DILATION
from emu.model.workloads import Workload, collective_flows, hardware_use
from emu.workloads.base import WorkloadType, register

DEFAULT_CLASS = TRAFFIC_CLASS[ALGO["allreduce"]]
# the model's flows over a collective's ring: one connection an edge for the whole call (NCCL's,
# and the lab agents'), or each send of the ring on a connection of its own, hashed anew and in
# turn (SimAI's ns-3 backend opens each send on a new source port)
ECMP = ("per-connection", "per-step")


def check(p, topology, where, fail) -> None:
    try:
        w = p["workload"] = load(p["file"])
    except FormatError as e:
        fail(f"{where}.file", str(e))
    nodes = p["nodes"]
    gpus = {topology.node(n).attrs["gpus"] for n in nodes}
    if len(gpus) != 1:
        fail(f"{where}.nodes", f"the nodes have different GPU counts ({sorted(gpus)}); name nodes of one kind")
    per_node = p["gpus"] = gpus.pop()
    if w.gpus != per_node * len(nodes):
        fail(f"{where}.file", f"{p['file']} has {w.gpus} GPUs; the {len(nodes)} nodes named hold "
                              f"{per_node * len(nodes)} ({per_node} each): name {w.gpus / per_node:g} nodes")
    for kind in KINDS:
        try:
            node_groups(kind, w.gpus, w.tp, w.pp, w.ep, per_node)
        except ValueError as e:
            fail(f"{where}.file", f"{p['file']}: {e}")
    if any(c and c.group is None for layer in w.layers for c in layer.comms.values()):
        fail(f"{where}.file", f"{p['file']}: an ALLREDUCEALLTOALL collective has no group emu can place")
    factor = p["compute"]
    if factor == "as-written":
        p["compute"] = 1.0
    elif isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor < 0:
        fail(f"{where}.compute", f"must be as-written or a factor of 0 or more, got {factor!r}")
    if p["ecmp"] not in ECMP:
        fail(f"{where}.ecmp", f"must be one of {', '.join(ECMP)}, got {p['ecmp']!r}")
    for key in ("dilation", "node_speed"):
        if isinstance(p[key], bool) or not isinstance(p[key], (int, float)) or p[key] <= 0:
            fail(f"{where}.{key}", f"must be a positive number, got {p[key]!r}")
    classes = p["classes"] or {}
    if not isinstance(classes, dict) or not set(classes) <= set(GROUPS):
        fail(f"{where}.classes", f"must map groups ({', '.join(GROUPS)}) to traffic classes")
    for group, name in classes.items():
        if name not in topology.qos.classes:
            fail(f"{where}.classes.{group}",
                 f"unknown traffic class {name!r} (one of {', '.join(topology.qos.classes)})")
    p["classes"] = {g: classes.get(g, DEFAULT_CLASS) for g in GROUPS}


def run(run, step, index: int) -> dict:
    p = step.params
    result = run_aicb(run.lab, p, port=6200 + 20 * index)
    for it in result["iterations"]:
        run.flow(",".join(p["nodes"]), ",".join(p["nodes"]), p["classes"]["dp"], 0, it["start"], it["end"],
                 it["compute_s"], step.name)
    return result["figures"]


def model(step, p, topo, storage) -> Workload:
    """Each distinct collective of the file once, alone (a round each: every instance of its group
    at once), then the iteration laid out from their times as the agents play it (timeline). A
    calibration (emu.model.calibration) adds each call's software time: `params["costs"]`."""
    w, names, per_node = p["workload"], p["nodes"], p["gpus"]
    scale, dilation = topo.scale, p["dilation"]
    steps = iteration(w)
    counts = Counter(_key(s) for s in steps if s.op != "compute")
    rounds, uses, on_fabric, took, calls = [], [], [], {}, {}
    per_step = p["ecmp"] == "per-step"
    for key in counts:
        flows, use, seconds, call = _flows(key, w, names, per_node, scale, dilation, p["node_speed"],
                                           topo.hardware(names[0]))
        calls[key] = call
        if seconds is None:
            sends = _ring_sends(key, w, per_node) if per_step else 1
            rounds += [[(a, b, n / sends, *rail) for a, b, n, *rail in flows]] * sends
            uses += [use] * sends
            on_fabric += [key] * sends
        else:
            took[key] = seconds
    costs: dict = {}

    def summarise(spans: list[tuple[float, float]]) -> dict:
        took.update({k: 0.0 for k in on_fabric})
        for k, (start, end) in zip(on_fabric, spans):
            took[k] += end - start
        for key, (cost, nbytes) in calls.items():
            if cost in costs:
                took[key] = costs[cost].seconds(took[key], nbytes, len(names))
        it = timeline(steps, lambda s: took[_key(s)], 1e-9 * dilation * p["compute"])
        by_comm = {k[1:]: (counts[k], counts[k] * took[k]) for k in counts if k[0] == "comm"}
        return figures(w, it, by_comm, dilation, scale)
    return Workload(step.name, step.type, p["classes"]["dp"], step.start, rounds, round_use=uses,
                    summarise=summarise, params={"nodes": list(names), "costs": costs}, rehash=per_step)


def _ring_sends(key, w, per_node) -> int:
    """How many sends one after another a ring of the collective makes: 2 (R-1) for an allreduce
    over R ranks, R-1 for either half; an all-to-all's or the pipeline's sends go at once."""
    if key[0] == "pp" or key[1] not in ("allreduce", "allgather", "reducescatter"):
        return 1
    g = node_groups(key[2], w.gpus, w.tp, w.pp, w.ep, per_node)
    ranks = len(g.sets[0]) * g.members
    return (2 if key[1] == "allreduce" else 1) * (ranks - 1)


def _key(step) -> tuple:
    return ("pp", step.phase) if step.op == "pp" else ("comm", step.comm.kind, step.comm.group, step.comm.bytes)


def _flows(key, w, names, per_node, scale, dilation, speed, profile) -> tuple[list, dict, float | None, tuple]:
    """A distinct collective's node-to-node flows and what they use of the nodes' hardware (as
    the agents' node model charges it); for one that stays inside the nodes, instead, the seconds
    the node model's busiest resource takes over it; and the calibration's name for such a call
    (algorithm@place) with the bytes of a node's buffer."""
    if key[0] == "pp":
        each = lab_size(pp_bytes(w), scale, dilation, ITEMSIZE)
        pairs = pp_peers(w.gpus, w.tp, w.pp, per_node)
        return [((names[a], names[b]) if key[1] == "fwd" else (names[b], names[a])) + (n * each,)
                for (a, b), n in pairs.items() if a != b], {}, None, ("pp@fabric", each * per_node)
    _, kind, group, nbytes = key
    g = node_groups(group, w.gpus, w.tp, w.pp, w.ep, per_node)
    size = g.instances * lab_size(nbytes, scale, dilation, ITEMSIZE)
    # the ring's phases use the hardware as the ring does, per byte moved
    algo, node = ("alltoall" if kind == "alltoall" else "ring"), NodeParams.from_profile(profile, per_node, 1)
    members = member_params(node, g.members)
    inside = all(len(s) == 1 for s in g.sets)
    call = (f"{ALGO[kind]}@{'node' if inside else 'fabric'}", size * g.members)
    if inside:
        if g.members == 1:
            return [], {}, 0.0, call
        params = members.scaled(scale * speed)
        rate, _ = node_bound(footprint(algo, params, 1, 0), params)
        return [], {}, size / rate / (2 if kind in ("allgather", "reducescatter") else 1), call
    # a use of a constraint the members see k times faster is a k-th of a use of the node's own
    real, seen = limits(node), {c: rate * speed for c, rate in limits(members).items()}
    flows, use = [], {}
    for s in g.sets:
        nodes = [names[n] for n in s]
        use.update({n: {c: v * real[c] / seen[c] for c, v in u.items()}
                    for n, u in hardware_use(algo, nodes, members).items()})
    if g.members == 1:      # an instance a GPU, the same one on every node: a flow of its own over that GPU's NIC
        for ranks in groups(group, w.gpus, w.tp, w.pp, w.ep):
            places = {r % per_node for r in ranks}
            rail = [places.pop()] if len(places) == 1 else []
            nodes = [names[r // per_node] for r in ranks]
            flows += [(a, b, n, *rail) for a, b, n in collective_flows(ALGO[kind], nodes, size // g.instances, 1)]
    else:
        for s in g.sets:
            flows += collective_flows(ALGO[kind], [names[n] for n in s], size, g.members)
    return flows, use, None, call


register(WorkloadType("aicb", frozenset({"file", "nodes"}),
                      {"iterations": 3, "compute": "as-written", "dilation": DILATION, "classes": None,
                       "node_speed": 1.0, "ecmp": "per-connection"},
                      run, {"nodes": "compute"}, check, model))
