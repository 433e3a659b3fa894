"""One node's hardware checks for the validator (paper section VII-B).

    python -m agents.validate gpu-memory --gpus 8 --bytes 4194304 --scale 0.001
    python -m agents.validate host-memory --bytes 8388608 --copies 4 --scale 0.001

gpu-memory: every byte of each emulated GPU's memory written with the patterns 0x00, 0xFF, 0x55,
0xAA and its own address bytes, read back through host memory (D2H, charged to the node's
model) and compared. Prints one JSON line: bytes per GPU, and per GPU the bytes read back wrong
(or, for a GPU that does not answer, the error).

host-memory: buffers copied in host memory, each copy charged to the node model's host memory
(its rate times what an injected fault leaves it); prints the rate achieved and the model's.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

from agents.errors import one_line_errors
from agents.faults import GpuLost
from agents.gpu import Gpus, NodeModel
from cluster.node import add_node_arguments, node_of

PATTERNS = (0x00, 0xFF, 0x55, 0xAA)


def gpu_memory(args) -> dict:
    gpus = Gpus(f"emu-validate-{args.tag}-{os.getpid()}", args.bytes, np.dtype(np.uint8),
                node_of(args))
    try:
        host = np.empty(args.bytes, np.uint8)
        address = (np.arange(args.bytes, dtype=np.int64) % 251).astype(np.uint8)     # not a power of two
        bad = []
        for g in range(len(gpus)):
            wrong = 0
            try:
                for pattern in PATTERNS + (None,):
                    gpus.mem[g][:] = address if pattern is None else pattern
                    gpus.d2h(g, slice(0, args.bytes), host).wait()
                    wrong += int(np.count_nonzero(host != gpus.mem[g]))
            except GpuLost as e:
                bad.append({"gpu": g, "bad_bytes": None, "error": str(e)})
                continue
            bad.append({"gpu": g, "bad_bytes": wrong})
        return {"check": "gpu-memory", "bytes": args.bytes, "bytes_read": args.bytes * (len(PATTERNS) + 1),
                "gpus": bad}
    finally:
        gpus.close()


def host_memory(args) -> dict:
    """Host memory through the node's model: `--bytes` copied `--copies` times, each charged to
    host memory; the rate the copies took against the model's (a degraded memory, or a machine too
    busy to emulate the node, shows here)."""
    params = node_of(args)
    model = NodeModel(params)
    src, dst = np.ones(args.bytes, np.uint8), np.empty(args.bytes, np.uint8)
    dst[:] = 0                                   # touched: no page faults inside the timing
    start = time.monotonic()
    for _ in range(args.copies):
        np.copyto(dst, src)
        model.charge_mem(2 * args.bytes).wait()      # a copy reads and writes once each
    seconds = time.monotonic() - start
    return {"check": "host-memory", "bytes": 2 * args.bytes * args.copies, "seconds": seconds,
            "bps": 2 * args.bytes * args.copies * 8 / seconds, "model_bps": params.host_mem_bps * 8}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="agents.validate", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="check", required=True)
    mem = sub.add_parser("gpu-memory")
    mem.add_argument("--gpus", type=int, default=8)
    add_node_arguments(mem)
    mem.add_argument("--bytes", type=int, default=4 * 2**20, help="per GPU")
    mem.add_argument("--scale", type=float, default=1.0)
    mem.add_argument("--tag", default="validate")
    mem = sub.add_parser("host-memory")
    mem.add_argument("--gpus", type=int, default=8)
    add_node_arguments(mem)
    mem.add_argument("--bytes", type=int, default=8 * 2**20, help="per copy")
    mem.add_argument("--copies", type=int, default=4)
    mem.add_argument("--scale", type=float, default=1.0)
    args = p.parse_args(argv)
    check = {"gpu-memory": gpu_memory, "host-memory": host_memory}[args.check]
    return one_line_errors(lambda: print(json.dumps(check(args)), flush=True), "validate")


if __name__ == "__main__":
    sys.exit(main())
