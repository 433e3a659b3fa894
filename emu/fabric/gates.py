"""The VL gates of a lossless lab, closed and opened in a few microseconds each.

A gate is the TBF under a VL's HTB class (qos.htb.fifo_line): a change is one netlink message
from a socket kept open in the node's namespace (a fork of `tc` costs ~3 ms, the flow
controller's whole budget). Opening a gate needs a kick: while closed, the TBF armed its timer
for when its next frame may leave (seconds away at the paused rate) and HTB, which found
nothing to send, armed none; a change does not re-arm either, so the packets would wait for
the next enqueue on that port, which a TCP sender that is itself waiting on them may never
make. One 60-byte frame of a local-experimental ethertype sent on the port (the default VL)
runs the port's queue; the peer discards it. The kick's sender does the first part of that run
(up to 64 frames and their forwarding), milliseconds on a busy port, so kicks are sent from a
thread of their own and the caller goes on deciding.
"""
import queue
import socket
import struct
import threading

from emu.fabric import netns
from emu.fabric.netlink import NLA_F_NESTED, RTM_NEWQDISC, TCMSG, NetlinkSocket, attr
from emu.plan import LabPlan
from emu.plan.queues import MTU_FRAME, PAUSED_RATE_BPS, VL_CLASS_BASE

TCA_KIND, TCA_OPTIONS = 1, 2
TCA_TBF_PARMS, TCA_TBF_RATE64, TCA_TBF_BURST = 1, 4, 6
RATESPEC = struct.Struct("=BBHhHI")      # cell_log, linklayer, overhead, cell_align, mpu, rate (bytes/s)
TBF_QOPT_TAIL = struct.Struct("=III")    # limit, buffer, mtu (after the two ratespecs)
LINKLAYER_ETHERNET = 1
KICK_ETHERTYPE = 0x88B5                  # IEEE 802 local experimental


def tbf_options(rate_bps: int, burst: int, limit: int) -> bytes:
    """TCA_OPTIONS of a TBF: the rate, the bucket as bytes (the kernel works out its time) and the limit."""
    rate = rate_bps // 8
    qopt = RATESPEC.pack(0, LINKLAYER_ETHERNET, 0, 0, 0, min(rate, 0xFFFFFFFF)) + RATESPEC.pack(0, 0, 0, 0, 0, 0)
    qopt += TBF_QOPT_TAIL.pack(limit, 0, 0)
    body = attr(TCA_TBF_PARMS, qopt) + attr(TCA_TBF_BURST, struct.pack("=I", burst))
    if rate > 0xFFFFFFFF:
        body += attr(TCA_TBF_RATE64, struct.pack("=Q", rate))
    return attr(TCA_OPTIONS | NLA_F_NESTED, body)


class Gates:
    def __init__(self, plan: LabPlan, layout):
        self.plan, self.layout = plan, layout
        self.sockets: dict[str, NetlinkSocket] = {}
        self.ports: dict[tuple[str, str], tuple[int, socket.socket, bytes]] = {}   # ifindex, kick socket, frame
        self.kicks: queue.SimpleQueue = queue.SimpleQueue()
        self.kicker = threading.Thread(target=self._send_kicks, name="emu-gate-kicks", daemon=True)
        self.kicker.start()

    def set(self, node: str, ifname: str, vl: int, closed: bool) -> None:
        n = self.plan.node(node)
        q = next(q for q in n.port(ifname).queues if q.vl == vl)
        index, kicker, frame = self.prepare(node, ifname)
        rate, burst = (PAUSED_RATE_BPS, MTU_FRAME) if closed else (q.ceil_bps, q.burst_bytes)
        handle = VL_CLASS_BASE + vl
        body = TCMSG.pack(socket.AF_UNSPEC, index, handle << 16, (1 << 16) | handle, 0)
        body += attr(TCA_KIND, b"tbf\0") + tbf_options(rate, burst, q.limit_bytes)
        self.sockets[node].request(RTM_NEWQDISC, 0, body,
                                   f"{'closing' if closed else 'opening'} the VL{vl} gate of {node} {ifname}")
        if not closed:
            self.kicks.put((kicker, frame))

    def flush(self) -> None:
        """Changes take effect as set() makes them: nothing waits (gates elsewhere may: RoutedGates)."""

    def _send_kicks(self) -> None:
        while (kick := self.kicks.get()) is not None:
            kick[0].send(kick[1])

    def prepare(self, node: str, ifname: str) -> tuple[int, socket.socket, bytes]:
        """The port's ifindex, kick socket and kick frame, made on first use with the node's netlink
        socket (~1 ms each: a controller prepares every gate before traffic starts)."""
        if (node, ifname) not in self.ports:
            n = self.plan.node(node)
            port = n.port(ifname)
            ns = self.layout.netns(node)
            if node not in self.sockets:
                self.sockets[node] = NetlinkSocket(ns)
            with netns.inside(ns):
                index = socket.if_nametoindex(ifname)
                kicker = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            kicker.bind((ifname, 0))
            frame = (bytes.fromhex(port.peer_mac.replace(":", "")) + bytes.fromhex(port.mac.replace(":", ""))
                     + struct.pack("!H", KICK_ETHERTYPE)).ljust(60, b"\0")
            self.ports[node, ifname] = (index, kicker, frame)
        return self.ports[node, ifname]

    def close(self) -> None:
        self.kicks.put(None)
        self.kicker.join()
        for nl in self.sockets.values():
            nl.close()
        for _, kicker, _ in self.ports.values():
            kicker.close()
        self.sockets.clear()
        self.ports.clear()
