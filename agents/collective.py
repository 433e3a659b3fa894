"""One node's side of a collective benchmark: its GPUs, its NIC, timed iterations, a check.

    python -m agents.collective --rank 0 --peers 198.18.0.0:6000,198.18.0.4:6000 \\
        --algo hfreduce --sizes 1048576,4194304 --dtype fp32 --scale 0.001 --tos 32

Prints one JSON line per size: size (bytes per GPU buffer), count, time_us (mean
over iterations, between barriers), wrong (elements of this node's GPUs that
differ from the true sum), the modelled resources' byte counters, and spans: (start, end) of
each measured iteration on the machine's monotonic clock, which every namespace shares.
"""
import argparse
import json
import os
import sys
import time

from agents.errors import one_line_errors
from agents.gpu import Gpus, NodeModel, pattern, reference_sum
from agents.hfreduce import hfreduce
from agents.nccl import _segments, alltoall, ring_allgather, ring_allreduce, ring_reduce_scatter, tree_allreduce_gpus
from agents.nic import Mesh, endpoints
from agents.pipeline import Ready
from cluster.node import DTYPES, NodeParams

ALGOS = {
    "hfreduce": lambda gpus, mesh, chunk: hfreduce(gpus, mesh, chunk),
    "hfreduce-nvlink": lambda gpus, mesh, chunk: hfreduce(gpus, mesh, chunk, nvlink=True),
    "ring": lambda gpus, mesh, chunk: ring_allreduce(gpus, mesh, chunk),
    "tree": lambda gpus, mesh, chunk: tree_allreduce_gpus(gpus, mesh, chunk),
    "alltoall": lambda gpus, mesh, chunk: alltoall(gpus, mesh, chunk),
    "allgather": lambda gpus, mesh, chunk: ring_allgather(gpus, mesh, chunk),
    "reducescatter": lambda gpus, mesh, chunk: ring_reduce_scatter(gpus, mesh, chunk),
}


def fill(gpus: Gpus, node: int, nodes: int) -> None:
    total = nodes * len(gpus)
    for g in range(len(gpus)):
        gpus.mem[g][:] = pattern(node * len(gpus) + g, total, gpus.count, gpus.dtype)


def wrong_elements(gpus: Gpus, node: int, nodes: int, algo: str = "hfreduce") -> int:
    """Elements of this node's GPUs that differ from what the collective must leave there."""
    total = nodes * len(gpus)
    if algo in ("allgather", "reducescatter"):      # segment j: rank j's input, or the sum of everyone's
        seg = _segments(gpus.count, total)
        expected = reference_sum(total, gpus.count, gpus.dtype) if algo == "reducescatter" else None
        wrong = 0
        for g in range(len(gpus)):
            me = node * len(gpus) + g
            for j in ([me] if algo == "reducescatter" else range(total)):
                want = expected[seg[j]] if expected is not None else pattern(j, total, gpus.count, gpus.dtype)[seg[j]]
                wrong += int((gpus.mem[g][seg[j]].astype("float64") != want).sum())
        return wrong
    if algo != "alltoall":
        expected = reference_sum(total, gpus.count, gpus.dtype)
        return int(sum((gpus.mem[g].astype("float64") != expected).sum() for g in range(len(gpus))))
    block = gpus.count // total
    wrong = 0
    for g in range(len(gpus)):
        me = node * len(gpus) + g
        for src in range(total):   # block src of my buffer = block `me` of GPU src's input
            sent = pattern(src, total, gpus.count, gpus.dtype)[me * block:(me + 1) * block]
            wrong += int((gpus.mem[g][src * block:(src + 1) * block] != sent).sum())
    return wrong


def run(args) -> None:
    peers = endpoints(args.peers)
    dtype = DTYPES[args.dtype]
    params = NodeParams(gpus=args.gpus).scaled(args.scale)
    Ready.limit = 2 * args.timeout      # the sockets' timeouts name the lost peer first
    mesh = Mesh(args.rank, peers, tos=args.tos, cc=args.cc, connect_timeout=args.timeout, io_timeout=args.timeout)
    algo = ALGOS[args.algo]
    try:
        for size in args.sizes:
            count = max(1, size // dtype.itemsize)
            model = NodeModel(params)
            gpus = Gpus(f"emu-{args.tag}-r{args.rank}-{os.getpid()}", count, dtype, model=model)
            try:
                times, spans = [], []
                net_before = mesh.counters()
                for it in range(args.warmup + args.iters):
                    fill(gpus, args.rank, len(peers))
                    mesh.barrier()
                    start, began = time.perf_counter(), time.monotonic()
                    algo(gpus, mesh, args.chunk)
                    elapsed = time.perf_counter() - start
                    if it >= args.warmup:
                        times.append(elapsed)
                        spans.append((began, time.monotonic()))     # monotonic: comparable across nodes
                runs = args.warmup + args.iters
                net = {k: (v - net_before[k]) // runs for k, v in mesh.counters().items()}
                wrong = wrong_elements(gpus, args.rank, len(peers), args.algo)
                # Per-iteration bytes through every modelled resource and the network, with their
                # rates: the controller turns them into this algorithm's own lower bound on time.
                row = {"rank": args.rank, "size": count * dtype.itemsize, "count": count, "type": args.dtype,
                       "time_us": 1e6 * sum(times) / len(times), "wrong": wrong, "net": net, "spans": spans,
                       "pipes": {r.name: {"bytes": r.bytes // runs, "rate": r.bound_rate()} for r in model.resources()}}
                print(json.dumps(row), flush=True)
            finally:
                gpus.close()
        mesh.barrier()
    finally:
        mesh.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="agents.collective", description=__doc__.splitlines()[0])
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--peers", required=True, help="host:port of every rank, in rank order")
    p.add_argument("--algo", choices=sorted(ALGOS), required=True)
    p.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], required=True)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    p.add_argument("--gpus", type=int, default=8)
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every modelled bandwidth")
    p.add_argument("--chunk", type=int, default=256 * 1024, help="pipeline chunk, bytes")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--tos", type=int, default=0)
    p.add_argument("--cc", default=None)
    p.add_argument("--tag", default="bench")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds without progress from a peer after which it counts as lost")
    args = p.parse_args(argv)
    return one_line_errors(lambda: run(args), f"rank {args.rank}")


if __name__ == "__main__":
    sys.exit(main())
