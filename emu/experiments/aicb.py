"""An AICB workload in a lab: agents/aicb.py on each named node, their iterations gathered into
the figures emu.workloads.aicb describes (the flow model's come out of `figures` too)."""
from collections import defaultdict

import numpy as np

from cluster.aicb import ALGO, pp_bytes
from cluster.collectives import bus_factor, lab_size
from cluster.parallel import KINDS
from emu.errors import EmuError
from emu.launch import command, peer_timeout
from emu.report.project import to_real

ITEMSIZE = 4                        # the agents' buffers are fp32: sizes round to whole elements
GROUPS = (*KINDS[1:], "pp")         # the groups whose traffic may cross the fabric


def figures(w, per_iteration: dict, took: dict, dilation: float, scale: float) -> dict:
    """A run's figures in real time from an iteration's lab seconds (`per_iteration`: iteration_s,
    compute_s, comm_s) and `took`: (type, group, bytes) -> (count an iteration, lab seconds)."""
    real = {k: per_iteration[k] / dilation for k in ("iteration_s", "compute_s", "comm_s")}
    collectives = []
    for (kind, group, nbytes), (count, seconds) in sorted(took.items()):
        lab = lab_size(nbytes, scale, dilation, ITEMSIZE)
        each = seconds / count if count else 0.0          # lab seconds a collective
        algbw = to_real(lab / each / 1e9, scale) if each else 0.0     # the real system's GB/s
        collectives.append({"type": kind, "group": group, "bytes": nbytes, "count": count, "seconds": each / dilation,
                            "busbw": algbw * bus_factor(ALGO[kind], w.group_size(group))})
    return {**real, "exposed_comm_s": max(0.0, real["iteration_s"] - real["compute_s"]), "collectives": collectives}


def run_aicb(lab, p: dict, port: int = 6200) -> dict:
    """`p`: a checked aicb step's parameters. Returns {figures, iterations: [{start, end,
    compute_s}] on the monotonic clock}."""
    w, nodes, scale, dilation = p["workload"], p["nodes"], lab.plan.scale, p["dilation"]
    biggest = max([c.bytes for layer in w.layers for c in layer.comms.values() if c] + [pp_bytes(w)])
    timeout = peer_timeout(lab, int(biggest * scale * dilation) * p["gpus"])
    tos = ",".join(f"{g}={lab.tos(p['classes'][g])}" for g in GROUPS)
    argv = command("aicb") + [
        "--addrs", ",".join(lab.node(n).addr for n in nodes), "--port", str(port), "--file", p["file"],
        "--gpus", str(p["gpus"]), "--hardware", lab.topology.hardware(nodes[0]).name,
        "--iterations", str(p["iterations"]), "--compute-factor", repr(p["compute"]),
        "--scale", repr(scale), "--node-speed", repr(p["node_speed"]), "--dilation", repr(dilation),
        "--tos", f"tp=0,{tos}", "--tag", lab.name,
        "--timeout", f"{timeout:.1f}"]
    # the backstop: every step's compute and a peer timeout per collective, an iteration
    compute = sum(sum(layer.compute.values()) for layer in w.layers) * 1e-9 * dilation * p["compute"] * 3
    backstop = p["iterations"] * (compute + timeout * (1 + 3 * len(w.layers))) + 60
    with lab.launch() as agents:
        procs = [agents.start(n, argv + ["--rank", str(rank)]) for rank, n in enumerate(nodes)]
        outcomes, ended = agents.gather(list(zip(nodes, procs)), backstop)
        errors = agents.own_errors(outcomes, ended)
    if errors:
        raise EmuError(errors[0])
    by_node = [[r for r in records if "iteration" in r] for records, _ in outcomes]
    iterations = [{"start": min(r["start"] for r in its), "end": max(r["end"] for r in its),
                   "compute_s": its[0]["compute_s"], "comm_s": float(np.mean([r["comm_s"] for r in its])),
                   "collectives": [c for r in its for c in r["collectives"]]}
                  for its in zip(*by_node)]
    counted = iterations[1:] or iterations          # the first pays the connections' set-up
    per_iteration = {"iteration_s": float(np.mean([i["end"] - i["start"] for i in counted])),
                     "compute_s": float(np.mean([i["compute_s"] for i in counted])),
                     "comm_s": float(np.mean([i["comm_s"] for i in counted]))}
    took = defaultdict(lambda: [0, 0.0])            # summed over nodes and iterations, then per one
    for it in counted:
        for c in it["collectives"]:
            key = (c["type"], c["group"], c["bytes"])
            took[key][0] += c["count"]
            took[key][1] += c["seconds"]
    share = len(counted) * len(nodes)
    took = {k: (n / share, s / share) for k, (n, s) in took.items()}
    return {"figures": figures(w, per_iteration, took, dilation, scale), "iterations": iterations}
