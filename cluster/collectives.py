"""The collective algorithms a node can run, and the traffic class each one's bytes carry."""

ALLREDUCE = ("hfreduce", "hfreduce-nvlink", "ring", "tree")
ALLTOALL = "alltoall"
# HFReduce has its own SL in the paper (section VI-A); NCCL's algorithms share one.
TRAFFIC_CLASS = {"hfreduce": "hfreduce", "hfreduce-nvlink": "hfreduce", "ring": "nccl", "tree": "nccl",
                 ALLTOALL: "nccl"}


def default_chunk(size: int) -> int:
    """Pipeline chunk for a buffer of `size` bytes: ~16 chunks pipeline well and keep Python's
    per-chunk cost below the chunk's wire time."""
    return min(4 * 2**20, max(16 * 2**10, size // 16))
