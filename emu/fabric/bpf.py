"""Per-ingress arrival counters on switch ports: a twenty-line BPF program at each port's egress hook.

A lossless switch pauses an *ingress* port once the bytes it holds from that port pass XOFF; the
kernel's queues count bytes per egress queue only. This program runs on every packet entering
a switch port's egress queue (clsact egress, before the qdisc) and adds its length to a counter
keyed by (egress ifindex, ingress ifindex, SL): which upstream feeds which queue, exactly, also
under ECMP and after route changes. One hash map per switch, read in one batch syscall.

Written as bytecode here (a handful of instructions) and loaded with the bpf() syscall, so no
compiler is needed on the machine; the kernel's verifier checks it at load.

A packet an OVS bridge sent (the OpenFlow backend) went through a packet socket and carries no
ingress port; the bridge of a lossless lab tags each packet with its in-port (a VLAN id), and
the tagged program reads the tag as the ingress, and pops it before the port's queues.
"""
import ctypes
import os
import socket
import struct

from emu.errors import FabricError
from emu.fabric import netns
from emu.fabric.netlink import NLA_F_NESTED, RTM_NEWQDISC, TCMSG, NetlinkSocket, attr

SYS_BPF = 321                           # x86_64
BPF_MAP_CREATE, BPF_PROG_LOAD, BPF_MAP_LOOKUP_BATCH = 0, 5, 24
BPF_MAP_TYPE_HASH, BPF_PROG_TYPE_SCHED_CLS = 1, 3
MAX_ENTRIES = 1 << 16
KEY = struct.Struct("=I")               # egress << 16 | ingress << 3 | SL
ETH_P_IP_BE = 0x0008                    # htons(0x0800), as __sk_buff.protocol holds it
# __sk_buff offsets
SKB_LEN, SKB_PROTOCOL, SKB_INGRESS_IFINDEX, SKB_IFINDEX = 0, 16, 36, 40
FN_MAP_LOOKUP, FN_MAP_UPDATE, FN_SKB_VLAN_POP, FN_SKB_LOAD_BYTES = 1, 2, 19, 26
TOS_OFFSET = 14 + 1                     # Ethernet header, then the IPv4 TOS byte
VLAN_BYTES = 4
ETH_P_8021Q_LE = 0x0081                 # the type 0x8100 as its two bytes load into a little-endian u16
OUT = "out"

