"""The 3FS-style client library: create/open, batch write, batch read with request-to-send.

Limits as in 3FS: requests in flight overall and per storage node, and with
request-to-send at most `rts_limit` transmissions towards this client at once
(3FS's default is 64). The client counts concurrent transmissions itself, so the
bound can be checked. Every chunk carries a CRC32 from the writer; a read whose
data does not match its checksum is an error, never returned.
"""
import asyncio
import time
import zlib
from collections import defaultdict

from agents.fs3 import wire
from agents.nic import endpoints
from cluster.chains import ChainTable, Layout


class StorageError(IOError):
    pass


class Client:
    def __init__(self, meta: tuple[str, int], storage: dict[int, tuple[str, int]], tos: int = 0,
                 cc: str | None = None, rts: bool = True, rts_limit: int = 64, max_inflight: int = 256,
                 per_server: int = 32, timeout: float = 60.0):
        self.meta = wire.Pool({0: meta}, tos, cc, timeout)
        self.pool = wire.Pool(storage, tos, cc, timeout)
        self.rts, self.rts_limit = rts, rts_limit
        self.grants = asyncio.Semaphore(rts_limit)
        self.inflight = asyncio.Semaphore(max_inflight)
        self.per_server = defaultdict(lambda: asyncio.Semaphore(per_server))
        self.table: ChainTable | None = None
        self.offline: set[int] = set()
        self.transmitting = self.max_transmitting = 0
        self.latencies: list[float] = []
        self.retries = 0

    @classmethod
    def from_args(cls, meta: str, storage: str, **kwargs) -> "Client":
        """A client from the command-line forms 'host:port' (meta) and 'host:port,...' (storage nodes)."""
        return cls(endpoints(meta)[0], dict(enumerate(endpoints(storage))), **kwargs)

    async def start(self) -> "Client":
        reply, _ = await self.meta.request(0, {"op": "table"})
        self.table = ChainTable.from_dict(reply["table"])
        return self

    def close(self) -> None:
        self.meta.close()
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

    def live(self, chain: int) -> list[int]:
        return [t for t in self.table.chains[chain] if t not in self.offline]

    # -- writes -----------------------------------------------------------------------

    async def batch_write(self, layout: Layout, items: list[tuple[int, bytes]]) -> list[int]:
        """Write chunks (index, data); returns the committed version of each, in order."""
        return list(await asyncio.gather(*(self.write_chunk(layout, i, d) for i, d in items)))

    async def write_chunk(self, layout: Layout, index: int, data: bytes) -> int:
        chain = layout.chain_of(index)
        header = {"op": "write", "chain": chain, "chunk": layout.key(index), "crc": zlib.crc32(data)}
        async with self.inflight:
            while members := self.live(chain):
                head = self.table.node_of(members[0])
                try:
                    async with self.per_server[head]:
                        reply, _ = await self.pool.request(head, header, data)
                except wire.DISCONNECTED:
                    self.offline.add(members[0])      # the head is down: the next member leads
                    self.retries += 1
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
            while members := self.live(chain):
                # Spread reads over replicas; after a "dirty" answer ask the tail, which is always clean.
                target = members[-1] if attempt else members[index % len(members)]
                attempt += 1
                try:
                    status, data = await self._read_from(target, chain, layout.key(index))
                except wire.DISCONNECTED:
                    self.offline.add(target)
                    self.retries += 1
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
        node = self.table.node_of(target)
        async with self.per_server[node]:
            reader, writer = await self.pool.acquire(node)
            try:
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
            except BaseException:
                writer.close()
                raise
            self.pool.release(node, (reader, writer))
        if reply["status"] == "ok" and zlib.crc32(data) != reply["crc"]:
            raise StorageError(f"chunk {key} from target {target}: checksum mismatch")
        return reply["status"], data


def _layout(d: dict) -> Layout:
    return Layout(d["chunk_size"], tuple(d["chains"]), d["size"], d["inode"])
