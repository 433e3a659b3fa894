"""VL queues of one egress port: their layout (port_queues) and their `tc -batch` lines (render_port).

HTB root at the link rate; one class per VL with rate = its weight's share of
the link and ceil = the link rate (work conserving), a FIFO of `buffer` bytes
each, and u32 filters sending TOS class selector n (SL n) to the VL of SL2VL[n].
Unmatched traffic (SL 0 and anything unmarked) goes to SL 0's VL. HTB lends
spare rate in proportion to each class's quantum, so quantum follows the weight.

In lossless mode each VL's FIFO is a TBF instead (a gate): open, it passes the link rate; closed
(a pause), one frame per PAUSED_RATE. Why TBF and not the HTB class itself: a `tbf change`
refills its bucket, so a gate reopens at once, while an HTB class charged one frame at a
pause rate stays in debt for that frame's time at the pause rate after its rate comes back.
"""
from dataclasses import dataclass, replace

from emu.qos.policy import QosPolicy

MTU_FRAME = 1514
# A full TCP segment's payload (MTU 1500 less IP, TCP and its timestamp option) per frame the
# shaper counts: the most of a link's rate a TCP flow's data can have.
TCP_PAYLOAD_SHARE = 1448 / MTU_FRAME
MAX_QUANTUM = 200_000     # HTB warns above this
VL_CLASS_BASE = 0x10      # VL n is HTB class 1:(0x10 + n), its bfifo handle (0x10 + n):
# Largest TCP segment burst a socket may hand to a lab interface (GSO), in MTU-sized segments:
# 1 would be a real port's pacing but halves what two cores can push; 8 keeps bursts at ~12 KB.
GSO_SEGS = 8
# Token bucket depth of every class (burst and cburst): two GSO bursts. tc's default (~1600 B
# here) is smaller than one burst, so each burst overdraws the bucket and HTB's timer, late by
# tens of microseconds on a busy machine, loses rate (a 1 Gbit link carried 84-87%). The cost:
# over any interval a port may send up to this many bytes beyond rate x time (194 us at 1 Gbit,
# 1 ms at 200 Mbit), so queues shorter than that see slightly burstier arrivals than a real port.
BURST_BYTES = 2 * GSO_SEGS * MTU_FRAME
PAUSED_RATE_BPS = 1000      # a closed gate: one frame per 12 s, i.e. none within a pause


def vl_classid(vl: int) -> str:
    return f"1:{VL_CLASS_BASE + vl:x}"


@dataclass(frozen=True)
class VLQueue:
    """One VL's queue on an egress port: an HTB class and the FIFO under it."""
    vl: int
    rate_bps: int           # guaranteed: the VL's weight share of the port
    ceil_bps: int           # what it may borrow up to (the port rate: work conserving)
    quantum: int            # HTB lends spare rate in proportion to it
    burst_bytes: int
    limit_bytes: int        # FIFO depth
    gate: bool = False      # the FIFO is a TBF the flow controller closes to pause the VL


def port_queues(rate_bps: int, buffer_bytes: int, policy: QosPolicy, gate: bool = False) -> tuple[VLQueue, ...]:
    """The VL queues of one egress port of `rate_bps`, each `buffer_bytes` deep (gated: lossless)."""
    weights = policy.weights()
    total, smallest = sum(weights.values()), min(weights.values())
    # HTB lends spare rate round-robin, a quantum per class and turn, but sends whole packets: a
    # quantum below one GSO burst lets every class send one burst a turn, an equal split whatever
    # the weights (measured: 44/64/84 Mbit/s for weights 10:20:30 with 1-frame quanta; 33/64/95
    # with these, as the weights say). The smallest weight gets one burst a turn; weights more
    # than 16x apart hit HTB's quantum limit and lend less unevenly than they say.
    return tuple(VLQueue(vl, max(1, rate_bps * weights[vl] // total), rate_bps,
                         min(MAX_QUANTUM, GSO_SEGS * MTU_FRAME * weights[vl] // smallest), BURST_BYTES, buffer_bytes,
                         gate)
                 for vl in weights)


def tos_filters(policy: QosPolicy) -> tuple[tuple[int, int], ...]:
    """(TOS class selector, VL) for every SL whose VL is not the default one's."""
    if not policy.isolation:
        return ()
    default = policy.vl_of_sl(0)
    return tuple((sl << 5, policy.vl_of_sl(sl)) for sl in sorted(policy.sl2vl) if policy.vl_of_sl(sl) != default)


def render_port(dev: str, rate_bps: int, queues: tuple[VLQueue, ...], filters, default_vl: int,
                from_packet_socket: bool = False) -> list[str]:
    """The `tc -batch` lines of one egress port. from_packet_socket: what the port sends comes
    from a packet socket (an OVS bridge on the userspace datapath), whose packets carry no
    protocol for a `protocol ip` filter to match (their IP header is where it should be)."""
    lines = [f"qdisc add dev {dev} root handle 1: htb default {VL_CLASS_BASE + default_vl:x}",
             root_class_line("add", dev, rate_bps, queues)]
    for q in queues:
        lines.append(vl_class_line("add", dev, q))
        lines.append(fifo_line("add", dev, q))
    protocol = "all" if from_packet_socket else "ip"
    for tos, vl in filters:
        lines.append(f"filter add dev {dev} parent 1: protocol {protocol} prio 1 u32 match ip tos 0x{tos:02x} 0xe0 "
                     f"flowid {vl_classid(vl)}")
    return lines


def root_class_line(verb: str, dev: str, rate_bps: int, queues) -> str:
    """The port's own class: every VL borrows from it, so it holds the port to its rate."""
    burst = max(q.burst_bytes for q in queues)
    return (f"class {verb} dev {dev} parent 1: classid 1:1 htb rate {rate_bps}bit ceil {rate_bps}bit "
            f"burst {burst} cburst {burst} quantum {MTU_FRAME}")


def vl_class_line(verb: str, dev: str, q: VLQueue) -> str:
    return (f"class {verb} dev {dev} parent 1:1 classid {vl_classid(q.vl)} htb rate {q.rate_bps}bit "
            f"ceil {q.ceil_bps}bit burst {q.burst_bytes} cburst {q.burst_bytes} quantum {q.quantum}")


def at_rate(queues, rate_bps: int) -> tuple[VLQueue, ...]:
    """The same queues on a port running at `rate_bps` (a degraded link): guarantees capped, ceilings at it."""
    return tuple(replace(q, rate_bps=min(q.rate_bps, rate_bps), ceil_bps=rate_bps) for q in queues)


def fifo_line(verb: str, dev: str, q: VLQueue) -> str:
    """The `tc` line of a VL's FIFO: a bfifo, or for a gated VL a TBF, open (fabric.gates closes it)."""
    head = f"qdisc {verb} dev {dev} parent {vl_classid(q.vl)} handle {VL_CLASS_BASE + q.vl:x}:"
    if not q.gate:
        return f"{head} bfifo limit {q.limit_bytes}"
    return f"{head} tbf rate {q.ceil_bps}bit burst {q.burst_bytes} limit {q.limit_bytes}"


def port_commands(dev: str, rate_bps: int, buffer_bytes: int, policy: QosPolicy) -> list[str]:
    """One port's lines straight from a policy (what make_plan and render do in two steps)."""
    return render_port(dev, rate_bps, port_queues(rate_bps, buffer_bytes, policy), tos_filters(policy),
                       policy.vl_of_sl(0))
