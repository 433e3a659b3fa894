"""All-pairs TCP reachability from one process.

Sockets belong to the namespace they are created in, so this process opens a
listener in every host and a client socket in every source host (entering each
namespace just long enough to create the socket), then runs every connection
concurrently on one asyncio loop: connect, send a token, read it echoed back.
TCP retransmissions counted in every host before and after tell whether a packet
was lost on the way (a full neighbour table, a missing route, a drop).
"""
import asyncio
import socket
from dataclasses import dataclass, field
from pathlib import Path

from emu.fabric.netns import inside

PORT = 7
CONCURRENCY = 512


@dataclass
class MeshResult:
    pairs: int = 0
    ok: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)   # (src, dst addr, reason)
    retransmits: int = 0
    seconds: float = 0.0


def retransmits(netns: str) -> int:
    """TcpRetransSegs of one namespace."""
    with inside(netns):
        lines = Path("/proc/thread-self/net/snmp").read_text().splitlines()
    tcp = [l.split() for l in lines if l.startswith("Tcp:")]
    return int(tcp[1][tcp[0].index("RetransSegs")])


def tcp_mesh(hosts, timeout: float = 20.0) -> MeshResult:
    """hosts: NodeHandle-like objects (name, netns, addrs). Every host connects to every address of every other."""
    hosts = list(hosts)
    for h in hosts:         # traffic, as a program in the node would send: after the lab's daemon is up
        if getattr(h, "before_run", None):
            h.before_run()
    return asyncio.run(_mesh(hosts, timeout))


async def _mesh(hosts, timeout) -> MeshResult:
    loop = asyncio.get_running_loop()
    result = MeshResult()
    before = {h.netns: retransmits(h.netns) for h in hosts}
    servers = []
    for h in hosts:
        with inside(h.netns):
            listener = socket.create_server(("0.0.0.0", PORT), backlog=1024)
        listener.setblocking(False)
        servers.append(await asyncio.start_server(_echo, sock=listener))
    gate = asyncio.Semaphore(CONCURRENCY)

    async def probe(src, dst_addr):
        async with gate:
            with inside(src.netns):
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
    result.retransmits = sum(retransmits(h.netns) - before[h.netns] for h in hosts)
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