_libc = ctypes.CDLL(None, use_errno=True)


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def assemble(parts) -> bytes:
    """Instructions (bytes), and jumps to the program's end as (code, dst, imm, OUT) tuples."""
    sizes = [1 if isinstance(p, tuple) else len(p) // 8 for p in parts]
    end, at, out = sum(sizes) - 2, 0, []        # the end: r0 = TC_ACT_OK; exit
    for part, size in zip(parts, sizes):
        out.append(insn(part[0], part[1], 0, end - at - 1, part[2]) if isinstance(part, tuple) else part)
        at += size
    return b"".join(out)


def load_bytes(offset: int, count: int) -> list:
    """The packet's bytes [offset, offset + count) to fp - 8; to the end if they are not there."""
    return [insn(0xbf, 1, 6), insn(0xb7, 2, 0, 0, offset), insn(0xbf, 3, 10), insn(0x07, 3, 0, 0, -8),
            insn(0xb7, 4, 0, 0, count), insn(0x85, 0, 0, 0, FN_SKB_LOAD_BYTES), (0x55, 0, 0, OUT)]


def count(map_fd: int) -> list:
    """count[key at fp - 4] += r9; then the end (r0 = TC_ACT_OK)."""
    ld_map = insn(0x18, 1, 1, 0, map_fd) + insn(0, 0, 0, 0, 0)     # r1 = map (pseudo map fd)
    return [
        ld_map, insn(0xbf, 2, 10), insn(0x07, 2, 0, 0, -4),
        insn(0x85, 0, 0, 0, FN_MAP_LOOKUP),
        insn(0x15, 0, 0, 2, 0),                             # no entry yet: insert
        insn(0xdb, 0, 9, 0, 0),                             # lock *(u64 *)r0 += len
        (0x05, 0, 0, OUT),
        insn(0x7b, 10, 9, -16),                             # *(u64 *)(fp - 16) = len
        ld_map, insn(0xbf, 2, 10), insn(0x07, 2, 0, 0, -4),
        insn(0xbf, 3, 10), insn(0x07, 3, 0, 0, -16),
        insn(0xb7, 4, 0, 0, 0),                             # BPF_ANY (a race lost to another CPU: overwrite, ~1 packet)
        insn(0x85, 0, 0, 0, FN_MAP_UPDATE),
        insn(0xb7, 0, 0, 0, 0), insn(0x95),                 # the end: TC_ACT_OK
    ]


def arrival_program(map_fd: int) -> bytes:
    """count[egress << 16 | ingress << 3 | tos >> 5] += len, for IPv4 packets; always pass."""
    return assemble([
        insn(0xbf, 6, 1),                                   # r6 = ctx
        insn(0x61, 2, 6, SKB_PROTOCOL),                     # r2 = skb->protocol
        (0x55, 2, ETH_P_IP_BE, OUT),                        # not IPv4: out
        *load_bytes(TOS_OFFSET, 1),
        insn(0x71, 1, 10, -8),                              # r1 = tos
        insn(0x77, 1, 0, 0, 5),                             # r1 >>= 5: the SL
        insn(0x61, 7, 6, SKB_IFINDEX), insn(0x67, 7, 0, 0, 16),          # r7 = egress << 16
        insn(0x61, 8, 6, SKB_INGRESS_IFINDEX), insn(0x67, 8, 0, 0, 3),   # r8 = ingress << 3
        insn(0x4f, 7, 8), insn(0x4f, 7, 1),                 # r7 = key
        insn(0x63, 10, 7, -4),                              # *(u32 *)(fp - 4) = key
        insn(0x61, 9, 6, SKB_LEN),                          # r9 = len
        *count(map_fd)])


def tagged_arrival_program(map_fd: int) -> bytes:
    """For a VLAN-tagged packet: count[egress << 16 | vid << 3 | tos >> 5] += its untagged length,
    and the tag popped; anything else passes as it is."""
    return assemble([
        insn(0xbf, 6, 1),                                   # r6 = ctx
        *load_bytes(12, 4),                                 # type and tag
        insn(0x69, 1, 10, -8),                              # r1 = type (as loaded)
        (0x55, 1, ETH_P_8021Q_LE, OUT),                     # untagged: out
        insn(0x71, 8, 10, -6), insn(0x57, 8, 0, 0, 0x0F), insn(0x67, 8, 0, 0, 8),   # r8 = vid's high 4 bits << 8
        insn(0x71, 2, 10, -5), insn(0x4f, 8, 2), insn(0x67, 8, 0, 0, 3),            # r8 = vid << 3
        *load_bytes(TOS_OFFSET + VLAN_BYTES, 1),
        insn(0x71, 1, 10, -8), insn(0x77, 1, 0, 0, 5),     # r1 = the SL
        insn(0x61, 7, 6, SKB_IFINDEX), insn(0x67, 7, 0, 0, 16),          # r7 = egress << 16
        insn(0x4f, 7, 8), insn(0x4f, 7, 1),                 # r7 = key
        insn(0x63, 10, 7, -4),                              # *(u32 *)(fp - 4) = key
        insn(0x61, 9, 6, SKB_LEN), insn(0x07, 9, 0, 0, -VLAN_BYTES),     # r9 = len as it leaves
        insn(0xbf, 1, 6), insn(0x85, 0, 0, 0, FN_SKB_VLAN_POP),
        *count(map_fd)])


def _bpf(cmd: int, attr: bytes) -> int:
    buf = ctypes.create_string_buffer(attr, 128)
    fd = _libc.syscall(SYS_BPF, cmd, buf, 128)
    if fd < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return fd


def create_map(entries: int = MAX_ENTRIES) -> int:
    return _bpf(BPF_MAP_CREATE, struct.pack("=IIIII", BPF_MAP_TYPE_HASH, KEY.size, 8, entries, 0))


def map_size(ports: int) -> int:
    """Entries for a switch of `ports` ports: every (egress, ingress, SL), with room for one more
    ingress. A batch read walks every bucket, so a map sized to its switch reads fast when idle
    (the flow controller looks at each switch's map every IDLE_PERIOD)."""
    return min(MAX_ENTRIES, 1 << (8 * (ports + 1) ** 2 - 1).bit_length())


def load_program(map_fd: int, tagged: bool = False) -> int:
    code = (tagged_arrival_program if tagged else arrival_program)(map_fd)
    text, license_ = ctypes.create_string_buffer(code, len(code)), ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(1 << 16)
    attr = struct.pack("=IIQQIIQI", BPF_PROG_TYPE_SCHED_CLS, len(code) // 8, ctypes.addressof(text),
                       ctypes.addressof(license_), 1, len(log), ctypes.addressof(log), 0)
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        last = log.value.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise FabricError(f"the kernel refused the arrival counter program: {e.strerror} ({last[0]})") from None


_buffers = []      # keys and values of read_map, allocated once (~0.8 MB)


def read_map(map_fd: int) -> dict[int, int]:
    """Every key -> value of the map (one syscall: the map holds at most MAX_ENTRIES)."""
    if not _buffers:
        _buffers.extend(((ctypes.c_uint32 * MAX_ENTRIES)(), (ctypes.c_uint64 * MAX_ENTRIES)()))
    keys, values = _buffers
    out_batch = ctypes.c_uint64(0)
    attr = struct.pack("=QQQQIIQQ", 0, ctypes.addressof(out_batch), ctypes.addressof(keys), ctypes.addressof(values),
                       MAX_ENTRIES, map_fd, 0, 0)
    buf = ctypes.create_string_buffer(attr, 128)
    rc = _libc.syscall(SYS_BPF, BPF_MAP_LOOKUP_BATCH, buf, 128)
    if rc < 0 and ctypes.get_errno() != 2:           # ENOENT: the whole map was returned
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    (n,) = struct.unpack_from("=I", buf.raw, 32)
    return dict(zip(keys[:n], values[:n]))


RTM_DELQDISC, RTM_NEWTFILTER = 37, 44
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
TC_H_CLSACT, CLSACT_HANDLE, TC_H_EGRESS = 0xFFFFFFF1, 0xFFFF0000, 0xFFFFFFF3
TCA_KIND, TCA_OPTIONS, TCA_BPF_FD, TCA_BPF_NAME, TCA_BPF_FLAGS = 1, 2, 6, 7, 8
TCA_BPF_FLAG_ACT_DIRECT = 1
ETH_P_ALL_BE = 0x0300


def _remove_clsact(nl: NetlinkSocket, ifindex: int) -> None:
    """The port's clsact qdisc and its filters, if it has one (the lab may have gone down first)."""
    try:
        nl.request(RTM_DELQDISC, 0, TCMSG.pack(socket.AF_UNSPEC, ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0)
                   + attr(TCA_KIND, b"clsact\0"), "removing clsact")
    except FabricError:
        pass


class ArrivalCounters:
    """The program on every port of the given switches, one map a switch; detach() removes it all.
    replace: a port counted already is one a killed controller left behind (the lab's daemon, the
    only controller, restarts): its counter is removed first. tagged: the switches' packets carry
    their in-port as a VLAN id (OpenFlow port numbers: ports in plan order, from 1)."""

    def __init__(self, plan, layout, switches: list[str], replace: bool = False, tagged: bool = False):
        self.replace, self.layout, self.tagged = replace, layout, tagged
        self.maps: dict[str, int] = {}
        self.names: dict[str, dict[int, str]] = {}        # switch -> ifindex -> port
        self.ingress: dict[str, dict[int, str]] = {}      # switch -> ingress in a key (ifindex or tag) -> port
        self._fds: list[int] = []
        self._attached: list[tuple[NetlinkSocket, int]] = []
        try:
            for sw in switches:
                self._attach(plan.node(sw))
        except BaseException:
            self.detach()
            raise

    def _attach(self, node) -> None:
        map_fd = create_map(map_size(len(node.ports)))
        self._fds.append(map_fd)
        prog_fd = load_program(map_fd, self.tagged)
        self._fds.append(prog_fd)
        ns = self.layout.netns(node.name)
        nl = NetlinkSocket(ns)
        with netns.inside(ns):
            index = {p.ifname: socket.if_nametoindex(p.ifname) for p in node.ports}
        for port, ifindex in index.items():
            if self.replace:
                _remove_clsact(nl, ifindex)
            try:
                nl.request(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL,
                           TCMSG.pack(socket.AF_UNSPEC, ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0)
                           + attr(TCA_KIND, b"clsact\0"), f"adding clsact to {node.name} {port}")
            except FabricError as e:
                if "EEXIST" in str(e):
                    raise FabricError(f"{node.name} {port} is counted already: another flow controller runs on "
                                      f"this lab") from None
                raise
            self._attached.append((nl, ifindex))
            options = (attr(TCA_BPF_FD, struct.pack("=I", prog_fd)) + attr(TCA_BPF_NAME, b"emu-arrivals\0")
                       + attr(TCA_BPF_FLAGS, struct.pack("=I", TCA_BPF_FLAG_ACT_DIRECT)))
            nl.request(RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL,
                       TCMSG.pack(socket.AF_UNSPEC, ifindex, 0, TC_H_EGRESS, (1 << 16) | ETH_P_ALL_BE)
                       + attr(TCA_KIND, b"bpf\0") + attr(TCA_OPTIONS | NLA_F_NESTED, options),
                       f"attaching the arrival counter to {node.name} {port}")
        self.maps[node.name] = map_fd
        self.names[node.name] = {i: p for p, i in index.items()}
        self.ingress[node.name] = {number: p.ifname for number, p in enumerate(node.ports, 1)} if self.tagged \
            else self.names[node.name]

    def read(self, switch: str):
        """(egress port, ingress port, SL, bytes so far) of every counter of the switch."""
        names, ingress_names = self.names[switch], self.ingress[switch]
        for key, nbytes in read_map(self.maps[switch]).items():
            egress, ingress = names.get(key >> 16), ingress_names.get((key >> 3) & 0x1FFF)
            if egress and ingress:
                yield egress, ingress, key & 7, nbytes

    def detach(self) -> None:
        """Remove the clsact qdiscs (their filters go with them) and close every descriptor."""
        sockets = {}
        for nl, ifindex in self._attached:
            sockets[id(nl)] = nl
            _remove_clsact(nl, ifindex)
        for nl in sockets.values():
            nl.close()
        for fd in self._fds:
            os.close(fd)
        self._attached.clear()
        self._fds.clear()
