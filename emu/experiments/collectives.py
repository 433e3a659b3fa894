"""`emu bench COLLECTIVE`: run a collective across compute nodes of a lab, nccl-tests style.

Starts agents/collective.py in every chosen node (one process per node playing
its GPUs), collects each rank's timing and check, and turns them into rows:
time = the slowest rank's mean, algbw = size / time, busbw = algbw times nccl-tests' factor
(2(n-1)/n for allreduce, (n-1)/n for allgather, reduce-scatter and all-to-all, 1 for broadcast
and reduce; n the number of GPUs). Each is also projected to the real system: rates divided
by the lab's scale, sizes by scale x dilation, times by dilation. GB/s are 1e9 bytes per second.
"""
from dataclasses import dataclass

from cluster.collectives import COLLECTIVE_CC, ROOTED, TRAFFIC_CLASS, bus_factor, default_chunk, lab_size, reduces
from cluster.hardware import DEFAULT
from cluster.node import DTYPES, NICS
from emu.errors import EmuError
from emu.launch import command, peer_timeout
from emu.plan.queues import TCP_PAYLOAD_SHARE
from emu.report.project import to_real

PORT = 6000


@dataclass(frozen=True)
class CollectiveRun:
    """The choices of one benchmark run (what nccl-tests takes as flags), checked against the lab."""
    algo: str
    nodes: tuple[str, ...]
    gpus: int                       # per node
    dtype: str = "fp32"
    op: str = "sum"                 # reduction op, where the algorithm reduces
    root: int = 0                   # global rank (node-major) of broadcast's and reduce's root
    iters: int = 5
    warmup: int = 1
    chunk: int | None = None        # default: default_chunk(size)
    cc: str = COLLECTIVE_CC
    timeout_base: float | None = None
    port: int = PORT                # ranks listen here (concurrent runs in one lab need their own)
    dilation: float = 1.0           # emulated time / the real system's
    nics: int = 1                   # per node: 1 (today's node) or one per GPU (section IX's)
    node_speed: float = 1.0         # the node model's rates times this (1000: little but the network left)
    hardware: str = DEFAULT         # the nodes' hardware profile (cluster/profiles/)

    @property
    def ranks(self) -> int:
        return len(self.nodes) * self.gpus


def bench_collective(lab, algo: str, nodes: list[str] | None = None, sizes=(2**20,), dtype: str = "fp32",
                     iters: int = 5, warmup: int = 1, chunk: int | None = None, cc: str = COLLECTIVE_CC,
                     on_row=None, timeout_base: float | None = None, port: int = PORT, op: str = "sum",
                     root: int = 0, dilation: float = 1.0, real_sizes: bool = False,
                     node_speed: float = 1.0) -> list[dict]:
    """Rows for `sizes`: bytes per GPU in the lab, or (`real_sizes`) the real system's, which the
    lab runs at scale x dilation. `dilation`: how many times slower emulated time runs than the
    real system's (data shrink less than rates), which projected sizes and times divide out."""
    run = plan_run(lab, algo, nodes, dtype=dtype, iters=iters, warmup=warmup, chunk=chunk, cc=cc,
                   timeout_base=timeout_base, port=port, op=op, root=root, dilation=dilation, node_speed=node_speed)
    itemsize, scale = DTYPES[dtype].itemsize, lab.plan.scale
    rows = []
    for size in sizes:
        lab_bytes = lab_size(size, scale, dilation, itemsize) if real_sizes else size
        rows.append(_one_size(lab, run, lab_bytes, size if real_sizes else None))
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
    nics = {len(lab.node(n).addrs) for n in names}
    n_nics = max(nics)
    if len(nics) != 1 or n_nics not in (1, n_gpus):
        raise EmuError(f"compute nodes have one NIC or one per GPU ({n_gpus}); these have {sorted(nics)}")
    if n_nics > 1 and algo != "alltoall":
        raise EmuError(f"{algo} runs over one NIC a node; on nodes with a NIC per GPU only alltoall "
                       "spreads over the rails (see docs/limitations.md)")
    profiles = {lab.topology.hardware(n).name for n in names}
    if len(profiles) != 1:
        raise EmuError(f"the nodes have different hardware ({', '.join(sorted(profiles))}); pick nodes of one kind")
    if algo == "hfreduce-nvlink" and n_gpus % 2:
        raise EmuError("hfreduce-nvlink pairs GPUs over NVLink: the nodes need an even GPU count")
    root, ranks = choices.get("root", 0), len(names) * n_gpus
    if algo in ROOTED and not 0 <= root < ranks:
        raise EmuError(f"root {root} is not a rank: the run has ranks 0..{ranks - 1} "
                       f"({len(names)} nodes x {n_gpus} GPUs)")
    return CollectiveRun(algo, tuple(names), n_gpus, nics=n_nics, hardware=profiles.pop(), **choices)


