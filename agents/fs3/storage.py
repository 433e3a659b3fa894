"""A 3FS-style storage service: the targets of one storage node, CRAQ replication, request-to-send.

    python -m agents.fs3.storage --node 0 --table TABLE_JSON --peers h:p,h:p,... --mgmtd h:p [--recover]

Each target keeps, per chunk, its committed version and data (with a CRC32) and
any pending versions. A write enters at the chain's head, which gives it the next
version; every replica stores it as pending and forwards it to its successor; the
tail commits and acknowledges, and each replica commits as the acknowledgement
passes back. Reads are served by any replica; one with a pending version newer
than its committed one answers "dirty" (the client asks the tail). With
request-to-send, the service reads the data, sends RTS, and transmits only when
the client grants. Reads and writes take the time of the SSD holding the chunk (chunks spread
over the node's SSDs by key; each a FIFO of the SSD's rate, times the share an injected fault
leaves it: agents.faults).

Membership comes from the cluster manager (agents.fs3.mgmtd), never from a failed
connection: the service beats every period and adopts newer routing information.
A replica that cannot reach its successor waits until the manager has moved that
chain on (a new chain version), then forwards along the new chain. A target the
manager sets to syncing (a restarted service, started with --recover, or one the
manager had declared failed) tells its chains' members the new routing, so new
writes reach it, copies every committed chunk from the chain's tail, and only then
serves reads and reports itself synced.
"""
import argparse
import asyncio
import json
import socket
import sys
import time
import zlib
from dataclasses import dataclass, field

from agents.fs3 import wire
from agents.faults import NodeFaults
from agents.fs3.mgmtd import Heartbeat, in_loop
from agents.nic import endpoints
from cluster.chains import SERVING, SYNCING, ChainTable, Routing


class Ssd:
    """One SSD: requests served in arrival order at a fixed rate (an NVMe queue)."""

    def __init__(self, rate: float):
        self.rate, self.busy_until = rate, 0.0

    def reserve(self, nbytes: int, start: float, factor: float = 1.0) -> float:
        """When `nbytes` that may start at `start` are through (`factor`: the share of its rate
        a degraded SSD keeps)."""
        self.busy_until = max(start, self.busy_until) + nbytes / (self.rate * factor)
        return self.busy_until


@dataclass
class Entry:
    version: int = 0
    data: bytes = b""
    crc: int = 0
    pending: dict[int, bytes] = field(default_factory=dict)

    def commit(self, version: int, data: bytes) -> None:
        if version > self.version:
            self.version, self.data, self.crc = version, data, zlib.crc32(data)
        self.pending = {v: d for v, d in self.pending.items() if v > self.version}


