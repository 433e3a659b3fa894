"""The 3FS-style client library: create/open, batch write, batch read with request-to-send.

Limits as in 3FS: requests in flight overall and per storage node, and with
request-to-send at most `rts_limit` transmissions towards this client at once
(3FS's default is 64). The client counts concurrent transmissions itself, so the
bound can be checked. Every chunk carries a CRC32 from the writer; a read whose
data does not match its checksum is an error, never returned.

Which targets to ask comes from the cluster manager's routing information. A
request to a service that is gone fails; the client then asks the manager again
until the chain has a new version (the manager declared the node failed) and
retries along the new chain.
"""
import argparse
import asyncio
import time
import zlib
from collections import defaultdict

from agents.fs3 import wire
from agents.nic import endpoints
from cluster.chains import Layout, Routing


class StorageError(IOError):
    pass


class Client:
    def __init__(self, meta: tuple[str, int], storage: dict[int, tuple[str, int]], manager: tuple[str, int],
                 tos: int = 0, cc: str | None = None, rts: bool = True, rts_limit: int = 64, max_inflight: int = 256,
                 per_server: int = 32, timeout: float = 60.0, refresh: float = 0.1):
        self.meta = wire.Pool({0: meta}, tos, cc, timeout)
        self.manager = wire.Pool({0: manager}, tos, cc, timeout)
        self.pool = wire.Pool(storage, tos, cc, timeout)
        self.timeout, self.refresh = timeout, refresh
        self.rts, self.rts_limit = rts, rts_limit
        self.grants = asyncio.Semaphore(rts_limit)
        self.inflight = asyncio.Semaphore(max_inflight)
        self.per_server = defaultdict(lambda: asyncio.Semaphore(per_server))
        self.routing: Routing | None = None
        self.routing_lock, self.refreshed_at = asyncio.Lock(), -float("inf")
        self.transmitting = self.max_transmitting = 0
        self.latencies: list[float] = []
        self.retries = 0

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
        """The options that point a client program at a cluster (StorageCluster.client_args fills them)."""
        parser.add_argument("--meta", required=required, help="host:port of the meta service")
        parser.add_argument("--mgmtd", required=required, help="host:port of the cluster manager")
        parser.add_argument("--storage", required=required, help="host:port of every storage node, in node order")

    @classmethod
    def from_args(cls, args: argparse.Namespace, **kwargs) -> "Client":
        return cls(endpoints(args.meta)[0], dict(enumerate(endpoints(args.storage))), endpoints(args.mgmtd)[0],
                   **kwargs)

    async def start(self) -> "Client":
        await self.update_routing()
        return self

    async def update_routing(self) -> None:
        """Ask the manager for newer routing information; requests waiting together share one ask
        per `refresh` seconds."""
        async with self.routing_lock:
            if time.monotonic() - self.refreshed_at < self.refresh:
                return
            try:
                reply, _ = await self.manager.request(0, {"op": "routing",
                                                          "have": self.routing.version if self.routing else 0})
            except wire.DISCONNECTED as e:
                raise StorageError(f"the cluster manager does not answer: {e}") from None
            self.refreshed_at = time.monotonic()
            if "routing" in reply:
                self.routing = Routing.from_dict(reply["routing"])

    async def await_new_chain(self, chain: int, seen: int) -> None:
        """After a lost service: ask the manager until `chain` is past version `seen` (bounded)."""
        deadline = time.monotonic() + self.timeout
        while self.routing.chain_versions[chain] == seen:
            if time.monotonic() > deadline:
                raise StorageError(f"chain {chain} lost a member and the manager did not move it on "
                                   f"within {self.timeout:.0f} s")
            await self.update_routing()
            await asyncio.sleep(self.refresh)

    def close(self) -> None:
        self.meta.close()
        self.manager.close()
        self.pool.close()

    async def create(self, name: str, size: int, chunk_size: int, stripe: int, offset: int | None = None) -> Layout:
        reply, _ = await self.meta.request(0, {"op": "create", "name": name, "size": size,
                                               "chunk_size": chunk_size, "stripe": stripe, "offset": offset})
        return _layout(reply["layout"])

    async def open(self, name: str) -> Layout:
        reply, _ = await self.meta.request(0, {"op": "open", "name": name})
        if not reply["ok"]:
            raise StorageError(f"{name}: {reply['error']}")
        return _layout(reply["layout"])

    # -- writes -----------------------------------------------------------------------

    async def batch_write(self, layout: Layout, items: list[tuple[int, bytes]], on_ack=None) -> list[int]:
        """Write chunks (index, data); returns the committed version of each, in order.
        `on_ack()` is called as each chunk is acknowledged (committed by its chain's tail)."""
        async def write(i, data):
            version = await self.write_chunk(layout, i, data)
            if on_ack:
                on_ack()
            return version
        return list(await asyncio.gather(*(write(i, d) for i, d in items)))

    async def write_chunk(self, layout: Layout, index: int, data: bytes) -> int:
        chain = layout.chain_of(index)
        header = {"op": "write", "chain": chain, "chunk": layout.key(index), "crc": zlib.crc32(data)}
        async with self.inflight:
            while path := self.routing.path(chain):
                head, seen = self.routing.node_of(path[0]), self.routing.chain_versions[chain]
                try:
                    async with self.per_server[head]:
                        reply, _ = await self.pool.request(head, header, data)
                except wire.DISCONNECTED:
                    self.retries += 1
                    await self.await_new_chain(chain, seen)     # the head is down: the next member leads
                    continue
                if not reply["ok"]:
                    raise StorageError(f"write of chunk {index}: {reply['error']}")
                return reply["version"]
        raise StorageError(f"write of chunk {index}: every target of chain {chain} is down")

    # -- reads ------------------------------------------------------------------------

    async def batch_read(self, layout: Layout, indices: list[int]) -> list[bytes]:
        return list(await asyncio.gather(*(self.read_chunk(layout, i) for i in indices)))

    async def read_chunk(self, layout: Layout, index: int) -> bytes:
        chain = layout.chain_of(index)
        async with self.inflight:
            start = time.monotonic()
            attempt = 0
            failed: set[int] = set()      # replicas that did not answer this read (membership is the manager's)
            while self.routing.path(chain):
                members = [t for t in self.routing.readers(chain) if t not in failed]
                if not members:           # none left to try (or only syncing ones): wait for the manager
                    await self.await_new_chain(chain, self.routing.chain_versions[chain])
                    failed.clear()
                    continue
                # Spread reads over replicas; after a "dirty" answer ask the tail, which is always clean.
                target = members[-1] if attempt else members[index % len(members)]
                attempt += 1
                try:
                    status, data = await self._read_from(target, chain, layout.key(index))
                except wire.DISCONNECTED:
                    self.retries += 1
                    failed.add(target)
                    continue
                if status == "ok":
                    self.latencies.append(time.monotonic() - start)
                    return data
                if status in ("dirty", "recovering"):
                    self.retries += 1
                    if attempt > 50:
                        await asyncio.sleep(0.01)     # the chain is settling; back off before asking again
                    continue
                raise StorageError(f"read of chunk {index} from target {target}: {status}")
        raise StorageError(f"read of chunk {index}: every target of chain {chain} is down")

    async def _read_from(self, target: int, chain: int, key: str) -> tuple[str, bytes]:
        node = self.routing.node_of(target)

        async def talk(reader, writer):
            await wire.send(writer, {"op": "read", "chain": chain, "chunk": key, "rts": self.rts})
            reply, data = await wire.recv(reader)
            if reply["status"] == "rts":
                async with self.grants:           # at most rts_limit transmissions at once
                    self.transmitting += 1
                    self.max_transmitting = max(self.max_transmitting, self.transmitting)
                    try:
                        await wire.send(writer, {"op": "grant"})
                        reply, data = await wire.recv(reader)
                    finally:
                        self.transmitting -= 1
            return reply, data
        async with self.per_server[node]:
            reply, data = await self.pool.exchange(node, talk)
        if reply["status"] == "ok" and zlib.crc32(data) != reply["crc"]:
            raise StorageError(f"chunk {key} from target {target}: checksum mismatch")
        return reply["status"], data


def _layout(d: dict) -> Layout:
    return Layout(d["chunk_size"], tuple(d["chains"]), d["size"], d["inode"])