def _one_size(lab, run: CollectiveRun, size: int, real_size: int | None = None) -> dict:
    scale, chunk = lab.plan.scale, run.chunk or default_chunk(size, run.algo, run.ranks)
    timeout = peer_timeout(lab, size * run.gpus, run.timeout_base)     # one node's data
    peers = ",".join(f"{NICS.join(lab.node(n).addrs)}:{run.port}" for n in run.nodes)
    argv = command("collective") + [
        "--peers", peers, "--algo", run.algo, "--sizes", str(size), "--dtype", run.dtype, "--gpus", str(run.gpus),
        "--hardware", run.hardware, "--scale", repr(scale * run.node_speed), "--chunk", str(chunk),
        "--iters", str(run.iters), "--warmup", str(run.warmup),
        "--tos", str(lab.tos(TRAFFIC_CLASS[run.algo])), "--tag", lab.name, "--timeout", f"{timeout:.1f}",
        "--op", run.op, "--root", str(run.root)]
    argv += ["--cc", run.cc] if run.cc else []
    backstop = timeout * (run.warmup + run.iters + 2) + 60   # each rank ends itself within `timeout` of a loss
    with lab.launch() as agents:
        procs = [agents.start(name, argv + ["--rank", str(rank)]) for rank, name in enumerate(run.nodes)]
        outcomes, ended = agents.gather(list(zip(run.nodes, procs)), backstop)
        errors = agents.own_errors(outcomes, ended)
    if errors:
        raise EmuError(errors[0])
    results = [records[0] for records, _ in outcomes]
    ranks = run.ranks
    time_us = max(r["time_us"] for r in results)
    algbw = results[0]["size"] / (time_us * 1e-6) / 1e9
    busbw = algbw * bus_factor(run.algo, ranks)
    size, itemsize = results[0]["size"], DTYPES[run.dtype].itemsize
    proj_size = real_size or round(size / (scale * run.dilation) / itemsize) * itemsize
    bound = _bound(results, _link_rate(lab, run.nodes), time_us)
    return {"size": size, "count": results[0]["count"], "type": run.dtype,
            "redop": run.op if reduces(run.algo) else "none", "root": run.root if run.algo in ROOTED else -1,
            "time_us": time_us, "algbw": algbw, "busbw": busbw, "dilation": run.dilation,
            "proj_size": proj_size, "proj_count": proj_size // itemsize, "proj_time_us": time_us / run.dilation,
            "proj_algbw": to_real(algbw, scale), "proj_busbw": to_real(busbw, scale),
            "proj_bound_busbw": to_real(bound["bound_algbw"] * bus_factor(run.algo, ranks), scale),
            "wrong": sum(r["wrong"] for r in results),
            "nodes": len(run.nodes), "gpus": ranks, "algo": run.algo, "chunk": chunk,
            # each iteration from its first rank's start to its last rank's end (monotonic clock)
            "spans": [(min(s[0] for s in it), max(s[1] for s in it)) for it in zip(*(r["spans"] for r in results))],
            **bound}


def _link_rate(lab, names) -> float:
    """Payload bytes per second the slowest NIC link among the nodes can carry (its rate less
    the headers of full TCP segments)."""
    return lab.plan.slowest_bps(names) / 8 * TCP_PAYLOAD_SHARE


def _bound(results, link_Bps: float, time_us: float) -> dict:
    """The algorithm's own bound in this run: the busiest resource of the slowest node (bytes it
    really moved / its rate), network included; and how close the measured time came to it."""
    worst, limit = 0.0, ""
    for r in results:
        for name, p in r["pipes"].items():
            if p["bytes"] / p["rate"] > worst:
                worst, limit = p["bytes"] / p["rate"], name
    node_worst = worst                  # the nodes' hardware alone, without the network
    for r in results:
        for nic, net in enumerate(r["net"]):
            for direction in ("sent", "received"):
                if net[direction] / link_Bps > worst:
                    where = f"link{nic}" if len(r["net"]) > 1 else "link"
                    worst, limit = net[direction] / link_Bps, f"{where}.{direction}"
    size = results[0]["size"]
    bound_algbw = size / worst / 1e9 if worst else float("inf")
    return {"bound_algbw": bound_algbw, "bound_by": limit, "efficiency": worst / (time_us * 1e-6),
            "node_bound_algbw": size / node_worst / 1e9 if node_worst else float("inf")}
