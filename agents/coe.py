"""Composition-of-Experts serving over the fabric: a router and the nodes that serve experts.

    python -m agents.coe serve --port 7400 --hardware sn40l-node --scale 0.05 --expert-bytes 14e9 \
        --hbm-slots 36 --tier local --held 0,1,2 [--stored 3,4 --meta ... --mgmtd ... --storage ...]
    python -m agents.coe route --servers 198.18.0.3:7400,... --trace trace.csv --scale 0.05 --seconds 30

A serving node answers one request at a time, in the order they came (its accelerators run one
expert at once, tensor-parallel over all of them). A request for an expert its HBM holds is a
hit; any other is a switch: the expert is copied into every accelerator's HBM (each its 1/A
share) from the node's capacity tier, the accelerators' own DDR (SN40L) or host memory over
PCIe (a DGX), or, for an expert the node holds nowhere, first read from the 3FS-style storage
over the fabric into host memory. Evictions follow the LRU order (cluster.coe.Lru). Decoding is
memory-bound: every token reads each accelerator's share of the expert from its HBM. Every
copy and read is charged to the node model (agents.gpu.NodeModel, the profile's resources at
`scale`), which says when it is through; storage reads are real bytes (the expert's bytes times
`scale`) on the wire. The answer (4 bytes a token) goes back over the same connection.

The router sends each request of the trace at its time (real seconds / scale) to the node
serving its expert (cluster.coe.server_of) and records when each answer is back.
"""
import argparse
import asyncio
import json
import socket
import sys
import threading
import time

from agents import sockets
from agents.errors import one_line_errors
from agents.fs3.client import Client
from agents.gpu import NodeModel
from cluster import coe, hardware
from cluster.node import NodeParams, add_node_arguments

ANSWER_BYTES = 4            # a generated token, as the answer carries it
READ_CHUNK = 4 * 2**20      # storage chunks of an expert's file


def switch(model: NodeModel, nbytes: float, tier: str) -> list:
    """An expert of `nbytes` copied into every accelerator's HBM, each its share, from `tier`:
    "local" (each accelerator's own capacity memory) or "host" (host memory, over the
    accelerator's PCIe link and the uplink it shares). Returns the copies (the node model's)."""
    g = model.params.gpus
    copies = []
    for a in range(g):
        into = [(model.local[a], None)] if tier == "local" else model.host_to_gpu(a)
        copies.append(model.copy(into + [(model.hbm[a], None)], nbytes / g))
    return copies


def decode(model: NodeModel, nbytes: float, tokens: int) -> list:
    """`tokens` tokens, each reading every accelerator's share of the expert from its HBM."""
    g = model.params.gpus
    return [model.copy([(model.hbm[a], None)], tokens * nbytes / g) for a in range(g)]


def through(copies) -> float:
    for c in copies:
        c.wait()
    return time.monotonic()


