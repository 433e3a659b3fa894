"""Client-side storage benchmarks, run inside a client node; one JSON line of results.

    python -m agents.fs3.bench incast --meta H:P --mgmtd H:P --storage H:P,... --senders 8 --rts on
    python -m agents.fs3.bench read --meta H:P --mgmtd H:P --storage H:P,... --file NAME --seconds 5

`incast` writes a file striped over the first N storage services (one chain each),
then reads every chunk at once, `--rounds` times: all N services answer this one
client together. `read` re-reads an existing file in a loop, in batches of the whole file, or
with `--depth N` reads always outstanding (aggregate throughput when many clients run it at
once); `write` creates and fills such a file (with `--progress N`, a record {"acked": n} every
N acknowledged chunks before its result);
`node-read` fills every chain of one storage node and reads them back for a while (the
validator's storage stress); `status` prints the cluster manager's view.
"""
import argparse
import asyncio
import itertools
import json
import os
import signal
import sys
import time

from agents.errors import one_line_errors
from agents.fs3.client import Client
from agents.traffic import GO_WAIT_S


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


async def incast(args, client: Client) -> dict:
    size = args.senders * args.chunks_per_sender * args.chunk_size
    layout = await client.create(f"incast-{args.senders}-{os.getpid()}", size, args.chunk_size,
                                 stripe=args.senders, offset=0)
    blobs = [os.urandom(args.chunk_size) for _ in range(layout.chunks())]
    await client.batch_write(layout, list(enumerate(blobs)))
    client.latencies.clear()
    start = time.monotonic()
    for _ in range(args.rounds):
        got = await client.batch_read(layout, list(range(layout.chunks())))
        if got != blobs:
            raise SystemExit("incast read returned bytes that were not written")
    seconds = time.monotonic() - start
    total = size * args.rounds
    return {"senders": args.senders, "rts": client.rts, "rts_limit": client.rts_limit, "bytes": total,
            "seconds": seconds, "goodput_bps": total * 8 / seconds,
            "p50_ms": 1e3 * percentile(client.latencies, 0.5), "p99_ms": 1e3 * percentile(client.latencies, 0.99),
            "max_transmitting": client.max_transmitting, "retries": client.retries}


async def write_file(args, client: Client) -> dict:
    layout = await client.create(args.file, args.chunks * args.chunk_size, args.chunk_size, stripe=args.stripe)
    blobs = [os.urandom(args.chunk_size) for _ in range(layout.chunks())]
    acked = 0

    def progress():           # a record every --progress acknowledged chunks: where the batch is
        nonlocal acked
        acked += 1
        if args.progress and acked % args.progress == 0 and acked < len(blobs):
            print(json.dumps({"acked": acked}), flush=True)
    start = time.monotonic()
    await client.batch_write(layout, list(enumerate(blobs)), progress)
    seconds = time.monotonic() - start
    total = layout.chunks() * args.chunk_size
    return {"file": args.file, "chunks": layout.chunks(), "chains": list(layout.chains), "retries": client.retries,
            "bytes": total, "seconds": seconds, "goodput_bps": total * 8 / seconds, "start": start,
            "end": start + seconds}


async def read_loop(args, client: Client) -> dict:
    layout = await client.open(args.file)
    chunks = list(range(layout.chunks()))
    total, start, batches = 0, time.monotonic(), []
    while time.monotonic() - start < args.seconds:
        began = time.monotonic()
        got = await client.batch_read(layout, chunks)
        batches.append((began, time.monotonic(), sum(len(g) for g in got)))     # monotonic: one clock per machine
        total += batches[-1][2]
    seconds = time.monotonic() - start
    return {"bytes": total, "seconds": seconds, "goodput_bps": total * 8 / seconds, "retries": client.retries,
            "p50_ms": 1e3 * percentile(client.latencies, 0.5), "p99_ms": 1e3 * percentile(client.latencies, 0.99),
            "batches": batches}


