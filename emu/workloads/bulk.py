"""bulk: one long TCP flow from src to dst in a traffic class, for `duration`."""
import networkx as nx

from emu.experiments.flows import Flow, run_flows
from emu.model.workloads import INF, Workload
from emu.workloads.base import WorkloadType, register


def bottleneck_bps(lab, src: str, dst: str) -> int:
    """The slowest port on the path src -> dst (the plan's rates along a shortest path)."""
    path = nx.shortest_path(lab.topology.graph, src, dst)
    return min(lab.plan.node(a).port_to(b).rate_bps for a, b in zip(path, path[1:]))


def run(run, step, index: int) -> dict:
    p = step.params
    (r,) = run_flows(run.lab, [Flow(p["src"], p["dst"], p["class"], p["cc"])], step.duration, port=5301 + index)
    ideal = r["bytes"] * 8 / bottleneck_bps(run.lab, p["src"], p["dst"])
    run.flow(p["src"], p["dst"], p["class"], r["bytes"], r["start"], r["end"], ideal, step.name)
    return {"goodput_bps": r["bps"], "bytes": r["bytes"], "slowdown": r["seconds"] / ideal if ideal else None}


def model(step, p, topo, storage):
    return Workload(step.name, step.type, p["class"], step.start, [[(p["src"], p["dst"], INF)]],
                    step.start + step.duration)


register(WorkloadType("bulk", frozenset({"src", "dst", "duration"}), {"class": "other", "cc": None}, run,
                      {"src": None, "dst": None}, None, model))
