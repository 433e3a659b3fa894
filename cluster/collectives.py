"""The collective algorithms a node can run, and the traffic class each one's bytes carry."""

ALLREDUCE = ("hfreduce", "hfreduce-nvlink", "ring", "tree")
ALLTOALL = "alltoall"
ALLGATHER, REDUCESCATTER = "allgather", "reducescatter"      # NCCL's ring, one phase each
# HFReduce has its own SL in the paper (section VI-A); NCCL's algorithms share one.
TRAFFIC_CLASS = {"hfreduce": "hfreduce", "hfreduce-nvlink": "hfreduce", "ring": "nccl", "tree": "nccl",
                 ALLTOALL: "nccl", ALLGATHER: "nccl", REDUCESCATTER: "nccl"}


def bus_factor(algo: str, ranks: int) -> float:
    """nccl-tests' busbw / algbw: what each rank's links carry per byte of the buffer."""
    return (2 if algo in ALLREDUCE else 1) * (ranks - 1) / ranks


def redop(algo: str) -> str:
    return "none" if algo in (ALLTOALL, ALLGATHER) else "sum"


def default_chunk(size: int) -> int:
    """Pipeline chunk for a buffer of `size` bytes: ~16 chunks pipeline well and keep Python's
    per-chunk cost below the chunk's wire time."""
    return min(4 * 2**20, max(16 * 2**10, size // 16))