class StorageService:
    def __init__(self, node: int, table: ChainTable, peers: dict[int, tuple[str, int]], manager: tuple[str, int],
                 tos: int = 0, cc: str | None = None, timeout: float = 60.0, heartbeat: float = 0.5,
                 recover: bool = False, ssds: int = 16, ssd_bps: float | None = None, reply_tos: int | None = None):
        self.node, self.timeout, self.heartbeat, self.reply_tos = node, timeout, heartbeat, reply_tos
        self.routing = Routing.initial(table)
        self.my_chains = {c: t for c, chain in enumerate(table.chains) for t in chain if table.node_of(t) == node}
        # chunks are spread over the node's SSDs by their key; without a rate, SSDs take no time
        self.ssds = [Ssd(ssd_bps) for _ in range(ssds)] if ssd_bps else []
        self.faults = NodeFaults()
        self.store: dict[tuple[int, int], Entry] = {}
        self.locks: dict[tuple[int, int], asyncio.Lock] = {}
        self.pool = wire.Pool(peers, tos, cc, timeout)
        self.manager, self.tos, self.cc = manager, tos, cc
        # my targets whose data cannot be trusted yet (a restart lost it), and those copied since
        self.unsynced: set[int] = set(self.my_chains.values()) if recover else set()
        self.synced: set[int] = set()
        self.syncing: dict[int, asyncio.Task] = {}      # target -> its sync
        self.tasks: set[asyncio.Task] = set()
        self.connections: set = set()
        self.crashed = False
        self.stats = {"writes": 0, "reads": 0, "rts": 0, "forward_failures": 0, "syncs": 0}

    def successor(self, chain: int) -> int | None:
        return self.routing.successor(chain, self.my_chains[chain])

    def ssd(self, chain: int, key: str, nbytes: int) -> float:
        """Reserve the SSD that holds chunk `key` of `chain` for `nbytes`; when they are through
        (monotonic). A slow SSD slows the chunks on it, so every read of a file striped over the
        node waits for it."""
        if not self.ssds:
            return 0.0
        i = zlib.crc32(f"{chain}/{key}".encode()) % len(self.ssds)
        return self.ssds[i].reserve(nbytes, time.monotonic(), self.faults.ssd_factor(i))

    @staticmethod
    async def until(deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    # -- the cluster manager ------------------------------------------------------------

    def start(self) -> None:
        """Begin beating (call inside the service's event loop, which adopts the manager's routing)."""
        Heartbeat(self.manager, self.beat, in_loop(self.adopt), self.heartbeat, self.tos, self.cc).start()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def beat(self) -> dict | None:
        """The heartbeat (built in the beat thread: copies of sets the loop changes, each one
        C-level call under the GIL)."""
        if self.crashed:          # a crashed service is silent
            return None
        return {"op": "heartbeat", "node": self.node, "have": self.routing.version,
                "syncing": sorted(self.unsynced), "synced": sorted(self.synced)}

    def adopt(self, routing: Routing) -> None:
        """Newer routing information: use its chains; sync every target of mine it says is syncing."""
        if routing.version <= self.routing.version:
            return
        self.routing = routing
        for chain, t in self.my_chains.items():
            if routing.states[t] == SERVING:
                self.synced.discard(t)
            elif routing.states[t] == SYNCING and t not in self.synced and t not in self.syncing:
                self.unsynced.add(t)
                self.syncing[t] = self._spawn(self.sync(chain, t))

    async def await_new_chain(self, chain: int, seen: int) -> bool:
        """Wait (bounded by the peer timeout) until the manager has moved `chain` past version `seen`."""
        deadline = asyncio.get_running_loop().time() + self.timeout
        while self.routing.chain_versions[chain] == seen:
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(self.heartbeat / 4)
        return True

    async def handle(self, reader, writer) -> None:
        if self.reply_tos is not None:     # an experiment: replies in another class than their requests
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_IP, socket.IP_TOS, self.reply_tos)
        self.connections.add(writer)
        try:
            while not self.crashed:
                header, payload = await wire.recv(reader)
                if self.crashed:
                    break
                op = header["op"]
                if op in ("write", "replicate"):
                    reply = await self.write(header, payload)
                    await wire.send(writer, reply)
                elif op == "read":
                    await self.read(header, reader, writer)
                elif op == "dump":      # every committed chunk of a chain: [key, version, size] + the data
                    entries = [(k[1], e) for k, e in self.store.items() if k[0] == header["chain"] and e.version]
                    await wire.send(writer, {"ok": True, "entries": [[k, e.version, len(e.data)] for k, e in entries]},
                                    b"".join(e.data for _, e in entries))
                elif op == "routing":     # a syncing member's newer routing: forward writes to it from now on
                    self.adopt(Routing.from_dict(header["routing"]))
                    await wire.send(writer, {"ok": True, "version": self.routing.version})
                elif op == "stats":
                    await wire.send(writer, {"ok": True, **self.stats, "node": self.node})
                else:
                    await wire.send(writer, {"ok": False, "error": f"unknown op {op!r}"})
        except wire.DISCONNECTED:
            pass
        finally:
            self.connections.discard(writer)
            writer.close()

    def crash(self) -> None:
        """Drop every connection and everything stored, as a killed process would (for tests in one
        process): connections accepted later, or messages that arrive later, get no answer either."""
        self.crashed = True
        for task in list(self.tasks):
            task.cancel()
        for writer in list(self.connections):
            writer.transport.abort()
        self.pool.close()
        self.store.clear()

    async def write(self, header: dict, data: bytes) -> dict:
        chain, key = header["chain"], header["chunk"]
        if zlib.crc32(data) != header["crc"]:
            return {"ok": False, "error": "checksum mismatch"}
        entry = self.store.setdefault((chain, key), Entry())
        if header["op"] == "write":             # at the head: one version at a time per chunk
            lock = self.locks.setdefault((chain, key), asyncio.Lock())
            async with lock:
                version = max([entry.version, *entry.pending]) + 1
                return await self._replicate(chain, key, version, data, header["crc"])
        return await self._replicate(chain, key, header["version"], data, header["crc"])

    async def _replicate(self, chain, key, version, data, crc) -> dict:
        entry = self.store[(chain, key)]
        entry.pending[version] = data
        written = self.ssd(chain, key, len(data))         # to my SSD while it travels down the chain
        while (succ := self.successor(chain)) is not None:
            seen = self.routing.chain_versions[chain]
            try:
                reply, _ = await self.pool.request(self.routing.node_of(succ), {
                    "op": "replicate", "chain": chain, "chunk": key, "version": version, "crc": crc}, data)
            except wire.DISCONNECTED:
                self.stats["forward_failures"] += 1
                if not await self.await_new_chain(chain, seen):
                    return {"ok": False, "error": f"successor target {succ} lost and chain {chain} not moved on"}
                continue
            if not reply.get("ok"):
                return reply
            break
        await self.until(written)
        entry.commit(version, data)             # the tail commits first; the others as the ack returns
        self.stats["writes"] += 1
        return {"ok": True, "version": version}

    async def read(self, header: dict, reader, writer) -> None:
        chain, key = header["chain"], header["chunk"]
        entry = self.store.get((chain, key))
        if self.my_chains[chain] in self.unsynced:
            await wire.send(writer, {"status": "recovering"})
            return
        if entry is None or not entry.version:
            await wire.send(writer, {"status": "missing"})
            return
        if entry.pending and self.successor(chain) is not None:
            await wire.send(writer, {"status": "dirty"})
            return
        data, version, crc = entry.data, entry.version, entry.crc
        await self.until(self.ssd(chain, key, len(data)))       # read from the SSD first, then ask to send
        if header.get("rts"):
            self.stats["rts"] += 1
            await wire.send(writer, {"status": "rts", "size": len(data)})
            grant, _ = await wire.recv(reader)
            if grant.get("op") != "grant":
                return
        self.stats["reads"] += 1
        await wire.send(writer, {"status": "ok", "version": version, "crc": crc}, data)

    async def sync(self, chain: int, target: int) -> None:
        """Catch target up: give the chain's members the routing that includes it (so new writes reach
        it), copy every committed chunk from the chain's tail, then report it synced."""
        while True:
            for t in self.routing.path(chain):
                if t != target:
                    try:
                        await self.pool.request(self.routing.node_of(t), {"op": "routing",
                                                                          "routing": self.routing.to_dict()})
                    except wire.DISCONNECTED:
                        pass
            sources = self.routing.readers(chain)[::-1]     # the tail first: it has every committed write
            for source in sources:
                try:
                    reply, payload = await self.pool.request(self.routing.node_of(source),
                                                             {"op": "dump", "chain": chain})
                except wire.DISCONNECTED:
                    continue
                offset = 0
                for key, version, size in reply["entries"]:
                    self.store.setdefault((chain, key), Entry()).commit(version, payload[offset:offset + size])
                    offset += size
                break
            else:
                if sources:                  # every serving member unreachable: try again next period
                    await asyncio.sleep(self.heartbeat)
                    continue
            break
        self.unsynced.discard(target)
        self.synced.add(target)
        del self.syncing[target]
        self.stats["syncs"] += 1


