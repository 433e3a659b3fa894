"""One node's hardware checks for the validator (paper section VII-B).

    python -m agents.validate gpu-memory --gpus 8 --bytes 4194304 --scale 0.001

gpu-memory: every byte of each emulated GPU's memory written with the patterns 0x00, 0xFF, 0x55,
0xAA and its own address bytes, read back through host memory (D2H, charged to the node's
model) and compared. Prints one JSON line: bytes per GPU, and per GPU the bytes read back wrong
(or, for a GPU that does not answer, the error).
"""
import argparse
import json
import os
import sys

import numpy as np

from agents.errors import one_line_errors
from agents.faults import GpuLost
from agents.gpu import Gpus, NodeModel
from cluster.node import NodeParams

PATTERNS = (0x00, 0xFF, 0x55, 0xAA)


def gpu_memory(args) -> dict:
    gpus = Gpus(f"emu-validate-{args.tag}-{os.getpid()}", args.bytes, np.dtype(np.uint8),
                NodeParams(gpus=args.gpus).scaled(args.scale))
    try:
        host = np.empty(args.bytes, np.uint8)
        address = (np.arange(args.bytes, dtype=np.int64) % 251).astype(np.uint8)     # not a power of two
        bad = []
        for g in range(len(gpus)):
            wrong = 0
            try:
                for pattern in PATTERNS + (None,):
                    gpus.mem[g][:] = address if pattern is None else pattern
                    NodeModel.settle(gpus.d2h(g, slice(0, args.bytes), host))
                    wrong += int(np.count_nonzero(host != gpus.mem[g]))
            except GpuLost as e:
                bad.append({"gpu": g, "bad_bytes": None, "error": str(e)})
                continue
            bad.append({"gpu": g, "bad_bytes": wrong})
        return {"check": "gpu-memory", "bytes": args.bytes, "bytes_read": args.bytes * (len(PATTERNS) + 1),
                "gpus": bad}
    finally:
        gpus.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="agents.validate", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="check", required=True)
    mem = sub.add_parser("gpu-memory")
    mem.add_argument("--gpus", type=int, default=8)
    mem.add_argument("--bytes", type=int, default=4 * 2**20, help="per GPU")
    mem.add_argument("--scale", type=float, default=1.0)
    mem.add_argument("--tag", default="validate")
    args = p.parse_args(argv)
    return one_line_errors(lambda: print(json.dumps(gpu_memory(args)), flush=True), "validate")


if __name__ == "__main__":
    sys.exit(main())
