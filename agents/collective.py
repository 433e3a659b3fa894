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

import numpy as np

from agents.errors import one_line_errors
from agents.gpu import Gpus, NodeModel, pattern, reference
from agents.hfreduce import hfreduce, hfreduce_broadcast, hfreduce_reduce
from agents.nccl import (_segments, alltoall, ring_allgather, ring_allreduce, ring_broadcast, ring_reduce,
                         ring_reduce_scatter, tree_allreduce_gpus)
from agents.nic import Mesh, endpoints, rails
from agents.pipeline import Ready
from cluster.collectives import COLLECTIVE_OF, OPS
from cluster import hardware
from cluster.node import DTYPES, NodeParams, add_node_arguments

# algorithm -> fn(gpus, mesh, chunk bytes, op ufunc, root global rank); each ignores what it does not take
ALGOS = {
    "hfreduce": lambda gpus, mesh, chunk, op=np.add, root=0: hfreduce(gpus, mesh, chunk, op=op),
    "hfreduce-nvlink": lambda gpus, mesh, chunk, op=np.add, root=0: hfreduce(gpus, mesh, chunk, nvlink=True, op=op),
    "ring": lambda gpus, mesh, chunk, op=np.add, root=0: ring_allreduce(gpus, mesh, chunk, op),
    "tree": lambda gpus, mesh, chunk, op=np.add, root=0: tree_allreduce_gpus(gpus, mesh, chunk, op),
    "alltoall": lambda gpus, mesh, chunk, op=np.add, root=0: alltoall(gpus, mesh, chunk),
    "allgather": lambda gpus, mesh, chunk, op=np.add, root=0: ring_allgather(gpus, mesh, chunk),
    "reducescatter": lambda gpus, mesh, chunk, op=np.add, root=0: ring_reduce_scatter(gpus, mesh, chunk, op),
    "ring-broadcast": lambda gpus, mesh, chunk, op=np.add, root=0: ring_broadcast(gpus, mesh, chunk, root),
    "ring-reduce": lambda gpus, mesh, chunk, op=np.add, root=0: ring_reduce(gpus, mesh, chunk, root, op),
    "hfreduce-broadcast": lambda gpus, mesh, chunk, op=np.add, root=0: hfreduce_broadcast(gpus, mesh, chunk, root),
    "hfreduce-reduce": lambda gpus, mesh, chunk, op=np.add, root=0: hfreduce_reduce(gpus, mesh, chunk, root, op),
}


def fill(gpus: Gpus, node: int, nodes: int, op: str = "sum") -> None:
    total = nodes * len(gpus)
    for g in range(len(gpus)):
        gpus.mem[g][:] = pattern(node * len(gpus) + g, total, gpus.count, gpus.dtype, op)


def wrong_elements(gpus: Gpus, node: int, nodes: int, algo: str = "hfreduce", op: str = "sum", root: int = 0) -> int:
    """Elements of this node's GPUs that differ from what the collective must leave there (for
    reduce-scatter, each rank's own segment; for reduce, the root's buffer)."""
    total, count, dtype, coll = nodes * len(gpus), gpus.count, gpus.dtype, COLLECTIVE_OF[algo]
    seg = _segments(count, total)
    block = count // total
    whole = slice(0, count)
    reduced = {}                           # the reduction of the whole buffer, once, if needed

    def input_of(source: int, part: slice):
        return lambda: pattern(source, total, count, dtype, op, part).astype(np.float64)

    def everyone(part: slice):
        if not reduced:
            reduced["all"] = reference(total, count, dtype, op)
        return lambda: reduced["all"][part]

    wrong = 0
    for g in range(len(gpus)):
        me, mem = node * len(gpus) + g, gpus.mem[g]
        # (elements of my buffer, what they must hold), the latter made only when compared
        if coll == "allgather":            # segment j: rank j's input
            checks = [(seg[j], input_of(j, seg[j])) for j in range(total)]
        elif coll == "reducescatter":
            checks = [(seg[me], everyone(seg[me]))]
        elif coll == "alltoall":           # block src of my buffer = block `me` of GPU src's input
            checks = [(slice(src * block, (src + 1) * block), input_of(src, slice(me * block, (me + 1) * block)))
                      for src in range(total)]
        elif coll == "broadcast":
            checks = [(whole, input_of(root, whole))]
        elif coll == "reduce":
            checks = [(whole, everyone(whole))] if me == root else []
        else:                              # allreduce
            checks = [(whole, everyone(whole))]
        wrong += sum(int((mem[sl].astype(np.float64) != value()).sum()) for sl, value in checks)
    return wrong


def run(args) -> None:
    peers, nics = endpoints(args.peers), [hosts for hosts, _ in rails(args.peers)]
    dtype = DTYPES[args.dtype]
    params = NodeParams.from_profile(hardware.load(args.hardware), args.gpus, len(nics[args.rank])).scaled(args.scale)
    Ready.limit = 2 * args.timeout      # the sockets' timeouts name the lost peer first
    mesh = Mesh(args.rank, peers, tos=args.tos, cc=args.cc, connect_timeout=args.timeout, io_timeout=args.timeout,
                nics=nics)
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
                    fill(gpus, args.rank, len(peers), args.op)
                    mesh.barrier()
                    start, began = time.perf_counter(), time.monotonic()
                    algo(gpus, mesh, args.chunk, OPS[args.op], args.root)
                    elapsed = time.perf_counter() - start
                    if it >= args.warmup:
                        times.append(elapsed)
                        spans.append((began, time.monotonic()))     # monotonic: comparable across nodes
                runs = args.warmup + args.iters
                net = [{k: (v - before[k]) // runs for k, v in now.items()}     # per NIC
                       for now, before in zip(mesh.counters(), net_before)]
                wrong = wrong_elements(gpus, args.rank, len(peers), args.algo, args.op, args.root)
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
    p.add_argument("--peers", required=True,
                   help="host:port of every rank, in rank order (host+host+...:port for one address per NIC)")
    p.add_argument("--algo", choices=sorted(ALGOS), required=True)
    p.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], required=True)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    p.add_argument("--op", choices=sorted(OPS), default="sum", help="reduction op")
    p.add_argument("--root", type=int, default=0, help="global rank of the root (broadcast, reduce)")
    p.add_argument("--gpus", type=int, default=8)
    add_node_arguments(p)
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