class Server:
    def __init__(self, args):
        self.args = args
        self.model = NodeModel(NodeParams.from_profile(hardware.load(args.hardware)).scaled(args.scale))
        self.lru = coe.Lru(args.hbm_slots)
        self.held = set(args.held)
        self.records: list[dict] = []
        self.storage_bytes = 0
        self.client: Client | None = None

    async def prepare(self) -> None:
        """Write the experts this node holds nowhere to storage (before it says it is ready)."""
        if not self.args.stored:
            return
        a = self.args
        self.client = await Client.from_args(a, tos=a.storage_tos, timeout=a.timeout).start()
        size = max(1, int(a.expert_bytes * a.scale))           # the expert on the wire
        chunk = min(READ_CHUNK, size)
        blob = bytes(chunk)
        for e in a.stored:
            layout = await self.client.create(self.file(e), -(-size // chunk) * chunk, chunk, stripe=64)
            await self.client.batch_write(layout, [(i, blob) for i in range(layout.chunks())])

    def file(self, expert: int) -> str:
        return f"{self.args.tag}-expert-{expert}"

    async def from_storage(self, expert: int) -> int:
        layout = await self.client.open(self.file(expert))
        got = await self.client.batch_read(layout, list(range(layout.chunks())))
        return sum(len(g) for g in got)

    async def serve_one(self, request: dict) -> dict:
        a, loop = self.args, asyncio.get_running_loop()
        began = time.monotonic()
        hit, evicted = self.lru.touch(request["expert"])
        source, switch_s = coe.HBM, 0.0
        if not hit:
            source = a.tier if request["expert"] in self.held else coe.STORAGE
            if source == coe.STORAGE:
                wire = await self.from_storage(request["expert"])
                self.storage_bytes += wire
                # the bytes land in host memory (the NIC writes them), then go on to HBM
                await loop.run_in_executor(None, through, [self.model.charge_mem(int(wire / a.scale))])
            await loop.run_in_executor(None, through, switch(self.model, a.expert_bytes,
                                                             "local" if source == "local" else "host"))
            switch_s = time.monotonic() - began
        done = await loop.run_in_executor(None, through, decode(self.model, a.expert_bytes, request["tokens"]))
        return {"id": request["id"], "expert": request["expert"], "source": source, "switch_s": switch_s,
                "evicted": evicted, "began": began, "done": done}

    async def connection(self, reader, writer) -> None:
        queue: asyncio.Queue = asyncio.Queue()

        async def work():           # one request at a time, in arrival order
            while (request := await queue.get()) is not None:
                record = await self.serve_one(request)
                self.records.append(record)
                writer.write(json.dumps(record).encode() + b"\n" + bytes(ANSWER_BYTES * request["tokens"]))
                await writer.drain()
        worker = asyncio.create_task(work())
        while line := await reader.readline():
            await queue.put(json.loads(line))
        await queue.put(None)
        await worker
        writer.close()
        self.finished.set()

    async def run(self) -> dict:
        a = self.args
        self.finished = asyncio.Event()
        await self.prepare()
        listener = sockets.listening(a.port, a.tos)
        server = await asyncio.start_server(self.connection, sock=listener)
        print(json.dumps({"ready": True, "port": a.port}), flush=True)
        async with server:
            await self.finished.wait()
        if self.client:
            self.client.close()
        hits = sum(r["source"] == coe.HBM for r in self.records)
        # each request's record went back to the router with its answer
        return {"served": len(self.records), "hits": hits, "misses": len(self.records) - hits,
                "storage_wire_bytes": self.storage_bytes}


def route(args) -> dict:
    """Send the trace's requests at their times; every answer's time back."""
    trace = coe.read_trace(args.trace, args.experts)
    servers = [(h, int(p)) for h, p in (s.rsplit(":", 1) for s in args.servers.split(","))]
    conns = []
    for host, port in servers:
        s = sockets.lose_after(sockets.connecting(args.tos), args.timeout)     # a lost server, not a busy one
        s.connect((host, port))
        conns.append(s)
    sent: dict[int, float] = {}
    answers: list[dict] = []
    lock = threading.Lock()

    def receive(conn: socket.socket) -> None:
        stream = conn.makefile("rb")
        while line := stream.readline():
            record = json.loads(line)
            tokens = trace[record["id"]].tokens
            stream.read(ANSWER_BYTES * tokens)
            record["back"] = time.monotonic()
            with lock:
                answers.append(record)
    readers = [threading.Thread(target=receive, args=(c,), daemon=True) for c in conns]
    for r in readers:
        r.start()
    start = time.monotonic()
    for i, r in enumerate(trace):
        at = start + r.t / args.scale
        if at - start > args.seconds:
            break
        time.sleep(max(0.0, at - time.monotonic()))
        sent[i] = time.monotonic()
        conns[coe.server_of(r.expert, len(conns))].sendall(
            json.dumps({"id": i, "expert": r.expert, "tokens": r.tokens}).encode() + b"\n")
    for c in conns:
        c.shutdown(socket.SHUT_WR)      # no more requests: each server answers what it has, then ends
    for r in readers:       # each ends when its server has answered all and closed (or is lost)
        r.join()
    if len(answers) < len(sent):
        raise TimeoutError(f"{len(sent) - len(answers)} of {len(sent)} requests got no answer")
    for a in answers:
        a["sent"] = sent[a["id"]]
    return {"start": start, "answers": sorted(answers, key=lambda a: a["id"])}


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="agents.coe", description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["serve", "route"])
    p.add_argument("--port", type=int, default=7400)
    add_node_arguments(p)
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every modelled bandwidth and wire byte")
    p.add_argument("--expert-bytes", type=float, default=14e9)
    p.add_argument("--hbm-slots", type=int, default=1)
    p.add_argument("--tier", choices=["local", "host"], default="host", help="the node's capacity tier")
    p.add_argument("--held", type=ints, default=[], help="experts the capacity tier holds")
    p.add_argument("--stored", type=ints, default=[], help="experts only storage holds (written at start)")
    p.add_argument("--tag", default="coe", help="the storage files' prefix")
    p.add_argument("--storage-tos", type=int, default=0, help="the storage reads' class")
    Client.add_arguments(p, required=False)
    p.add_argument("--servers", help="route: host:port of every serving node, in server order")
    p.add_argument("--trace", help="route: the trace file (cluster.coe.read_trace)")
    p.add_argument("--experts", type=int, default=150)
    p.add_argument("--seconds", type=float, default=30.0, help="route: send requests this long (lab seconds)")
    p.add_argument("--tos", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args(argv)

    def run():
        result = route(args) if args.mode == "route" else asyncio.run(Server(args).run())
        print(json.dumps(result), flush=True)
    return one_line_errors(run, f"agents.coe {args.mode}")


if __name__ == "__main__":
    sys.exit(main())
