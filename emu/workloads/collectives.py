"""allreduce and alltoall: a collective across compute nodes, nccl-tests style, `iters` times."""
from cluster.collectives import ALLREDUCE, ALLTOALL, TRAFFIC_CLASS
from cluster.node import NodeParams
from emu.errors import EmuError
from emu.experiments.collectives import bench_collective
from emu.model.workloads import collective
from emu.workloads.base import WorkloadType, register


def _algo(step) -> str:
    return step.params["algo"] if step.type == "allreduce" else ALLTOALL


def run(run, step, index: int) -> dict:
    p = step.params
    algo = _algo(step)
    (row,) = bench_collective(run.lab, algo, p["nodes"], sizes=[p["size"]], dtype=p["dtype"], iters=p["iters"],
                              warmup=0, port=6000 + 10 * index)
    ideal = row["time_us"] * 1e-6 * row["efficiency"]      # the run's own bound, per iteration
    for start, end in row["spans"]:
        run.flow(",".join(p["nodes"]), ",".join(p["nodes"]), TRAFFIC_CLASS[algo], row["size"], start, end, ideal,
                 step.name)
    return {"algo": algo, "algbw": row["algbw"], "busbw": row["busbw"], "proj_algbw": row["proj_algbw"],
            "proj_busbw": row["proj_busbw"], "slowdown": 1 / row["efficiency"] if row["efficiency"] else None,
            "wrong": row["wrong"], "node_bound_algbw": row["node_bound_algbw"]}


def model(step, p, topo, storage):
    first = p["nodes"][0]
    try:
        params = NodeParams.from_profile(topo.hardware(first), topo.node(first).attrs["gpus"], topo.nics(first))
    except ValueError as e:
        raise EmuError(f"workloads.{step.name}: {e}") from None
    return collective(step.name, _algo(step), p["nodes"], p["size"], params, step.start, p["iters"], step.type)


def check_algo(p, topology, where, fail) -> None:
    if p["algo"] not in ALLREDUCE:
        fail(f"{where}.algo", f"unknown algorithm {p['algo']!r} (one of {', '.join(ALLREDUCE)})")


register(
    WorkloadType("allreduce", frozenset({"nodes"}), {"algo": "hfreduce", "size": "1M", "iters": 10, "dtype": "fp32"},
                 run, {"nodes": "compute"}, check_algo, model),
    WorkloadType("alltoall", frozenset({"nodes"}), {"size": "1M", "iters": 10, "dtype": "fp32"},
                 run, {"nodes": "compute"}, None, model))
