"""VL queues of one egress port as `tc -batch` lines (a pure function).

HTB root at the link rate; one class per VL with rate = its weight's share of
the link and ceil = the link rate (work conserving), a bfifo of `buffer` bytes
each, and u32 filters sending TOS class selector n (SL n) to the VL of SL2VL[n].
Unmatched traffic (SL 0 and anything unmarked) goes to SL 0's VL. HTB lends
spare rate in proportion to each class's quantum, so quantum follows the weight.
"""
from emu.qos.policy import QosPolicy

MTU_FRAME = 1514
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


def vl_classid(vl: int) -> str:
    return f"1:{VL_CLASS_BASE + vl:x}"


def port_commands(dev: str, rate_bps: int, buffer_bytes: int, policy: QosPolicy) -> list[str]:
    vls = policy.vls()
    weights = {vl: policy.vlarb[vl] for vl in vls} if policy.isolation else {0: 1}
    total, smallest = sum(weights.values()), min(weights.values())
    default_vl = policy.vl_of_sl(0)
    lines = [
        f"qdisc add dev {dev} root handle 1: htb default {VL_CLASS_BASE + default_vl:x}",
        f"class add dev {dev} parent 1: classid 1:1 htb rate {rate_bps}bit ceil {rate_bps}bit "
        f"burst {BURST_BYTES} cburst {BURST_BYTES} quantum {MTU_FRAME}",
    ]
    for vl in vls:
        share = max(1, rate_bps * weights[vl] // total)
        quantum = min(MAX_QUANTUM, MTU_FRAME * weights[vl] // smallest)
        lines.append(f"class add dev {dev} parent 1:1 classid {vl_classid(vl)} htb "
                     f"rate {share}bit ceil {rate_bps}bit burst {BURST_BYTES} cburst {BURST_BYTES} quantum {quantum}")
        lines.append(f"qdisc add dev {dev} parent {vl_classid(vl)} handle {VL_CLASS_BASE + vl:x}: bfifo limit {buffer_bytes}")
    if policy.isolation:
        for sl in sorted(policy.sl2vl):
            vl = policy.vl_of_sl(sl)
            if vl != default_vl:
                lines.append(f"filter add dev {dev} parent 1: protocol ip prio 1 u32 "
                             f"match ip tos 0x{sl << 5:02x} 0xe0 flowid {vl_classid(vl)}")
    return lines
