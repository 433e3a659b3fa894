"""Messages on the storage network: a JSON header and an optional binary payload."""
import asyncio
import json
import struct

from agents import sockets

FRAME = struct.Struct("!II")      # header length, payload length
# What a peer that went away looks like: refused, reset, or a stream cut mid-message.
DISCONNECTED = (OSError, asyncio.IncompleteReadError)
# How an idle connection to a peer's earlier incarnation (it restarted since) fails: at once, with
# a reset or an end of stream. Only the same failure on a fresh connection says the peer is gone.
STALE = (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError)
STREAM_LIMIT = 2**22


async def send(writer: asyncio.StreamWriter, header: dict, payload: bytes | memoryview = b"") -> None:
    body = json.dumps(header).encode()
    writer.write(FRAME.pack(len(body), len(payload)) + body)
    if payload:
        writer.write(payload)
    await writer.drain()


async def recv(reader: asyncio.StreamReader) -> tuple[dict, bytes]:
    head_len, payload_len = FRAME.unpack(await reader.readexactly(FRAME.size))
    header = json.loads(await reader.readexactly(head_len))
    payload = await reader.readexactly(payload_len) if payload_len else b""
    return header, payload


def exchange(sock, header: dict) -> dict:
    """One request and its reply's header on a blocking socket (a heartbeat thread's)."""
    body = json.dumps(header).encode()
    sock.sendall(FRAME.pack(len(body), 0) + body)
    head_len, payload_len = FRAME.unpack(_exactly(sock, FRAME.size))
    reply = json.loads(_exactly(sock, head_len))
    _exactly(sock, payload_len)
    return reply


def _exactly(sock, n: int) -> bytes:
    data = b""
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            raise ConnectionResetError("the peer closed the connection")
        data += part
    return data


async def connect(host: str, port: int, tos: int = 0, cc: str | None = None, timeout: float = 60.0):
    """A stream to host:port in class `tos` that fails (an OSError) once the peer is lost for `timeout` s."""
    sock = sockets.lose_after(sockets.connecting(tos, cc), timeout)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, port)), timeout)
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock, limit=STREAM_LIMIT)


async def serve(handler, port: int, tos: int = 0, cc: str | None = None) -> asyncio.Server:
    """A server on `port` whose accepted connections carry class `tos` (see agents.sockets)."""
    return await asyncio.start_server(handler, sock=sockets.listening(port, tos, cc), limit=STREAM_LIMIT)


class Pool:
    """Idle connections per peer, reused one request at a time (a request owns its connection
    until its reply is read, so no request ids are needed). A peer lost for `timeout` seconds
    breaks its connections (see agents.sockets.lose_after): a cut link ends a request, never
    hangs it, while a slow reply is waited for as long as it takes."""

    def __init__(self, addrs: dict, tos: int = 0, cc: str | None = None, timeout: float = 60.0):
        self.addrs, self.tos, self.cc, self.timeout = addrs, tos, cc, timeout
        self.idle: dict = {}

    async def acquire(self, peer):
        idle = self.idle.setdefault(peer, [])
        if idle:
            return idle.pop()
        return await connect(*self.addrs[peer], tos=self.tos, cc=self.cc, timeout=self.timeout)

    def release(self, peer, conn) -> None:
        self.idle.setdefault(peer, []).append(conn)

    async def exchange(self, peer, talk):
        """`await talk(reader, writer)` on a connection to `peer`, and its result. A broken
        connection is closed, never reused; one that was idle and fails as a stale one does is
        tried again once on a fresh connection (with the peer's other idle ones dropped)."""
        for attempt in range(2):
            reused = bool(self.idle.get(peer))
            reader, writer = await self.acquire(peer)
            try:
                result = await talk(reader, writer)
            except STALE:
                writer.close()
                if not reused or attempt:
                    raise
                self.drop(peer)
                continue
            except BaseException:
                writer.close()
                raise
            self.release(peer, (reader, writer))
            return result

    async def request(self, peer, header: dict, payload: bytes = b"") -> tuple[dict, bytes]:
        """One request/reply exchange."""
        async def talk(reader, writer):
            await send(writer, header, payload)
            return await recv(reader)
        return await self.exchange(peer, talk)

    def drop(self, peer) -> None:
        for _, writer in self.idle.pop(peer, []):
            writer.close()

    def close(self) -> None:
        for peer in list(self.idle):
            self.drop(peer)