async def serve(args) -> None:
    table = ChainTable.from_dict(json.loads(args.table))
    peers = dict(enumerate(endpoints(args.peers)))
    service = StorageService(args.node, table, peers, endpoints(args.mgmtd)[0], args.tos, args.cc, args.timeout,
                             args.heartbeat, args.recover, args.ssds, args.ssd_bps, args.reply_tos)
    server = await wire.serve(service.handle, peers[args.node][1], args.tos, args.cc)
    service.start()
    print(json.dumps({"ready": True, "port": peers[args.node][1], "node": args.node, "targets": len(service.my_chains)}),
          flush=True)
    async with server:
        await server.serve_forever()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="agents.fs3.storage", description=__doc__.splitlines()[0])
    p.add_argument("--node", type=int, required=True)
    p.add_argument("--table", required=True, help="chain table as JSON")
    p.add_argument("--peers", required=True, help="host:port of every storage node, in node order")
    p.add_argument("--mgmtd", required=True, help="host:port of the cluster manager")
    p.add_argument("--heartbeat", type=float, default=0.5, help="seconds between heartbeats")
    p.add_argument("--ssds", type=int, default=16, help="SSDs of the node; its targets are spread over them")
    p.add_argument("--ssd-bps", type=float, default=None, help="bytes/s of one SSD, scaled (default: no SSD model)")
    p.add_argument("--recover", action="store_true", help="restarted: sync every target before serving its reads")
    p.add_argument("--tos", type=int, default=0)
    p.add_argument("--reply-tos", type=int, default=None,
                   help="TOS of what the service sends back (default: its requests' class, as 3FS's replies)")
    p.add_argument("--cc", default=None)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a successor may take to answer")
    try:
        asyncio.run(serve(p.parse_args(argv)))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
