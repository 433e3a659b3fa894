"""NIC agent: TCP connections between ranks, each carrying a traffic class (SL -> DSCP).

A Mesh gives rank r a connection to any peer on any channel (separate sockets
for separate flows, e.g. one per tree) and, on nodes with several NICs, any rail:
rail i runs from NIC i to the peer's NIC i (on a multi-plane network, the only NIC
of the peer that NIC i reaches). The lower rank connects, the higher accepts; a
12-byte hello says who is calling on which channel and rail. Transfers are
exact-length (both sides know the chunk sizes), counted per connection. A connection
may bound the messages in flight (a window): the receiver returns a credit for each
message it takes, on a companion connection of its own.
"""
import queue
import socket
import struct
import threading
import time

import numpy as np

from agents import sockets
from cluster.node import NICS

HELLO = struct.Struct("!III")     # rank, channel, rail
CREDITS = 1 << 31                 # channel bit: the credit companion of a windowed connection


def endpoints(text: str) -> list[tuple[str, int]]:
    """'198.18.0.0:6000,198.18.0.4:6000' -> [(host, port), ...], in rank order (a rank with
    several NICs, 'a+b:6000', by its first)."""
    return [(hosts[0], port) for hosts, port in rails(text)]


def rails(text: str) -> list[tuple[tuple[str, ...], int]]:
    """'198.18.0.0+198.18.0.2:6000,...' -> [((host of NIC 0, host of NIC 1, ...), port), ...]."""
    return [(tuple(hosts.split(NICS)), int(port)) for hosts, port in (x.rsplit(":", 1) for x in text.split(","))]


def _bytes_view(data) -> memoryview:
    # numpy arrays of ml_dtypes (bf16, fp8) have no buffer-protocol format; view them as bytes.
    if isinstance(data, np.ndarray):
        return memoryview(data.view(np.uint8))
    return memoryview(data).cast("B")


class Conn:
    def __init__(self, sock: socket.socket, peer: int, channel: int, rail: int = 0):
        self.sock, self.peer, self.channel, self.rail = sock, peer, channel, rail
        self.sent = self.received = 0
        self.window, self.credits, self.in_flight = 0, None, 0

    def limit(self, window: int, credits: socket.socket) -> None:
        """Let at most `window` messages be sent and not yet received by the peer's application:
        each message the peer takes whole returns a one-byte credit on `credits` (a socket of its
        own, so credits never wait behind data), as NCCL's receivers hand out buffer slots. This
        keeps a pipeline's chunks out of deep socket and switch queues, where they would only
        lengthen its fill and drain; the kernel's buffers stay deep, so TCP's window is not cut."""
        self.window, self.credits = window, credits

    def send(self, data) -> None:
        view = _bytes_view(data)
        try:
            while self.window and self.in_flight >= self.window:
                got = len(self.credits.recv(4096))
                if not got:
                    raise ConnectionError(f"rank {self.peer} closed the connection (channel {self.channel})")
                self.in_flight -= got
            self.sock.sendall(view)
        except TimeoutError:
            raise self._lost("took none of") from None
        self.in_flight += 1
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
        if self.credits is not None:
            try:
                self.credits.sendall(b"\1")
            except OSError:     # the sender has finished and closed: it wants no more credits (and
                pass            # a sender still waiting for them notices a broken companion itself)

    def _lost(self, what: str) -> TimeoutError:
        return TimeoutError(f"rank {self.peer} {what} its data for {self.sock.gettimeout():g} s "
                            f"(channel {self.channel}): the peer or a link is lost")


class Mesh:
    def __init__(self, rank: int, addrs: list[tuple[str, int]], tos: int = 0, cc: str | None = None,
                 connect_timeout: float = 30.0, io_timeout: float = 60.0,
                 nics: list[tuple[str, ...]] | None = None):
        """`addrs`: every rank's (address, port); `nics`: every rank's NIC addresses, when its
        nodes have several (rail i between NICs i; default: one NIC, the address in `addrs`)."""
        self.rank, self.addrs, self.tos, self.cc = rank, addrs, tos, cc
        self.nics = nics or [(host,) for host, _ in addrs]
        self.connect_timeout = connect_timeout
        self.io_timeout = io_timeout      # a peer that died mid-collective becomes an error, not a hang
        self.conns: dict[tuple[int, int, int], Conn] = {}     # (peer, channel, rail)
        self._incoming: dict[tuple[int, int, int], queue.Queue] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[int, int, int], threading.Lock] = {}
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
            peer, channel, rail = HELLO.unpack(hello)
            self._slot((peer, channel, rail)).put(Conn(s, peer, channel, rail))

    def conn(self, peer: int, channel: int = 0, rail: int = 0, window: int = 0) -> Conn:
        """The connection to `peer` on `channel` over `rail`, made on first use (safe from several
        threads). With `window`, at most that many messages are in flight each way (Conn.limit);
        both ends must ask for a window, and every use of the connection for the same one."""
        key = (peer, channel, rail)
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            if key not in self.conns:
                conn = self._open(peer, channel, rail)
                if window:
                    conn.limit(window, self._open(peer, channel | CREDITS, rail).sock)
                self.conns[key] = conn
            conn = self.conns[key]
        if conn.window != window:
            raise ValueError(f"channel {channel} to rank {peer} is open with window {conn.window}, not {window}")
        return conn

    def _open(self, peer: int, channel: int, rail: int) -> Conn:
        key = (peer, channel, rail)
        if peer == self.rank:
            raise ValueError("a rank does not connect to itself")
        if self.rank < peer:
            conn = Conn(self._dial(peer, rail), peer, channel, rail)
            conn.sock.sendall(HELLO.pack(self.rank, channel, rail))
        else:
            try:
                conn = self._slot(key).get(timeout=self.connect_timeout)
            except queue.Empty:
                raise TimeoutError(f"rank {peer} never connected on channel {channel} (rail {rail})") from None
        return conn

    def _dial(self, peer: int, rail: int) -> socket.socket:
        deadline = time.monotonic() + self.connect_timeout
        where = (self.nics[peer][rail], self.addrs[peer][1])
        while True:
            s = sockets.connecting(self.tos, self.cc)
            s.settimeout(self.io_timeout)
            try:
                if len(self.nics[self.rank]) > 1:     # leave through NIC `rail`: the lab routes by source
                    s.bind((self.nics[self.rank][rail], 0))
                s.connect(where)
                return s
            except (ConnectionRefusedError, OSError):
                s.close()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"rank {peer} at {where} is not listening") from None
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

    def counters(self) -> list[dict[str, int]]:
        """Bytes sent and received so far, per rail (one entry per NIC of this rank)."""
        return [{"sent": sum(c.sent for c in self.conns.values() if c.rail == rail),
                 "received": sum(c.received for c in self.conns.values() if c.rail == rail)}
                for rail in range(len(self.nics[self.rank]))]

    def close(self) -> None:
        try:        # wakes the accepting thread (close alone leaves it blocked in accept for ever)
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for c in self.conns.values():
            c.sock.close()
            if c.credits is not None:
                c.credits.close()
