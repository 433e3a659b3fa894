"""`emu bench allreduce|alltoall`: run a collective across compute nodes of a lab, nccl-tests style.

Starts agents/collective.py in every chosen node (one process per node playing
its GPUs), collects each rank's timing and check, and turns them into rows:
time = the slowest rank's mean, algbw = size / time, busbw = algbw * 2(n-1)/n for
allreduce and (n-1)/n for all-to-all, with n the number of GPUs (as nccl-tests), each also projected to real scale
(divided by the lab's scale). GB/s are 1e9 bytes per second.
"""
from cluster.collectives import ALLREDUCE, TRAFFIC_CLASS
from emu.errors import EmuError
from emu.experiments.agents import Agents, command, peer_timeout

ALGOS = ALLREDUCE
PORT = 6000
SIZE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}


def parse_sizes(text: str) -> list[int]:
    """'1M:256M' -> 1M, 2M, 4M, ... 256M (doubling, as nccl-tests -b/-e/-f 2); '4M,64M' -> those two."""
    def one(s):
        s = s.strip().upper().removesuffix("B")
        unit = s[-1] if s and s[-1] in SIZE_UNITS else ""
        try:
            value = float(s[: len(s) - len(unit)]) * SIZE_UNITS[unit]
        except ValueError:
            raise EmuError(f"bad size {s!r}: use bytes with an optional K, M or G") from None
        if value < 1:
            raise EmuError(f"bad size {s!r}: must be at least one byte")
        return int(value)
    if ":" in text:
        lo, hi = (one(x) for x in text.split(":", 1))
        if hi < lo:
            raise EmuError(f"bad size range {text!r}: the end is below the start")
        sizes = []
        while lo <= hi:
            sizes.append(lo)
            lo *= 2
        return sizes
    return [one(x) for x in text.split(",")]


def default_chunk(size: int) -> int:
    # ~16 chunks per buffer pipelines well and keeps Python's per-chunk cost below the chunk's wire time.
    return min(4 * 2**20, max(16 * 2**10, size // 16))


def bench_collective(lab, algo: str, nodes: list[str] | None = None, sizes=(2**20,), dtype: str = "fp32",
                    iters: int = 5, warmup: int = 1, chunk: int | None = None, cc: str | None = None,
                    on_row=None, timeout_base: float | None = None) -> list[dict]:
    if algo not in TRAFFIC_CLASS:
        raise EmuError(f"unknown algorithm {algo!r} (one of {', '.join(TRAFFIC_CLASS)})")
    topo = lab.topology
    names = nodes or [n.name for n in lab.nodes("compute")]
    if not names:
        raise EmuError(f"lab {lab.name!r} has no compute nodes")
    for name in names:
        if lab.node(name).kind != "compute":
            raise EmuError(f"node {name!r} is a {lab.node(name).kind} node, not a compute node")
    gpus = {topo.node(n).attrs["gpus"] for n in names}
    if len(gpus) != 1:
        raise EmuError(f"the nodes have different GPU counts ({sorted(gpus)}); pick nodes with equal counts")
    n_gpus = gpus.pop()
    if algo == "hfreduce-nvlink" and n_gpus % 2:
        raise EmuError("hfreduce-nvlink pairs GPUs over NVLink: the nodes need an even GPU count")
    peers = ",".join(f"{lab.node(n).addr}:{PORT}" for n in names)
    rows = []
    for size in sizes:
        timeout = peer_timeout(lab, size * n_gpus, timeout_base)     # one node's data
        rows.append(_one_size(lab, algo, names, peers, size, dtype, iters, warmup, chunk or default_chunk(size),
                              cc, n_gpus, topo.scale, timeout))
        if on_row:
            on_row(rows[-1])
    return rows


def _one_size(lab, algo, names, peers, size, dtype, iters, warmup, chunk, cc, n_gpus, scale, timeout) -> dict:
    argv = command("collective") + [
        "--peers", peers, "--algo", algo, "--sizes", str(size), "--dtype", dtype, "--gpus", str(n_gpus),
        "--scale", repr(scale), "--chunk", str(chunk), "--iters", str(iters), "--warmup", str(warmup),
        "--tos", str(lab.tos(TRAFFIC_CLASS[algo])), "--tag", lab.name, "--timeout", f"{timeout:.1f}"]
    argv += ["--cc", cc] if cc else []
    with Agents(lab) as agents:
        procs = [agents.start(name, argv + ["--rank", str(rank)]) for rank, name in enumerate(names)]
        # Each rank ends itself within `timeout` of losing a peer; this bound is only the backstop.
        results = [agents.result(name, proc, timeout * (warmup + iters + 2) + 60) for name, proc in zip(names, procs)]
    ranks = len(names) * n_gpus
    time_us = max(r["time_us"] for r in results)
    algbw = results[0]["size"] / (time_us * 1e-6) / 1e9
    factor = (ranks - 1) / ranks if algo == "alltoall" else 2 * (ranks - 1) / ranks
    busbw = algbw * factor
    return {"size": results[0]["size"], "count": results[0]["count"], "type": dtype, "redop": "none" if algo == "alltoall" else "sum",
            "time_us": time_us, "algbw": algbw, "busbw": busbw, "proj_algbw": algbw / scale,
            "proj_busbw": busbw / scale, "wrong": sum(r["wrong"] for r in results),
            "nodes": len(names), "gpus": ranks, "algo": algo, "chunk": chunk,
            **_bound(results, _link_rate(lab, names), time_us)}


def _link_rate(lab, names) -> float:
    """Bytes per second of the slowest NIC link among the nodes."""
    topo = lab.topology
    return min(topo.emulated_rate(topo.link(n, peer)) for n in names for peer in topo.graph[n]) / 8


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


HEADER = ("#  size(B)    count   type  redop    time(us)  algbw(GB/s)  busbw(GB/s)  "
          "proj_algbw  proj_busbw  #wrong")


def format_row(r: dict) -> str:
    return (f"{r['size']:>10} {r['count']:>8} {r['type']:>6} {r['redop']:>6} {r['time_us']:>11.1f} "
            f"{r['algbw']:>12.4f} {r['busbw']:>12.4f} {r['proj_algbw']:>11.2f} {r['proj_busbw']:>11.2f} "
            f"{r['wrong']:>7}")
