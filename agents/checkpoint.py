"""The checkpoint manager (paper section VII-A), run on a compute node against 3FS-style storage.

    python -m agents.checkpoint --meta H:P --mgmtd H:P --storage H:P,... --gpus 8 --state-bytes 4194304 --saves 2

Each GPU's state (parameters and optimizer moments, as named tensors) is copied
to host memory (D2H of all GPUs at once, charged to the node's bandwidth model),
then split into chunks and written with batch writes. Training does not run
during a save here: what the paper overlaps, this measures end to end. Each
tensor is recorded in an index with its offset, length and CRC32, stored as a
file of its own. Loading reads the index, batch-reads the chunks, copies every
tensor back to its GPU (H2D) and verifies it. Saves repeat every --period seconds.
Prints one JSON line: per save and for the load, seconds and bytes per second.
"""
import argparse
import asyncio
import json
import os
import secrets
import sys
import time
import zlib

import numpy as np

from agents.errors import one_line_errors
from agents.fs3.client import Client
from agents.fluid import wait_all
from agents.gpu import Gpus
from cluster.node import DTYPES, add_node_arguments, node_of

TENSORS = (("param", 0.25), ("grad", 0.25), ("adam_m", 0.25), ("adam_v", 0.25))   # shares of a GPU's state


def tensor_slices(count: int) -> list[tuple[str, slice]]:
    out, start = [], 0
    for i, (name, share) in enumerate(TENSORS):
        stop = count if i == len(TENSORS) - 1 else start + int(count * share)
        out.append((name, slice(start, stop)))
        start = stop
    return out


def snapshot_to_host(gpus: Gpus) -> np.ndarray:
    """D2H of every GPU's state, all GPUs at once, into one host buffer."""
    host = np.empty(len(gpus) * gpus.count, gpus.dtype)
    whole = slice(0, gpus.count)
    wait_all([gpus.d2h(g, whole, host[g * gpus.count:(g + 1) * gpus.count]) for g in range(len(gpus))])
    return host


async def write_checkpoint(client: Client, host: np.ndarray, tensors: list[dict], meta: dict, name: str,
                           chunk_size: int, stripe: int) -> int:
    """Write a host buffer as file `name` in chunks (batch writes) and its index (each tensor's
    offset, length and CRC32, and `meta`) as `name`.index; returns the bytes written."""
    raw = host.view(np.uint8)
    for t in tensors:
        t["crc"] = zlib.crc32(raw[t["offset"]:t["offset"] + t["bytes"]])
    layout = await client.create(name, raw.nbytes, chunk_size, stripe)
    await client.batch_write(layout, [(i, bytes(raw[i * chunk_size:(i + 1) * chunk_size]))
                                      for i in range(layout.chunks())])
    blob = json.dumps({**meta, "tensors": tensors}).encode()
    index_layout = await client.create(name + ".index", len(blob), max(len(blob), 1), 1)
    await client.batch_write(index_layout, [(0, blob)])
    return raw.nbytes


async def read_checkpoint(client: Client, name: str) -> tuple[bytes, dict, list[dict]]:
    """(the file's bytes, its index, the tensors whose CRC32 does not match)."""
    index_layout = await client.open(name + ".index")
    index = json.loads((await client.batch_read(index_layout, [0]))[0])
    layout = await client.open(name)
    data = b"".join(await client.batch_read(layout, list(range(layout.chunks()))))
    bad = [t for t in index["tensors"] if zlib.crc32(data[t["offset"]:t["offset"] + t["bytes"]]) != t["crc"]]
    return data, index, bad


async def save(client: Client, gpus: Gpus, name: str, chunk_size: int, stripe: int) -> dict:
    start = time.monotonic()
    host = snapshot_to_host(gpus)
    tensors = [{"gpu": g, "tensor": tensor, "offset": (g * gpus.count + sl.start) * gpus.dtype.itemsize,
                "bytes": (sl.stop - sl.start) * gpus.dtype.itemsize}
               for g in range(len(gpus)) for tensor, sl in tensor_slices(gpus.count)]
    nbytes = await write_checkpoint(client, host, tensors, {"count": gpus.count, "dtype": str(gpus.dtype),
                                                            "gpus": len(gpus)}, name, chunk_size, stripe)
    seconds = time.monotonic() - start
    return {"name": name, "bytes": nbytes, "seconds": seconds, "bps": nbytes * 8 / seconds}


async def load(client: Client, gpus: Gpus, name: str) -> dict:
    start = time.monotonic()
    data, index, bad = await read_checkpoint(client, name)
    host = np.frombuffer(data, dtype=gpus.dtype)
    wait_all([gpus.h2d(g, slice(0, gpus.count), host[g * gpus.count:(g + 1) * gpus.count]) for g in range(len(gpus))])
    seconds = time.monotonic() - start
    return {"name": name, "bytes": len(data), "seconds": seconds, "bps": len(data) * 8 / seconds,
            "tensors": len(index["tensors"]), "bad_tensors": len(bad)}


async def run(args) -> dict:
    client = await Client.from_args(args, tos=args.tos, cc=args.cc, timeout=args.timeout,
                                    rts_limit=args.rts_limit).start()
    dtype = DTYPES[args.dtype]
    # A name of this process's own: two checkpoints in one lab (or a file someone made) never collide.
    gpus = Gpus(f"emu-ckpt-{args.tag}-{os.getpid()}-{secrets.token_hex(4)}", args.state_bytes // dtype.itemsize, dtype,
                node_of(args))
    try:
        rng = np.random.default_rng(1)
        for g in range(len(gpus)):
            gpus.mem[g][:] = rng.standard_normal(gpus.count).astype(dtype)
        saves = []
        for k in range(args.saves):
            if k:
                time.sleep(max(0.0, args.period - saves[-1]["seconds"]))
                for g in range(len(gpus)):       # a training step changes the state between saves
                    gpus.mem[g][: gpus.count // 4] += dtype.type(1)
            saves.append(await save(client, gpus, f"{args.tag}-step{k}", args.chunk_size, args.stripe))
        expected = [m.copy() for m in gpus.mem]
        for m in gpus.mem:                       # lose the GPU state, as a failed job would
            m[:] = 0
        loaded = await load(client, gpus, saves[-1]["name"])
        loaded["verified"] = loaded["bad_tensors"] == 0 and all(
            np.array_equal(a.view(np.uint8), b.view(np.uint8)) for a, b in zip(gpus.mem, expected))
        return {"saves": saves, "load": loaded}
    finally:
        gpus.close()
        client.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="agents.checkpoint", description=__doc__.splitlines()[0])
    Client.add_arguments(p)
    p.add_argument("--gpus", type=int, default=8)
    add_node_arguments(p)
    p.add_argument("--state-bytes", type=int, default=4 * 2**20, help="per GPU")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--saves", type=int, default=2)
    p.add_argument("--period", type=float, default=1.0, help="seconds between saves")
    p.add_argument("--chunk-size", type=int, default=256 * 1024)
    p.add_argument("--stripe", type=int, default=64)
    p.add_argument("--rts-limit", type=int, default=4)
    p.add_argument("--tos", type=int, default=0)
    p.add_argument("--cc", default=None)
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds without an answer after which a storage service counts as lost")
    p.add_argument("--tag", default="ckpt")
    args = p.parse_args(argv)
    return one_line_errors(lambda: print(json.dumps(asyncio.run(run(args))), flush=True), "checkpoint")


if __name__ == "__main__":
    sys.exit(main())
