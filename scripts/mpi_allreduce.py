#!/usr/bin/env python3
"""An MPI program nobody on this project wrote the collective of: Open MPI's MPI_Allreduce (through
mpi4py) on float32 buffers, timed as nccl-tests times (the slowest rank's mean over --iters after
--warmup), each result checked exactly (rank r contributes r + 1 everywhere).

Run under emu mpirun; rank 0 prints one JSON line a size:
    emu mpirun --lab LAB -- python3 scripts/mpi_allreduce.py --sizes 1048576,4194304
"""
import argparse
import json
import time

import numpy as np
from mpi4py import MPI


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1048576", help="bytes per rank, a comma list")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    ranks = comm.size
    expected = np.float32(ranks * (ranks + 1) / 2)
    hosts = comm.gather(MPI.Get_processor_name())
    for size in (int(s) for s in args.sizes.split(",")):
        send = np.full(size // 4, comm.rank + 1, dtype=np.float32)
        recv = np.empty_like(send)
        wrong, spent = 0, 0.0
        for i in range(args.warmup + args.iters):
            recv.fill(0)
            comm.Barrier()
            began = time.perf_counter()
            comm.Allreduce(send, recv, op=MPI.SUM)
            took = time.perf_counter() - began
            if i >= args.warmup:
                spent += took
            wrong += int(np.count_nonzero(recv != expected))
        slowest = comm.reduce(spent / max(args.iters, 1), op=MPI.MAX)
        wrong = comm.reduce(wrong, op=MPI.SUM)
        if comm.rank == 0:
            print(json.dumps({"size": send.nbytes, "ranks": ranks, "time_us": slowest * 1e6, "wrong": wrong,
                              "hosts": sorted(set(hosts))}), flush=True)


if __name__ == "__main__":
    main()
