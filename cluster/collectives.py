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


RING_PHASES = ("ring", ALLGATHER, REDUCESCATTER)      # each step moves one rank's segment, size/ranks


def default_chunk(size: int, algo: str = "hfreduce", ranks: int = 1) -> int:
    """Pipeline chunk for a buffer of `size` bytes: ~16 chunks per buffer pipeline well and keep
    Python's per-chunk cost below the chunk's wire time; a ring step moves one segment, cut in
    8 (NCCL's steps per slice) so the GPU->NIC copy, the wire and the NIC->GPU copy overlap."""
    if algo in RING_PHASES:
        return min(4 * 2**20, max(4 * 2**10, size // ranks // 8))
    return min(4 * 2**20, max(16 * 2**10, size // 16))
