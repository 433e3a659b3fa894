"""NIC agent: TCP connections between ranks, each carrying a traffic class (SL -> DSCP).

A Mesh gives rank r a connection to any peer on any channel (separate sockets
for separate flows, e.g. one per tree). The lower rank connects, the higher
accepts; a 8-byte hello says who is calling on which channel. Transfers are
exact-length (both sides know the chunk sizes), counted per connection.
"""
import queue
import socket
import struct
import threading
import time

import numpy as np

from agents import sockets

HELLO = struct.Struct("!II")     # rank, channel


def endpoints(text: str) -> list[tuple[str, int]]:
    """'198.18.0.0:6000,198.18.0.4:6000' -> [(host, port), ...], in rank order."""
    return [(host, int(port)) for host, port in (x.rsplit(":", 1) for x in text.split(","))]


def _bytes_view(data) -> memoryview:
    # numpy arrays of ml_dtypes (bf16, fp8) have no buffer-protocol format; view them as bytes.
    if isinstance(data, np.ndarray):
        return memoryview(data.view(np.uint8))
    return memoryview(data).cast("B")


class Conn:
    def __init__(self, sock: socket.socket, peer: int, channel: int):
        self.sock, self.peer, self.channel = sock, peer, channel
        self.sent = self.received = 0

    def send(self, data) -> None:
        view = _bytes_view(data)
        try:
            self.sock.sendall(view)
        except TimeoutError:
            raise self._lost("took none of") from None
        self.sent += len(view)

    def recv_into(self, buf) -> None:
        view = _bytes_view(buf)
        got = 0
        while got < len(view):
            try:
                n = self.sock.recv_into(view[got:])
            except TimeoutError:
                raise self._lost("sent none of") from None
            if n == 0:
                raise ConnectionError(f"rank {self.peer} closed the connection (channel {self.channel})")
            got += n
        self.received += got

    def _lost(self, what: str) -> TimeoutError:
        return TimeoutError(f"rank {self.peer} {what} its data for {self.sock.gettimeout():g} s "
                            f"(channel {self.channel}): the peer or a link is lost")


class Mesh:
    def __init__(self, rank: int, addrs: list[tuple[str, int]], tos: int = 0, cc: str | None = None,
                 connect_timeout: float = 30.0, io_timeout: float = 60.0):
        self.rank, self.addrs, self.tos, self.cc = rank, addrs, tos, cc
        self.connect_timeout = connect_timeout
        self.io_timeout = io_timeout      # a peer that died mid-collective becomes an error, not a hang
        self.conns: dict[tuple[int, int], Conn] = {}
        self._incoming: dict[tuple[int, int], queue.Queue] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[int, int], threading.Lock] = {}
        host, port = addrs[rank]
        self.listener = sockets.listening(port, tos, cc)
        threading.Thread(target=self._accept, daemon=True).start()


    def _slot(self, key) -> queue.Queue:
        with self._lock:
            return self._incoming.setdefault(key, queue.Queue(1))

    def _accept(self) -> None:
        while True:
            try:
                s, _ = self.listener.accept()
            except OSError:
                return
            s.settimeout(self.io_timeout)     # its class it inherited from the listener
            hello = bytearray(HELLO.size)
            Conn(s, -1, -1).recv_into(hello)
            peer, channel = HELLO.unpack(hello)
            self._slot((peer, channel)).put(Conn(s, peer, channel))

    def conn(self, peer: int, channel: int = 0) -> Conn:
        """The connection to `peer` on `channel`, made on first use (safe from several threads)."""
        key = (peer, channel)
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            if key not in self.conns:
                self.conns[key] = self._open(peer, channel)
            return self.conns[key]

    def _open(self, peer: int, channel: int) -> Conn:
        key = (peer, channel)
        if peer == self.rank:
            raise ValueError("a rank does not connect to itself")
        if self.rank < peer:
            conn = Conn(self._dial(peer), peer, channel)
            conn.sock.sendall(HELLO.pack(self.rank, channel))
        else:
            try:
                conn = self._slot(key).get(timeout=self.connect_timeout)
            except queue.Empty:
                raise TimeoutError(f"rank {peer} never connected on channel {channel}") from None
        return conn

    def _dial(self, peer: int) -> socket.socket:
        deadline = time.monotonic() + self.connect_timeout
        while True:
            s = sockets.connecting(self.tos, self.cc)
            s.settimeout(self.io_timeout)
            try:
                s.connect(self.addrs[peer])
                return s
            except (ConnectionRefusedError, OSError):
                s.close()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"rank {peer} at {self.addrs[peer]} is not listening") from None
                time.sleep(0.02)

    def barrier(self, channel: int = 1000) -> None:
        """Everyone waits for everyone, through rank 0."""
        token = bytearray(1)
        if self.rank == 0:
            for peer in range(1, len(self.addrs)):
                self.conn(peer, channel).recv_into(token)
            for peer in range(1, len(self.addrs)):
                self.conn(peer, channel).send(token)
        else:
            c = self.conn(0, channel)
            c.send(token)
            c.recv_into(token)

    def agree(self, flag: bool, channel: int = 1001) -> bool:
        """Whether any rank says `flag`: every rank gets the same answer (an OR through rank 0)."""
        token = bytearray([int(flag)])
        if self.rank == 0:
            for peer in range(1, len(self.addrs)):
                self.conn(peer, channel).recv_into(token)
                flag = flag or bool(token[0])
            for peer in range(1, len(self.addrs)):
                self.conn(peer, channel).send(bytes([int(flag)]))
            return flag
        c = self.conn(0, channel)
        c.send(token)
        c.recv_into(token)
        return bool(token[0])

    def counters(self) -> dict[str, int]:
        return {"sent": sum(c.sent for c in self.conns.values()),
                "received": sum(c.received for c in self.conns.values())}

    def close(self) -> None:
        self.listener.close()
        for c in self.conns.values():
            c.sock.close()
