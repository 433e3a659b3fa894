"""All-pairs TCP reachability from one process.

Sockets belong to the node they are created in, so this process opens a listener
in every host and a client socket in every source host (as the node, through the
lab's backend, just long enough to create the socket), then runs every connection
concurrently on one asyncio loop: connect, send a token, read it echoed back.
TCP retransmissions counted in every host before and after tell whether a packet
was lost on the way (a full neighbour table, a missing route, a drop).
"""
import asyncio
import socket
from dataclasses import dataclass, field

PORT = 7
CONCURRENCY = 512


@dataclass
class MeshResult:
    pairs: int = 0
    ok: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)   # (src, dst addr, reason)
    retransmits: int = 0
    seconds: float = 0.0


def tcp_mesh(hosts, timeout: float = 20.0) -> MeshResult:
    """hosts: NodeHandles (name, addrs, entered(), tcp_retransmits()). Every host connects to every address of every other."""
    hosts = list(hosts)
    for h in hosts:         # traffic, as a program in the node would send: after the lab's daemon is up
        if getattr(h, "before_run", None):
            h.before_run()
    return asyncio.run(_mesh(hosts, timeout))


async def _mesh(hosts, timeout) -> MeshResult:
    loop = asyncio.get_running_loop()
    result = MeshResult()
    before = {h.name: h.tcp_retransmits() for h in hosts}
    servers = []
    for h in hosts:
        with h.entered():
            listener = socket.create_server(("0.0.0.0", PORT), backlog=1024)
        listener.setblocking(False)
        servers.append(await asyncio.start_server(_echo, sock=listener))
    gate = asyncio.Semaphore(CONCURRENCY)

    async def probe(src, dst_addr):
        async with gate:
            with src.entered():
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            token = f"{src.name}>{dst_addr}".encode()
            try:
                await asyncio.wait_for(_exchange(loop, s, dst_addr, token), timeout)
                result.ok += 1
            except (OSError, asyncio.TimeoutError) as e:
                result.failures.append((src.name, dst_addr, type(e).__name__ + (f": {e}" if str(e) else "")))
            finally:
                s.close()

    jobs = [probe(src, addr) for src in hosts for dst in hosts if dst is not src for addr in dst.addrs]
    result.pairs = len(jobs)
    start = loop.time()
    await asyncio.gather(*jobs)
    result.seconds = loop.time() - start
    for server in servers:
        server.close()
        await server.wait_closed()
    result.retransmits = sum(h.tcp_retransmits() - before[h.name] for h in hosts)
    return result


async def _exchange(loop, s, addr, token):
    await loop.sock_connect(s, (addr, PORT))
    await loop.sock_sendall(s, token)
    echoed = b""
    while len(echoed) < len(token):
        chunk = await loop.sock_recv(s, 256)
        if not chunk:
            break
        echoed += chunk
    if echoed != token:
        raise OSError(f"echo mismatch: {echoed!r}")


async def _echo(reader, writer):
    try:
        data = await reader.read(256)
        writer.write(data)
        await writer.drain()
    finally:
        writer.close()
