"""A 3FS-style storage service: the targets of one storage node, CRAQ replication, request-to-send.

    python -m agents.fs3.storage --node 0 --table TABLE_JSON --peers h:p,h:p,... [--recover]

Each target keeps, per chunk, its committed version and data (with a CRC32) and
any pending versions. A write enters at the chain's head, which gives it the next
version; every replica stores it as pending and forwards it to its successor; the
tail commits and acknowledges, and each replica commits as the acknowledgement
passes back. A replica that cannot reach its successor marks that target offline
and forwards to the next one, so a chain keeps working with a member down. Reads
are served by any replica; one with a pending version newer than its committed
one answers "dirty" (the client asks the tail). With request-to-send, the service
reads the data, sends RTS, and transmits only when the client grants.

A service started with --recover first tells its chains' other members it is back,
so new writes reach it, then copies every committed chunk of its chains from them,
and only then serves reads.
"""
import argparse
import asyncio
import json
import sys
import zlib
from dataclasses import dataclass, field

from agents.fs3 import wire
from agents.nic import endpoints
from cluster.chains import ChainTable


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
    def __init__(self, node: int, table: ChainTable, peers: dict[int, tuple[str, int]], tos: int = 0,
                 cc: str | None = None, timeout: float = 60.0):
        self.node, self.table = node, table
        self.my_chains = {c: chain.index(t) for c, chain in enumerate(table.chains)
                          for t in chain if table.node_of(t) == node}
        self.store: dict[tuple[int, int], Entry] = {}
        self.locks: dict[tuple[int, int], asyncio.Lock] = {}
        self.offline: set[int] = set()
        self.pool = wire.Pool(peers, tos, cc, timeout)
        self.serving = True
        self.connections: set = set()
        self.stats = {"writes": 0, "reads": 0, "rts": 0, "forward_failures": 0}

    def successor(self, chain: int) -> int | None:
        members = self.table.chains[chain]
        for t in members[self.my_chains[chain] + 1:]:
            if t not in self.offline:
                return t
        return None

    async def handle(self, reader, writer) -> None:
        self.connections.add(writer)
        try:
            while True:
                header, payload = await wire.recv(reader)
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
                elif op == "rejoin":
                    self.offline.discard(header["target"])
                    await wire.send(writer, {"ok": True})
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
        """Drop every connection and everything stored, as a killed process would (for tests in one process)."""
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
        while (succ := self.successor(chain)) is not None:
            try:
                reply, _ = await self.pool.request(self.table.node_of(succ), {
                    "op": "replicate", "chain": chain, "chunk": key, "version": version, "crc": crc}, data)
            except wire.DISCONNECTED:
                self.offline.add(succ)          # skip it from now on; the chain goes on without it
                self.stats["forward_failures"] += 1
                continue
            if not reply.get("ok"):
                return reply
            break
        entry.commit(version, data)             # the tail commits first; the others as the ack returns
        self.stats["writes"] += 1
        return {"ok": True, "version": version}

    async def read(self, header: dict, reader, writer) -> None:
        chain, key = header["chain"], header["chunk"]
        entry = self.store.get((chain, key))
        if not self.serving:
            await wire.send(writer, {"status": "recovering"})
            return
        if entry is None or not entry.version:
            await wire.send(writer, {"status": "missing"})
            return
        if entry.pending and self.successor(chain) is not None:
            await wire.send(writer, {"status": "dirty"})
            return
        data, version, crc = entry.data, entry.version, entry.crc
        if header.get("rts"):
            self.stats["rts"] += 1
            await wire.send(writer, {"status": "rts", "size": len(data)})
            grant, _ = await wire.recv(reader)
            if grant.get("op") != "grant":
                return
        self.stats["reads"] += 1
        await wire.send(writer, {"status": "ok", "version": version, "crc": crc}, data)

    async def recover(self) -> None:
        """Rejoin every chain, then copy what the other members committed while this node was down."""
        self.serving = False
        for chain, pos in self.my_chains.items():
            me = self.table.chains[chain][pos]
            for t in self.table.chains[chain]:
                if t != me:
                    try:
                        await self.pool.request(self.table.node_of(t), {"op": "rejoin", "target": me})
                    except wire.DISCONNECTED:
                        self.offline.add(t)
        for chain, pos in self.my_chains.items():
            for t in self.table.chains[chain]:
                if t == self.table.chains[chain][pos] or t in self.offline:
                    continue
                try:
                    reply, payload = await self.pool.request(self.table.node_of(t), {"op": "dump", "chain": chain})
                except wire.DISCONNECTED:
                    continue
                offset = 0
                for key, version, size in reply["entries"]:
                    self.store.setdefault((chain, key), Entry()).commit(version, payload[offset:offset + size])
                    offset += size
        self.serving = True


async def serve(args) -> None:
    table = ChainTable.from_dict(json.loads(args.table))
    peers = dict(enumerate(endpoints(args.peers)))
    service = StorageService(args.node, table, peers, args.tos, args.cc, args.timeout)
    server = await wire.serve(service.handle, peers[args.node][1], args.tos, args.cc)
    if args.recover:
        await service.recover()
    print(json.dumps({"ready": True, "port": peers[args.node][1], "node": args.node, "targets": len(service.my_chains)}),
          flush=True)
    async with server:
        await server.serve_forever()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="agents.fs3.storage", description=__doc__.splitlines()[0])
    p.add_argument("--node", type=int, required=True)
    p.add_argument("--table", required=True, help="chain table as JSON")
    p.add_argument("--peers", required=True, help="host:port of every storage node, in node order")
    p.add_argument("--recover", action="store_true", help="catch up from the chains before serving reads")
    p.add_argument("--tos", type=int, default=0)
    p.add_argument("--cc", default=None)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a successor may take to answer")
    try:
        asyncio.run(serve(p.parse_args(argv)))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
