"""The collectives a node can run (nccl-tests' set), the algorithms behind them, and the traffic
class each algorithm's bytes carry."""
import numpy as np

ALLREDUCE = ("hfreduce", "hfreduce-nvlink", "ring", "tree")
ALLTOALL = "alltoall"
ALLGATHER, REDUCESCATTER = "allgather", "reducescatter"      # NCCL's ring, one phase each
BROADCAST, REDUCE = "ring-broadcast", "ring-reduce"          # NCCL's ring as a pipelined chain, with a root
HF_BROADCAST, HF_REDUCE = "hfreduce-broadcast", "hfreduce-reduce"     # HFReduce's: through host memory
# HFReduce has its own SL in the paper (section VI-A); NCCL's algorithms share one.
TRAFFIC_CLASS = {"hfreduce": "hfreduce", "hfreduce-nvlink": "hfreduce", "ring": "nccl", "tree": "nccl",
                 ALLTOALL: "nccl", ALLGATHER: "nccl", REDUCESCATTER: "nccl", BROADCAST: "nccl", REDUCE: "nccl",
                 HF_BROADCAST: "hfreduce", HF_REDUCE: "hfreduce"}
# collective (as nccl-tests names it) -> its algorithms, the first the default
COLLECTIVES = {"allreduce": ALLREDUCE, "allgather": (ALLGATHER,), "reducescatter": (REDUCESCATTER,),
               "broadcast": (BROADCAST, HF_BROADCAST), "reduce": (REDUCE, HF_REDUCE), "alltoall": (ALLTOALL,)}
COLLECTIVE_OF = {algo: coll for coll, algos in COLLECTIVES.items() for algo in algos}
ROOTED = (BROADCAST, REDUCE, HF_BROADCAST, HF_REDUCE)
# nccl-tests' reduction ops (ncclSum, ncclProd, ncclMax, ncclMin) as numpy ufuncs
OPS = {"sum": np.add, "prod": np.multiply, "max": np.maximum, "min": np.minimum}


def bus_factor(algo: str, ranks: int) -> float:
    """nccl-tests' busbw / algbw: what each rank's links carry per byte of the buffer."""
    if algo in ROOTED:
        return 1.0
    return (2 if algo in ALLREDUCE else 1) * (ranks - 1) / ranks


def reduces(algo: str) -> bool:
    """Whether the algorithm combines values (takes a reduction op) or only moves them."""
    return COLLECTIVE_OF[algo] not in ("alltoall", "allgather", "broadcast")


# TCP congestion control of collective traffic. InfiniBand's credit-based links keep every lane
# backlogged; loss-based cubic is the closer stand-in. The kernel's default here, BBR, paces
# below the bottleneck: with the node model 2000x faster, so that only the links remain, a tree
# allreduce on 4 nodes reached 87% of its links' payload rate with BBR and 97% with cubic.
COLLECTIVE_CC = "cubic"
RING_PHASES = ("ring", ALLGATHER, REDUCESCATTER)      # each step moves one rank's segment, size/ranks


def default_chunk(size: int, algo: str = "hfreduce", ranks: int = 1) -> int:
    """Pipeline chunk for a buffer of `size` bytes, by measurement (docs/results.md, "Paper check"): the
    more chunks, the shorter a pipeline's fill and drain, down to a floor where Python's cost
    per chunk shows. HFReduce and the tree: 256 chunks (HFReduce with NVLink on 4 nodes at
    dilation 300: 77% of its bound with 64, 86% with 128, 92% with 256, 87% with 512), the tree's at
    least 32 KiB, HFReduce's at least 128 KiB (4 nodes, dilation 1, 1 and 4 MiB: the tree reached
    88 and 97% with 32 KiB chunks, 65 and 88% with 128 KiB; HFReduce 76 and 76% with 32 KiB, 91
    and 99% with 128 KiB; HFReduce with NVLink 40 and 43%, 61 and 78%).
    A ring step moves one segment, cut in 8 (NCCL's steps per slice) so the GPU->NIC copy, the
    wire and the NIC->GPU copy overlap. NCCL's broadcast and reduce are chains of ranks - 1 hops
    to fill (a chain of n chunks over h hops reaches at most n / (n + h - 1) of its bound):
    24 chunks per rank, at most 1024 in all, past which every rank's Python cost per chunk
    shows (186 MiB at dilation 300, cubic: on 4 nodes 16, 24, 32 per rank gave 94, 95, 95%;
    on 8 nodes 1024, 1536, 2048 chunks gave 90, 88, 82%)."""
    if algo in (BROADCAST, REDUCE):
        return _within(size // min(24 * ranks, 1024), 4 * 2**10)
    if algo in RING_PHASES:
        return _within(size // ranks // 8, 4 * 2**10)
    return _within(size // 256, 32 * 2**10 if algo == "tree" else 128 * 2**10)


def _within(chunk: int, floor: int) -> int:
    return min(4 * 2**20, max(floor, chunk))


def lab_size(real: int, scale: float, dilation: float, itemsize: int) -> int:
    """The lab's buffer for `real` bytes per GPU: scale x dilation of it, whole elements, at least one."""
    return max(1, int(real * scale * dilation) // itemsize) * itemsize
