"""The kernel backend's observe face: one node's counters over a raw netlink socket opened in
its namespace once and kept (emu.backends.Reader).

A reading is two dump requests (all qdiscs, all links), parsed by hand for the few fields kept:
per VL (the bfifo under the VL's HTB class) cumulative bytes, packets and drops, and the backlog at
the instant of the read; per interface cumulative tx/rx bytes, packets and drops. The kernel
keeps no maximum backlog between reads.
"""
import socket
import struct
from pathlib import Path

from emu.fabric.netlink import (IFINFOMSG, RTATTR, RTM_GETLINK, RTM_GETQDISC, RTM_GETSTATS, RTM_NEWLINK,
                                RTM_NEWQDISC, RTM_NEWSTATS, TCMSG, NetlinkSocket, attrs)
from emu.fabric.netns import inside
from emu.plan.queues import VL_CLASS_BASE

TC_STATS = struct.Struct("=QIIIIIII")    # bytes, packets, drops, overlimits, bps, pps, qlen, backlog
LINK_STATS64 = struct.Struct("=8Q")      # rx/tx packets, rx/tx bytes, rx/tx errors, rx/tx dropped
IF_STATS_MSG = struct.Struct("=BxHII")   # family, pad, ifindex, filter mask
IFLA_STATS_LINK_64 = 1
TCA_STATS = 3
IFLA_IFNAME = 3


class NamespaceReader(NetlinkSocket):
    """One namespace's counters over a netlink socket opened in it once."""

    def __init__(self, name: str):
        super().__init__(name)
        self.names = {index: ifname for index, ifname in self.link_names()}

    def link_names(self):
        """(ifindex, ifname) of every interface (read once: names do not change in a lab)."""
        for kind, data, start, end in self.dump(RTM_GETLINK, IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
            if kind == RTM_NEWLINK:
                for attr, a, b in attrs(data, start + IFINFOMSG.size, end):
                    if attr == IFLA_IFNAME:
                        yield IFINFOMSG.unpack_from(data, start)[2], bytes(data[a:b]).rstrip(b"\0").decode()
                        break

    def links(self):
        """(ifindex, ifname, (rx_packets, tx_packets, rx_bytes, tx_bytes, rx_dropped, tx_dropped)), from
        RTM_GETSTATS filtered to the 64-bit counters (a full link dump is ~10x more to parse)."""
        request = IF_STATS_MSG.pack(socket.AF_UNSPEC, 0, 0, 1 << (IFLA_STATS_LINK_64 - 1))
        for kind, data, start, end in self.dump(RTM_GETSTATS, request):
            if kind != RTM_NEWSTATS:
                continue
            index = IF_STATS_MSG.unpack_from(data, start)[2]
            for attr, a, _ in attrs(data, start + IF_STATS_MSG.size, end):
                if attr == IFLA_STATS_LINK_64:
                    s = LINK_STATS64.unpack_from(data, a)
                    yield index, self.names.get(index, str(index)), (s[0], s[1], s[2], s[3], s[6], s[7])

    def queues(self):
        """(ifname, vl, bytes, packets, drops, backlog_bytes, overlimits) of every VL FIFO. The
        flow controller calls this every millisecond: the attribute walk is inlined."""
        names, unpack_attr, unpack_stats = self.names, RTATTR.unpack_from, TC_STATS.unpack_from
        for kind, data, start, end in self.dump(RTM_GETQDISC, TCMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
            if kind != RTM_NEWQDISC:
                continue
            _, index, _, parent, _ = TCMSG.unpack_from(data, start)
            vl = (parent & 0xFFFF) - VL_CLASS_BASE
            if parent >> 16 != 1 or vl < 0:
                continue                    # the HTB root or anything not under a VL class
            offset = start + TCMSG.size
            while offset + 4 <= end:
                length, attr = unpack_attr(data, offset)
                if attr & 0x3FFF == TCA_STATS:
                    nbytes, packets, drops, overlimits, _, _, _, backlog = unpack_stats(data, offset + 4)
                    yield names.get(index, str(index)), vl, nbytes, packets, drops, backlog, overlimits
                    break
                if length < 4:
                    break
                offset += (length + 3) & ~3

    def tcp_retransmits(self) -> int:
        """TcpRetransSegs of the namespace so far."""
        with inside(self.netns):
            lines = Path("/proc/thread-self/net/snmp").read_text().splitlines()
        tcp = [line.split() for line in lines if line.startswith("Tcp:")]
        return int(tcp[1][tcp[0].index("RetransSegs")])
