"""The collective algorithms a node can run, and the traffic class each one's bytes carry."""

ALLREDUCE = ("hfreduce", "hfreduce-nvlink", "ring", "tree")
ALLTOALL = "alltoall"
# HFReduce has its own SL in the paper (section VI-A); NCCL's algorithms share one.
TRAFFIC_CLASS = {"hfreduce": "hfreduce", "hfreduce-nvlink": "hfreduce", "ring": "nccl", "tree": "nccl",
                 ALLTOALL: "nccl"}