async def read_window(args, client: Client) -> dict:
    """Re-read a file with `--depth` reads always outstanding (no batches), for `--seconds` from
    the go (SIGUSR1 with --go-on-signal, after a {"ready": true} line): the steady state many
    clients reach together. Each read's issue and completion times (monotonic, one clock per
    machine) let the caller count what every client read in one common window."""
    layout = await client.open(args.file)
    if args.go_on_signal:
        go = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, go.set)
        print(json.dumps({"ready": True}), flush=True)
        try:
            await asyncio.wait_for(go.wait(), GO_WAIT_S)
        except asyncio.TimeoutError:
            raise SystemExit(f"storage reader: no start signal within {GO_WAIT_S:g} s") from None
    start = time.monotonic()
    deadline, order, done = start + args.seconds, itertools.count(), []

    async def reader():
        while (issued := time.monotonic()) < deadline:
            data = await client.read_chunk(layout, next(order) % layout.chunks())
            done.append((issued, time.monotonic(), len(data)))
    await asyncio.gather(*(reader() for _ in range(args.depth)))
    total = sum(n for _, _, n in done)
    return {"bytes": total, "seconds": args.seconds, "start": start, "deadline": deadline,
            "goodput_bps": total * 8 / args.seconds, "retries": client.retries,
            "p50_ms": 1e3 * percentile(client.latencies, 0.5), "p99_ms": 1e3 * percentile(client.latencies, 0.99),
            "reads": [[round(a, 4), round(b, 4), n] for a, b, n in done]}


async def node_read(args, client: Client) -> dict:
    """The validator's storage stress: fill every chain of storage node `--node` (a file each),
    then read them all back at once, again and again, for `--seconds`."""
    chains = [c for c, members in enumerate(client.routing.chains)
              if any(client.routing.node_of(t) == args.node for t in members)]
    layouts = [await client.create(f"stress-{args.node}-{c}-{os.getpid()}", args.chunks * args.chunk_size,
                                   args.chunk_size, stripe=1, offset=c) for c in chains]
    blob = os.urandom(args.chunk_size)
    await asyncio.gather(*(client.batch_write(l, [(i, blob) for i in range(args.chunks)]) for l in layouts))
    total, start = 0, time.monotonic()
    while time.monotonic() - start < args.seconds:
        got = await asyncio.gather(*(client.batch_read(l, list(range(args.chunks))) for l in layouts))
        total += sum(len(chunk) for chunks in got for chunk in chunks)
    seconds = time.monotonic() - start
    return {"node": args.node, "chains": len(chains), "bytes": total, "seconds": seconds,
            "goodput_bps": total * 8 / seconds}


async def manager_status(args, client: Client) -> dict:
    """The cluster manager's view: routing information, nodes' silence, failures declared."""
    reply, _ = await client.manager.request(0, {"op": "status"})
    return reply


async def run(args) -> dict:
    client = await Client.from_args(args, tos=args.tos, cc=args.cc, timeout=args.timeout,
                                    rts=args.rts == "on",
                                    rts_limit=args.rts_limit, max_inflight=args.max_inflight,
                                    per_server=args.per_server).start()
    try:
        read = read_window if args.depth else read_loop
        return await {"incast": incast, "write": write_file, "read": read, "node-read": node_read,
                      "status": manager_status}[args.mode](args, client)
    finally:
        client.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="agents.fs3.bench", description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["incast", "write", "read", "node-read", "status"])
    p.add_argument("--node", type=int, default=0, help="node-read: the storage node (index) to stress")
    Client.add_arguments(p)
    p.add_argument("--senders", type=int, default=1)
    p.add_argument("--chunks-per-sender", type=int, default=8)
    p.add_argument("--chunk-size", type=int, default=64 * 1024)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--file", default="bench")
    p.add_argument("--chunks", type=int, default=64)
    p.add_argument("--stripe", type=int, default=64)
    p.add_argument("--progress", type=int, default=0,
                   help="write: print {\"acked\": N} every N acknowledged chunks, before the result")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--depth", type=int, default=0,
                   help="read: keep this many reads outstanding instead of reading the file in batches")
    p.add_argument("--go-on-signal", action="store_true",
                   help="read --depth: say ready once connected, then start on SIGUSR1 (every client at once)")
    p.add_argument("--rts", choices=["on", "off"], default="on")
    p.add_argument("--rts-limit", type=int, default=64)
    p.add_argument("--max-inflight", type=int, default=256)
    p.add_argument("--per-server", type=int, default=32)
    p.add_argument("--tos", type=int, default=0)
    p.add_argument("--cc", default=None)
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds without an answer after which a storage service counts as lost")
    args = p.parse_args(argv)
    return one_line_errors(lambda: print(json.dumps(asyncio.run(run(args))), flush=True), args.mode)


if __name__ == "__main__":
    sys.exit(main())
