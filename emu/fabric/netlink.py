"""Raw rtnetlink in a namespace: the message layouts we use and one socket that dumps and changes.

Hand-packed, because the sampler and the flow controller talk to the kernel every few
milliseconds and pyroute2's general parser costs ~10x more per message (pyroute2 stays the
library for everything not on such a path).
"""
import socket
import struct

from emu.errors import FabricError
from emu.fabric import netns

NLMSG = struct.Struct("=IHHII")          # len, type, flags, seq, pid
TCMSG = struct.Struct("=BxxxiIII")       # family, ifindex, handle, parent, info
IFINFOMSG = struct.Struct("=BxHiII")     # family, type, index, flags, change
RTATTR = struct.Struct("=HH")            # len, type
NLMSGERR = struct.Struct("=i")           # error (0: an ack), then the request's header
RTM_NEWLINK, RTM_GETLINK, RTM_NEWQDISC, RTM_GETQDISC, RTM_NEWSTATS, RTM_GETSTATS = 16, 18, 36, 38, 92, 94
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLA_F_NESTED = 0x8000


def attrs(buf: memoryview, offset: int, end: int):
    """(type, start, end) of each attribute in buf[offset:end]."""
    while offset + 4 <= end:
        length, kind = RTATTR.unpack_from(buf, offset)
        if length < 4:
            return
        yield kind & 0x3FFF, offset + 4, offset + length
        offset += (length + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    """One attribute, padded to 4 bytes."""
    raw = RTATTR.pack(RTATTR.size + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


class NetlinkSocket:
    """A NETLINK_ROUTE socket opened inside namespace `name` once, and kept."""

    def __init__(self, name: str):
        self.netns = name
        with netns.inside(name):
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.buf = bytearray(1 << 18)     # reused by every read: a fresh 1 MiB per recv cost more than the parse
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def dump(self, msg_type: int, body: bytes):
        """(type, buffer, start, end) of every message the dump answers with."""
        self.seq += 1
        self.sock.send(NLMSG.pack(NLMSG.size + len(body), msg_type, NLM_F_REQUEST | NLM_F_DUMP, self.seq, 0) + body)
        while True:
            data = memoryview(self.buf)[:self.sock.recv_into(self.buf)]
            offset = 0
            while offset + NLMSG.size <= len(data):
                length, kind, _, seq, _ = NLMSG.unpack_from(data, offset)
                if kind == NLMSG_DONE:
                    return
                if kind == NLMSG_ERROR:
                    raise OSError(f"netlink error in a dump of type {msg_type}")
                yield kind, data, offset + NLMSG.size, offset + length
                offset += (length + 3) & ~3

    def request(self, msg_type: int, flags: int, body: bytes, what: str) -> None:
        """Send one change and wait for the kernel's answer; a refusal raises FabricError."""
        self.seq += 1
        self.sock.send(NLMSG.pack(NLMSG.size + len(body), msg_type, NLM_F_REQUEST | NLM_F_ACK | flags,
                                  self.seq, 0) + body)
        while True:
            data = memoryview(self.buf)[:self.sock.recv_into(self.buf)]
            length, kind, _, seq, _ = NLMSG.unpack_from(data, 0)
            if kind == NLMSG_ERROR and seq == self.seq:
                (error,) = NLMSGERR.unpack_from(data, NLMSG.size)
                if error:
                    raise FabricError(f"{what} in {self.netns}: {socket.errno.errorcode.get(-error, error)}")
                return
