"""`emu bench allreduce|alltoall`: run a collective across compute nodes of a lab, nccl-tests style.

Starts agents/collective.py in every chosen node (one process per node playing
its GPUs), collects each rank's timing and check, and turns them into rows:
time = the slowest rank's mean, algbw = size / time, busbw = algbw * 2(n-1)/n for
allreduce and (n-1)/n for all-to-all, with n the number of GPUs (as nccl-tests), each also projected to real scale
(divided by the lab's scale). GB/s are 1e9 bytes per second.
"""
from dataclasses import dataclass

from cluster.collectives import ALLREDUCE, TRAFFIC_CLASS, bus_factor, default_chunk, redop
from emu.errors import EmuError
from emu.launch import command, peer_timeout
from emu.report.project import to_real

ALGOS = ALLREDUCE
PORT = 6000


@dataclass(frozen=True)
class CollectiveRun:
    """The choices of one benchmark run (what nccl-tests takes as flags), checked against the lab."""
    algo: str
    nodes: tuple[str, ...]
    gpus: int                       # per node
    dtype: str = "fp32"
    iters: int = 5
    warmup: int = 1
    chunk: int | None = None        # default: default_chunk(size)
    cc: str | None = None
    timeout_base: float | None = None
    port: int = PORT                # ranks listen here (concurrent runs in one lab need their own)

    @property
    def ranks(self) -> int:
        return len(self.nodes) * self.gpus


def bench_collective(lab, algo: str, nodes: list[str] | None = None, sizes=(2**20,), dtype: str = "fp32",
                     iters: int = 5, warmup: int = 1, chunk: int | None = None, cc: str | None = None,
                     on_row=None, timeout_base: float | None = None, port: int = PORT) -> list[dict]:
    run = plan_run(lab, algo, nodes, dtype=dtype, iters=iters, warmup=warmup, chunk=chunk, cc=cc,
                   timeout_base=timeout_base, port=port)
    rows = []
    for size in sizes:
        rows.append(_one_size(lab, run, size))
        if on_row:
            on_row(rows[-1])
    return rows


def plan_run(lab, algo: str, nodes: list[str] | None, **choices) -> CollectiveRun:
    if algo not in TRAFFIC_CLASS:
        raise EmuError(f"unknown algorithm {algo!r} (one of {', '.join(TRAFFIC_CLASS)})")
    names = nodes or [n.name for n in lab.nodes("compute")]
    if not names:
        raise EmuError(f"lab {lab.name!r} has no compute nodes")
    for name in names:
        if lab.node(name).kind != "compute":
            raise EmuError(f"node {name!r} is a {lab.node(name).kind} node, not a compute node")
    gpus = {lab.topology.node(n).attrs["gpus"] for n in names}
    if len(gpus) != 1:
        raise EmuError(f"the nodes have different GPU counts ({sorted(gpus)}); pick nodes with equal counts")
    n_gpus = gpus.pop()
    if algo == "hfreduce-nvlink" and n_gpus % 2:
        raise EmuError("hfreduce-nvlink pairs GPUs over NVLink: the nodes need an even GPU count")
    return CollectiveRun(algo, tuple(names), n_gpus, **choices)


def _one_size(lab, run: CollectiveRun, size: int) -> dict:
    scale, chunk = lab.plan.scale, run.chunk or default_chunk(size, run.algo, run.ranks)
    timeout = peer_timeout(lab, size * run.gpus, run.timeout_base)     # one node's data
    peers = ",".join(f"{lab.node(n).addr}:{run.port}" for n in run.nodes)
    argv = command("collective") + [
        "--peers", peers, "--algo", run.algo, "--sizes", str(size), "--dtype", run.dtype, "--gpus", str(run.gpus),
        "--scale", repr(scale), "--chunk", str(chunk), "--iters", str(run.iters), "--warmup", str(run.warmup),
        "--tos", str(lab.tos(TRAFFIC_CLASS[run.algo])), "--tag", lab.name, "--timeout", f"{timeout:.1f}"]
    argv += ["--cc", run.cc] if run.cc else []
    backstop = timeout * (run.warmup + run.iters + 2) + 60   # each rank ends itself within `timeout` of a loss
    with lab.launch() as agents:
        procs = [agents.start(name, argv + ["--rank", str(rank)]) for rank, name in enumerate(run.nodes)]
        results = [agents.result(name, proc, backstop) for name, proc in zip(run.nodes, procs)]
    ranks = run.ranks
    time_us = max(r["time_us"] for r in results)
    algbw = results[0]["size"] / (time_us * 1e-6) / 1e9
    busbw = algbw * bus_factor(run.algo, ranks)
    return {"size": results[0]["size"], "count": results[0]["count"], "type": run.dtype, "redop": redop(run.algo),
            "time_us": time_us, "algbw": algbw, "busbw": busbw, "proj_algbw": to_real(algbw, scale),
            "proj_busbw": to_real(busbw, scale), "wrong": sum(r["wrong"] for r in results),
            "nodes": len(run.nodes), "gpus": ranks, "algo": run.algo, "chunk": chunk,
            # each iteration from its first rank's start to its last rank's end (monotonic clock)
            "spans": [(min(s[0] for s in it), max(s[1] for s in it)) for it in zip(*(r["spans"] for r in results))],
            **_bound(results, _link_rate(lab, run.nodes), time_us)}


def _link_rate(lab, names) -> float:
    """Bytes per second of the slowest NIC link among the nodes."""
    return lab.plan.slowest_bps(names) / 8


def _bound(results, link_Bps: float, time_us: float) -> dict:
    """The algorithm's own bound in this run: the busiest resource of the slowest node (bytes it
    really moved / its rate), network included; and how close the measured time came to it."""
    worst, limit = 0.0, ""
    for r in results:
        for name, p in r["pipes"].items():
            if p["bytes"] / p["rate"] > worst:
                worst, limit = p["bytes"] / p["rate"], name
        for direction in ("sent", "received"):
            if r["net"][direction] / link_Bps > worst:
                worst, limit = r["net"][direction] / link_Bps, f"link.{direction}"
    size = results[0]["size"]
    bound_algbw = size / worst / 1e9 if worst else float("inf")
    return {"bound_algbw": bound_algbw, "bound_by": limit, "efficiency": worst / (time_us * 1e-6)}
